"""A point of 2 ranks through submitit's local executor: the same DDP training as torchrun, resumable.

The executor honours ``tasks_per_node``: it starts 2 processes with
Slurm-like variables, and each joins one gloo process group
(``qbench.sweeps.slurm``).  Its final parameters must equal a
``torchrun --nproc_per_node 2`` run's bit for bit, match one process on the
same global batch within float rounding, and survive a preemption: the
requeued job ends with the parameters of the uninterrupted one.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from conftest import run_cli
from test_sweep import child_pids

import qbench
from qbench import commands
from qbench.comparison import runner
from qbench.engine.model import build_tokenizer
from qbench.errors import ConfigError
from qbench.recipe.config import load_recipe
from qbench.recipe.identity import resolve
from qbench.rundir.directory import read_metrics

# optim.eps: a conv bias before a GroupNorm has a true gradient of zero, so its computed gradient is
# rounding noise, which Adam with a tiny eps turns into full +-lr steps of random sign; a larger eps
# keeps those parameters still, so "equal within float rounding" can be checked on every parameter
SET = {"train.steps": 24, "train.checkpoint_every": 3, "train.log_every": 6, "eval.max_images": 8,
       "eval.grid_images": 0, "optim.eps": 1e-4}
SWEEP = """
    name = "ranks"
    recipe = "smoke"
    quantizers = ["vq"]
    set = {{ {fixed} }}
""".format(fixed=", ".join(f'"{k}" = {v}' for k, v in SET.items()))
OVERRIDES = [f"{k}={v}" for k, v in SET.items()]


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoint.pt", weights_only=True)["model"]


def only_run(out: Path) -> Path:
    [config] = list(out.rglob("config.toml"))
    return config.parent


@pytest.fixture(scope="module")
def two_task_point(tmp_path_factory):
    """The point trained by a 2-task submitit job, uninterrupted: (run directory, sweep file)."""
    root = tmp_path_factory.mktemp("two-task")
    path = root / "sweep.toml"
    path.write_text(textwrap.dedent(SWEEP))
    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the job's task processes
    code = commands.sweep(str(path), dry_run=False, jobs=None, launcher="slurm", out=str(root / "out"),
                          slurm_options={"tasks_per_node": 2, "cpus_per_task": 1, "time": 10}, progress=False,
                          cluster="local")
    assert code == 0, list((root / "out" / "submitit").rglob("*.err"))
    return only_run(root / "out"), path


@pytest.mark.slow  # 2-rank trainings through submitit and torchrun: about half a minute on 2 cores
def test_two_tasks_train_like_torchrun_bit_for_bit_and_like_one_process_within_rounding(two_task_point, tmp_path):
    run_dir, _ = two_task_point
    record = read_metrics(run_dir)
    assert record["run"]["status"] == "ok" and record["train"]["world_size"] == 2
    assert record["train"]["steps"] == SET["train.steps"]
    with open(run_dir / "log.csv") as fh:
        logged = [row for row in csv.DictReader(fh) if row.get("loss")]
    assert record["train"]["final_loss"] == float(logged[-1]["loss"])  # the global batch's, not rank 0's half
    ranked = final_weights(run_dir)

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "qbench.cli",
         "run", "--recipe", "smoke", "--quantizers", "vq", "--out", str(tmp_path / "torchrun"), "--no-progress",
         *[a for item in OVERRIDES for a in ("--set", item)]],
        capture_output=True, text=True, timeout=300, env=env)
    assert torchrun.returncode == 0, torchrun.stderr[-3000:]
    reference = final_weights(only_run(tmp_path / "torchrun"))
    assert ranked.keys() == reference.keys()
    for name, tensor in reference.items():
        assert torch.equal(ranked[name], tensor), name

    # one process on the same global batch (the recipe's batch: 8, not 2 x 8)
    [one] = runner.run_comparison(["vq"], load_recipe("smoke", OVERRIDES), out_root=tmp_path / "one", progress=False)
    assert one.status == "ok" and one.record["train"]["world_size"] == 1
    single = final_weights(one.run_dir)
    torch.manual_seed(0)  # the initial weights, as every run builds them
    initial = build_tokenizer(resolve(load_recipe("smoke", OVERRIDES), "vq", qbench.registries())).state_dict()
    moved = 0.0
    for name, tensor in single.items():
        if tensor.is_floating_point():
            torch.testing.assert_close(ranked[name], tensor, rtol=1e-4, atol=1e-5, msg=name)
            moved = max(moved, float((tensor - initial[name]).abs().max()))
    assert moved > 1e-3  # training moved the weights far more than the tolerance: the comparison has teeth


def submit_until_checkpoint(two_task_point, tmp_path, monkeypatch):
    """Submit the 2-task point through submitit's local executor; return once it wrote a checkpoint."""
    import submitit

    from qbench.sweeps import build_plan, load_sweep
    from qbench.sweeps.launch import tasks_for
    from qbench.sweeps.slurm import PointJob

    uninterrupted, path = two_task_point
    out = tmp_path / "out"
    [task] = tasks_for(build_plan(load_sweep(path), out, qbench.registries()), threads=1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    executor = submitit.AutoExecutor(folder=tmp_path / "jobs", cluster="local")
    executor.update_parameters(timeout_min=10, tasks_per_node=2)
    job = executor.submit(PointJob(), asdict(task))
    deadline = time.time() + 240
    while not list(out.rglob("checkpoint.pt")) and time.time() < deadline:
        time.sleep(0.05)
    return job, task, out, uninterrupted


def job_tasks(controller_pid: int) -> list[int]:
    """The task processes submitit's local controller started (Linux /proc)."""
    return child_pids(controller_pid)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="finds the task processes through /proc")
