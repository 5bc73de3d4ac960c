"""``qbench sweep --launcher slurm`` on a real one-node Slurm (``tests/slurm_cluster.py``), as a cluster user meets it.

Skipped, saying why, where the Slurm packages are not installed (``.ci/run``
installs them) or the tests do not run as root (slurmd needs it).  One
cluster serves the module; its teardown cancels every job and leaves no
process behind.  Covered: a sweep as one job array (and a rerun that submits
nothing); a point with loader workers preempted by a job of a higher
partition (SIGTERM, a grace time, SIGKILL, requeue) and then sent Slurm's
time-limit signal (USR2, as ``--signal`` sends it before the limit), ending
bit-identical to the array's uninterrupted run; a 2-task point whose rank 1
is killed (the failing rank's error in one line, the rerun resumes it with
its world size); requests sbatch rejects and a ``--nodes`` beyond the
cluster, each one line, exit 2, nothing submitted.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import slurm_cluster
import torch
from conftest import make_distribution, run_cli

from qbench import commands
from qbench.errors import ConfigError
from qbench.rundir.directory import read_metrics

pytestmark = [
    pytest.mark.skipif(bool(slurm_cluster.missing_programs()),
                       reason="real Slurm tests: not installed: " + ", ".join(slurm_cluster.missing_programs())
                       + " (apt-get install slurmctld slurmd slurm-client slurmdbd munge mariadb-server)"),
    pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                       reason="real Slurm tests: the one-node cluster runs slurmd, which needs root"),
    pytest.mark.slow,
]

STEPS = 140  # long enough that the point is still training when each signal comes (see PACED)
SET = {"train.steps": STEPS, "train.checkpoint_every": 10, "train.log_every": 10, "data.num_workers": 2,
       "eval.max_images": 8, "eval.grid_images": 0, "optim.ema_decay": 0.0, "data.dataset": '"paced-photos"',
       "data.options.val_fraction": 0.15, "data.options.test_fraction": 0.25}  # smoke's, dropped by the switch
# The photos, each item taking at least 25 ms: with 2 workers and batches of 8, at most 10 steps per second
# on any machine, so that a signal finds the point still training (Slurm kills a preempted job some
# seconds after its SIGTERM, and an unpaced smoke point can finish within them); a plugin, because the
# jobs are processes of their own
PACED = {
    "qbench_paced/__init__.py": """
        import time

        import qbench
        from qbench_builtins.datasets import Photos


        class PacedPhotos(Photos):
            def __getitem__(self, index):
                time.sleep(0.025)
                return super().__getitem__(index)


        @qbench.hookimpl
        def qbench_register_datasets():
            return [qbench.DatasetSpec(name="paced-photos", factory="qbench_paced:PacedPhotos",
                                       description="photos, 25 ms an item (tests)")]
    """,
}
SLURM = {"time": 10, "cpus_per_task": 1}


def sweep_file(folder: Path, *, seeds: str = "[0]", extra: dict | None = None) -> Path:
    fixed = ", ".join(f'"{k}" = {v}' for k, v in {**SET, **(extra or {})}.items())
    path = folder / "sweep.toml"
    path.write_text(f'name = "real"\nrecipe = "smoke"\nquantizers = ["vq"]\nseeds = {seeds}\nset = {{ {fixed} }}\n')
    return path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    make_distribution(site, "qbench-paced", "1.0", {"paced": "qbench_paced"}, PACED)
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(site))
        patch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
        started = time.perf_counter()
        running = slurm_cluster.start()
        print(f"one-node Slurm up in {time.perf_counter() - started:.1f} s")
        for key, value in {**running.env, "OMP_NUM_THREADS": "1"}.items():
            patch.setenv(key, value)  # this process's sbatch/sacct, and every job (sbatch exports the environment)
        try:
            yield running
        finally:
            folder = running.folder
            running.stop()
            left = [p for p in Path("/proc").glob("[0-9]*") if _cwd_in(p, folder)]
            assert not left, f"processes left behind by the cluster: {left}"


def _cwd_in(proc: Path, folder: Path) -> bool:
    try:
        return os.readlink(proc / "cwd").startswith(str(folder))
    except OSError:
        return False


def run_dirs(out: Path) -> list[Path]:
    return sorted(p.parent for p in out.rglob("config.toml"))


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoint.pt", weights_only=True)["model"]


def step_of(run_dir: Path) -> int:
    try:
        return int(torch.load(run_dir / "checkpoint.pt", weights_only=True)["step"])
    except (OSError, RuntimeError, EOFError, KeyError):
        return 0


def wait_for(what: str, ready, timeout: float = 240, sweep: threading.Thread | None = None) -> None:
    """Until ``ready()``; fails after ``timeout`` or as soon as ``sweep`` (the sweep's thread) has ended."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        assert sweep is None or sweep.is_alive(), f"the sweep ended before {what}"
        time.sleep(0.2)


def in_background(target, *args, **kwargs) -> tuple[threading.Thread, dict]:
    box: dict = {}

    def run() -> None:
        box["code"] = target(*args, **kwargs)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box


def jobs_in_queue() -> list[str]:
    return subprocess.run(["squeue", "--noheader", "--format", "%i %T"], capture_output=True, text=True,
                          check=True).stdout.split("\n")[:-1]


def queued(job: str) -> tuple[str, int] | None:
    """(state, restarts) of a job still in the queue."""
    rows = subprocess.run(["squeue", "--noheader", "--jobs", job, "--Format", "State:20,RestartCnt:10"],
                          capture_output=True, text=True).stdout.split()
    return (rows[0], int(rows[1])) if len(rows) == 2 else None


@pytest.fixture(scope="module")
def array(cluster, tmp_path_factory):
    """Two seeds of the point as one job array, uninterrupted: the reference of the preemption test."""
    root = tmp_path_factory.mktemp("array")
    path, out = sweep_file(root, seeds="[0, 1]"), root / "out"
    code = commands.sweep(str(path), dry_run=False, jobs=None, launcher="slurm", out=str(out), slurm_options=SLURM,
                          progress=False)
    assert code == 0, list((out / "submitit").rglob("*.err"))
    return path, out


def test_a_sweep_is_one_job_array_and_a_rerun_submits_nothing(array, capsys):
    path, out = array
    records = {read_metrics(d)["run"]["seed"]: read_metrics(d) for d in run_dirs(out)}
    assert sorted(records) == [0, 1] and all(r["run"]["status"] == "ok" for r in records.values())
    jobs = sorted(p.name for p in (out / "submitit").iterdir() if p.is_dir() and "_" in p.name)
    assert len(jobs) == 2 and len({j.split("_")[0] for j in jobs}) == 1, jobs  # ARRAY_0, ARRAY_1: one array
    capsys.readouterr()
    assert commands.sweep(str(path), dry_run=False, jobs=None, launcher="slurm", out=str(out), slurm_options=SLURM,
                          progress=False) == 0
    assert "2 done" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "submitit").iterdir() if p.is_dir() and "_" in p.name) == jobs  # none new


def test_preemption_and_the_time_limit_signal_with_loader_workers_end_bit_identical(array, tmp_path, capsys):
    _, reference_out = array
    [reference] = [d for d in run_dirs(reference_out) if read_metrics(d)["run"]["seed"] == 0]
    path, out = sweep_file(tmp_path), tmp_path / "out"
    thread, box = in_background(commands.sweep, str(path), dry_run=False, jobs=None, launcher="slurm", out=str(out),
                                slurm_options=SLURM, progress=True, poll_s=1.0)
    wait_for("the first checkpoint", lambda: run_dirs(out) and step_of(run_dirs(out)[0]) > 0, sweep=thread)
    [run_dir] = run_dirs(out)
    [job] = [line.split()[0] for line in jobs_in_queue() if line.split()[1] == "RUNNING"]

    # a job of the higher partition takes every CPU: Slurm sends SIGTERM, then kills and requeues the point's job
    subprocess.run(["sbatch", "--partition", "urgent", "--ntasks", str(slurm_cluster.NODE_CPUS), "--output",
                    str(tmp_path / "urgent.out"), "--wrap", "sleep 1"], check=True, capture_output=True)
    wait_for("the requeued job to start", lambda: (now := queued(job)) is not None and now[0] == "RUNNING"
             and now[1] >= 1, sweep=thread)
    resumed_from = step_of(run_dir)
    wait_for("the requeued job's first checkpoint", lambda: step_of(run_dir) > resumed_from, sweep=thread)
    assert step_of(run_dir) < STEPS, "the point finished before the second signal: raise STEPS"

    # Slurm's warning before the time limit (--signal=USR2@90, what submitit asks for), sent the same way now
    subprocess.run(["scancel", "--signal", "USR2", job], check=True, capture_output=True)
    thread.join(timeout=300)
    assert box.get("code") == 0, capsys.readouterr()
    shown = capsys.readouterr()

    assert run_dirs(out) == [run_dir]  # resumed in place both times, never restarted
    record = read_metrics(run_dir)
    assert record["run"]["status"] == "ok" and record["train"]["steps"] == STEPS
    log = (out / "submitit").rglob("*_0_log.err")
    said = "".join(p.read_text() for p in log)
    assert "training goes on until the job is ended" in said and "stopping, the job is to be requeued" in said
    assert "DataLoader worker" not in said
    resumed, uninterrupted = weights(run_dir), weights(reference)
    for name, tensor in uninterrupted.items():
        assert torch.equal(resumed[name], tensor), name
    assert "requeued vq seed=0 (job" in shown.err, shown.err  # the progress display says so (on stderr)