def test_a_preempted_two_task_job_requeues_and_ends_bit_identical(two_task_point, tmp_path, monkeypatch):
    job, task, out, uninterrupted = submit_until_checkpoint(two_task_point, tmp_path, monkeypatch)
    assert list(out.rglob("checkpoint.pt")), "the job never wrote a checkpoint"
    # Slurm preempts by sending USR2 to every task of the job; rank 0 requeues it, the job restarts
    tasks = job_tasks(job._process.pid)
    assert len(tasks) == 2
    for pid in tasks:
        os.kill(pid, signal.SIGUSR2)
    result = job.results()[0]
    assert result["status"] == "ok" and result["resumed"] is True and result["world_size"] == 2
    run_dir = only_run(out)  # continued in place, not restarted
    assert read_metrics(run_dir)["train"]["world_size"] == 2
    resumed, reference = final_weights(run_dir), final_weights(uninterrupted)
    for name, tensor in reference.items():
        assert torch.equal(resumed[name], tensor), name


BAD_REQUESTS = {
    "batch": ({"tasks_per_node": 3}, "data.batch_size 8 (the global batch) is not divisible by the 3 ranks"),
    "nodes": ({"nodes": 2, "gpus_per_node": 1}, "nodes > 1 needs a Slurm cluster"),
    "cpu": ({"gpus_per_node": 2}, "train.device is cpu but each job reserves 2 GPUs per node"),
    "mismatch": ({"gpus_per_node": 2, "tasks_per_node": 4}, "tasks_per_node 4 and gpus_per_node 2 differ"),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_an_impossible_rank_request_is_refused_before_submitting(tmp_path, case):
    options, message = BAD_REQUESTS[case]
    path = tmp_path / "sweep.toml"
    path.write_text(textwrap.dedent(SWEEP))
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        commands.sweep(str(path), dry_run=True, jobs=None, launcher="slurm", out=str(tmp_path / "out"),
                       slurm_options=options, progress=False, cluster="local")
    assert not (tmp_path / "out").exists()


def test_the_cli_refuses_an_indivisible_batch_in_one_line(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text(textwrap.dedent(SWEEP))
    result = run_cli("sweep", str(path), "--launcher", "slurm", "--gpus-per-node", "3", "--set", "train.device=auto",
                     "--out", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "not divisible by the 3 ranks" in result.stderr
    assert not (tmp_path / "out").exists()


def task_rank(pid: int) -> int:
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return int(next(v for v in environ if v.startswith(b"SUBMITIT_LOCAL_GLOBALID=")).split(b"=")[1])


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="finds the task processes through /proc")
def test_a_rank_that_dies_leaves_an_interrupted_run_that_the_next_sweep_resumes(two_task_point, tmp_path,
                                                                                monkeypatch):
    """What a dead node does to a point, on one machine: its peer fails, nothing is marked failed, and
    running the sweep again resumes the run from its checkpoint to the uninterrupted result."""
    job, task, out, uninterrupted = submit_until_checkpoint(two_task_point, tmp_path, monkeypatch)
    [rank1] = [pid for pid in job_tasks(job._process.pid) if task_rank(pid) == 1]
    os.kill(rank1, signal.SIGKILL)
    result = job.task(0).result()  # rank 0 notices its peer is gone, and ends
    assert result["status"] == "failed" and "remote worker" in result["reason"]
    run_dir = only_run(out)
    assert (run_dir / "checkpoint.pt").exists() and not (run_dir / "metrics.json").exists()  # interrupted
    code = commands.sweep(str(two_task_point[1]), dry_run=False, jobs=None, launcher="slurm", out=str(out),
                          slurm_options={"tasks_per_node": 2, "cpus_per_task": 1, "time": 10}, progress=False,
                          cluster="local")
    assert code == 0 and only_run(out) == run_dir  # resumed in place
    assert read_metrics(run_dir)["run"]["status"] == "ok"
    resumed, reference = final_weights(run_dir), final_weights(uninterrupted)
    for name, tensor in reference.items():
        assert torch.equal(resumed[name], tensor), name