def rank_process(job: str, rank: int) -> int:
    """The pid of task ``rank`` of Slurm job ``job`` (the process slurmstepd started, not its loader workers)."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            env = dict(v.split(b"=", 1) for v in (proc / "environ").read_bytes().split(b"\0") if b"=" in v)
            parent = (proc / "status").read_text().split("PPid:")[1].split()[0]
            parent_name = Path(f"/proc/{parent}/comm").read_text().strip()
        except (OSError, IndexError, ValueError):
            continue
        if env.get(b"SLURM_JOB_ID") == job.encode() and env.get(b"SLURM_PROCID") == str(rank).encode() \
                and parent_name.startswith("slurmstepd"):
            return int(proc.name)
    raise AssertionError(f"no task {rank} of job {job}")


def test_a_two_task_point_with_a_killed_rank_fails_with_its_error_and_the_rerun_resumes_it(cluster, tmp_path,
                                                                                         capsys):
    path = sweep_file(tmp_path, extra={"train.steps": 40, "train.checkpoint_every": 4, "data.num_workers": 0})
    out, options = tmp_path / "out", {**SLURM, "tasks_per_node": 2}
    thread, box = in_background(commands.sweep, str(path), dry_run=False, jobs=None, launcher="slurm", out=str(out),
                                slurm_options=options, progress=False, poll_s=1.0)
    wait_for("the first checkpoint", lambda: run_dirs(out) and step_of(run_dirs(out)[0]) > 0, sweep=thread)
    [run_dir] = run_dirs(out)
    [job] = [line.split()[0] for line in jobs_in_queue()]
    os.kill(rank_process(job, 1), signal.SIGKILL)
    thread.join(timeout=300)
    assert box.get("code") == 1
    failed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  failed:")]
    assert len(failed) == 1 and "rank 1: ended without a result" in failed[0], failed  # the killed rank, not rank 0
    assert not (run_dir / "metrics.json").exists()  # interrupted, not failed: its checkpoint stays

    assert commands.sweep(str(path), dry_run=False, jobs=None, launcher="slurm", out=str(out), slurm_options=options,
                          progress=False, poll_s=1.0) == 0
    assert run_dirs(out) == [run_dir]
    record = read_metrics(run_dir)
    assert record["run"]["status"] == "ok" and record["train"]["world_size"] == 2
    with open(run_dir / "log.csv") as fh:
        logged = [row for row in csv.DictReader(fh) if row.get("loss")]
    assert record["train"]["final_loss"] == float(logged[-1]["loss"])  # the global batch's, as log.csv shows

    # another world size is refused in one line (the dry run says so too), never retrained
    (run_dir / "metrics.json").unlink()
    result = run_cli("sweep", str(path), "--launcher", "slurm", "--out", str(out), "--dry-run",
                     env={"SLURM_CONF": cluster.env["SLURM_CONF"]})
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "trained on 2 rank(s) and this would continue it on 1" in result.stderr


REJECTED = {  # CLI options -> the line
    "partition": ({"partition": "nowhere"}, "invalid partition specified: nowhere"),
    "memory": ({"mem_gb": 1000}, "Requested node configuration is not available; partition debug has 1 node"),
    "gpus": ({"gpus_per_node": 1}, "Invalid generic resource (gres) specification"),
    "nodes": ({"nodes": 2}, "Requested node configuration is not available; partition debug has 1 node(s) of "
                            f"{slurm_cluster.NODE_CPUS} CPUs"),
}


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_a_request_slurm_cannot_run_is_one_line_before_any_point_runs(cluster, tmp_path, capsys, case):
    options, message = REJECTED[case]
    with pytest.raises(ConfigError) as refused:
        commands.sweep(str(sweep_file(tmp_path)), dry_run=False, jobs=None, launcher="slurm",
                       out=str(tmp_path / "out"), slurm_options={**SLURM, **options}, progress=True)
    assert str(refused.value).count("\n") == 0 and message in str(refused.value), str(refused.value)
    assert "start " not in capsys.readouterr().err  # no point was counted as running
    assert not (tmp_path / "out" / "submitit").exists() or not any((tmp_path / "out" / "submitit").iterdir())
    assert jobs_in_queue() == []


def test_the_cli_says_so_in_one_line_with_exit_2(cluster, tmp_path):
    result = run_cli("sweep", str(sweep_file(tmp_path)), "--launcher", "slurm", "--out", str(tmp_path / "out"),
                     "--nodes", "2", env={"SLURM_CONF": cluster.env["SLURM_CONF"]})
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "--launcher slurm: Slurm refuses the request (the default partition, 2 node(s) x 1 task(s)" \
           in result.stderr and "Traceback" not in result.stderr
