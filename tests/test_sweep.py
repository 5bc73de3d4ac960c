"""qbench sweep: sweep files, ladders, planning, skipping and resuming, failures, launchers."""

from __future__ import annotations

import math
import os
import signal
import textwrap
from pathlib import Path

import pytest
from conftest import ROOT, run_cli

import qbench
import qbench.cli
from qbench import commands
from qbench.errors import ConfigError
from qbench.recipe.config import load_recipe
from qbench.recipe.identity import resolve
from qbench.rundir.directory import read_metrics
from qbench.sweeps import build_plan, load_sweep
from qbench.sweeps.ladder import read_ladder
from qbench.sweeps.points import expand

SWEEPS = ROOT / "benchmarks" / "sweeps"


@pytest.fixture(scope="module")
def regs():
    return qbench.registries()


def write(tmp_path: Path, text: str, name: str = "sweep.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def run_dirs(out: Path) -> list[Path]:
    return sorted(p.parent for p in out.rglob("config.toml"))


# ---- sweep files and points ---------------------------------------------------------------


def test_rd_cpu_dry_run_lists_every_point_with_its_rate(tmp_path):
    out = tmp_path / "out"
    result = run_cli("sweep", str(SWEEPS / "rd-cpu.toml"), "--dry-run", "--out", str(out))
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if line[:1].isdigit() and "  " in line]
    assert len(rows) == 4 * 4 * 3  # quantizers x rates x seeds
    by_rate = {(r[1], r[2]): float(r[3]) for r in rows}
    assert {rate for _, rate in by_rate} == {"6", "8", "10", "12"}
    assert by_rate[("fsq", "8")] == pytest.approx(7.91) and by_rate[("fsq", "12")] == pytest.approx(12.10)
    assert by_rate[("rvq", "12")] == 12.0 and by_rate[("gsq", "6")] == 6.0
    assert "48 points: 48 new" in result.stdout and "of wall time" in result.stdout
    assert not out.exists()  # a dry run writes nothing


def test_grid_keys_of_one_quantizer_do_not_multiply_the_others(tmp_path):
    spec = load_sweep(write(tmp_path, """
        name = "g"
        recipe = "smoke"
        quantizers = ["gsq", "vq"]
        seeds = 2
        [grid]
        model.latent_dim = [4, 8]
        "quantizers.gsq.groups" = [1, 2, 4]
        [zip]
        rate = [4, 6]
        "quantizers.vq.codebook_size" = [16, 64]
    """))
    points = expand(spec, None)
    gsq = [p for p in points if p.quantizer == "gsq"]
    vq = [p for p in points if p.quantizer == "vq"]
    assert len(gsq) == 2 * 3 * 2 * 2  # latent_dim x groups x rate label x seeds
    assert len(vq) == 2 * 2 * 2  # latent_dim x (rate, codebook_size) moving together x seeds
    assert all("quantizers.gsq.groups" not in p.values for p in vq)
    assert {(p.swept["rate"], p.values["quantizers.vq.codebook_size"]) for p in vq} == {(4, 16), (6, 64)}
    assert gsq[0].swept == {"model.latent_dim": 4, "quantizers.gsq.groups": 1, "rate": 4}
    assert [p.seed for p in points[:len(points) // 2]] == [0] * (len(points) // 2)  # seed 0 of everything first


def test_the_documented_example_has_the_points_the_docs_count(regs, tmp_path):
    import re

    example = re.search(r"```toml\n(.*?)```", (ROOT / "docs" / "sweeps.md").read_text(), re.S).group(1)
    plan = build_plan(load_sweep(write(tmp_path, example)), tmp_path, regs)
    count = {q: sum(p.identity.quantizer == q for p in plan.points) for q in ("gsq", "vq")}
    assert count == {"gsq": 36, "vq": 12}
    assert plan.spec.slurm == {"partition": "gpu", "time": 60}


def test_every_default_ladder_row_builds_at_its_rate(regs):
    ladder = read_ladder("default")
    assert ladder.latent_dim == 4 and {"gsq", "vq", "rvq", "fsq"} <= set(ladder.rows)
    for quantizer, rungs in ladder.rows.items():
        assert set(rungs) >= {6.0, 8.0, 10.0, 12.0, 14.0}, quantizer
        for rate, options in rungs.items():
            built = regs.quantizers.create(quantizer, dim=ladder.latent_dim, **options)
            assert abs(built.bits_per_position - rate) <= 0.15, (quantizer, rate, built.bits_per_position)


def test_a_sweep_file_can_add_and_replace_ladder_rows(regs, tmp_path):
    path = write(tmp_path, """
        name = "inline"
        recipe = "smoke"
        quantizers = ["gsq", "rvq"]
        rates = [8, 10]
        [ladder]
        base = "default"
        gsq = { 10 = { groups = 2, codebook_size = 32 } }
    """)
    plan = build_plan(load_sweep(path), tmp_path, regs)
    options = {(p.identity.quantizer, p.point.swept["rate"]): p.identity.options for p in plan.points}
    assert options[("gsq", 10)]["groups"] == 2 and options[("gsq", 10)]["codebook_size"] == 32  # replaced
    assert options[("gsq", 8)]["codebook_size"] == 256 and options[("rvq", 10)]["codebook_size"] == 32  # kept
    assert [p.bits for p in plan.points] == [8.0, 10.0, 8.0, 10.0]


def test_ten_bit_ladder_points_are_the_default_runs_and_the_seed_study_completes_them(regs, tmp_path):
    plans = {name: build_plan(load_sweep(SWEEPS / f"{name}.toml"), tmp_path, regs)
             for name in ("rd-cpu", "rd-cpu-new", "rd-cpu-10bit", "rd-cpu-seeds", "rd-cpu-seeds-new")}
    default = load_recipe("cpu-default")
    ladder = [p for name in ("rd-cpu", "rd-cpu-new") for p in plans[name].points]
    for quantizer in ("gsq", "vq", "rvq", "fsq", "lfq", "bsq", "simvq", "ibq"):
        ten = [p for p in ladder if p.identity.quantizer == quantizer and p.point.swept["rate"] == 10]
        assert {p.identity.config_hash for p in ten} == {resolve(default, quantizer, regs).config_hash}
        first = {(p.identity.config_hash, p.identity.seed) for p in plans["rd-cpu-10bit"].points
                 if p.identity.quantizer == quantizer}
        assert first == {(p.identity.config_hash, p.identity.seed) for p in ten}  # the slice is the ladder's 10 bits
        more = [p for name in ("rd-cpu-seeds", "rd-cpu-seeds-new") for p in plans[name].points
                if p.identity.quantizer == quantizer]
        assert {p.identity.config_hash for p in more} == {p.identity.config_hash for p in ten}
        assert sorted({p.identity.seed for p in more} | {s for _, s in first}) == list(range(8))  # >= 8 seeds
    assert len({plan.spec.name for plan in plans.values()}) == 1  # one study: one report


@pytest.mark.parametrize("name", ["rd-cpu", "rd-cpu-new", "rd-cpu-10bit", "rd-cpu-seeds", "rd-cpu-seeds-new",
                                  "groups-cpu", "dxv-cpu", "convergence-cpu"])
def test_published_sweep_files_plan(regs, tmp_path, name):
    plan = build_plan(load_sweep(SWEEPS / f"{name}.toml"), tmp_path, regs)
    assert plan.points and all(math.isfinite(p.bits) for p in plan.points)
    assert plan.estimate_s(2) <= 65 * 60, "each study should fit in about an hour on 2 cores"


# ---- bad sweep files: one line, exit 2, nothing trained ------------------------------------

BAD = {
    "unknown key": ('name = "b"\nrecipe = "smoke"\nquantizers = ["gsq"]\ngird = {}\n', "unknown key 'gird' (did you mean 'grid'?)"),
    "empty grid": ('name = "b"\nrecipe = "smoke"\nquantizers = ["gsq"]\n[grid]\n"quantizers.gsq.groups" = []\n',
                   "has an empty list"),
    "option not taken": ('name = "b"\nrecipe = "smoke"\nquantizers = ["gsq", "vq"]\n[grid]\n"quantizers.vq.groups" = [1, 2]\n',
                         "has no option 'groups'"),
    "bad value": ('name = "b"\nrecipe = "smoke"\nquantizers = ["gsq"]\n[grid]\n"quantizers.gsq.groups" = [1, 3]\n',
                  "not divisible by groups 3"),
    "unknown quantizer": ('name = "b"\nrecipe = "smoke"\nquantizers = ["gsq", "vqq"]\n', "unknown quantizer 'vqq'"),
    "bad recipe key": ('name = "b"\nrecipe = "smoke"\nquantizers = ["gsq"]\n[grid]\n"train.stps" = [1, 2]\n',
                       "unknown recipe key 'train.stps'"),
    "zip lengths": ('name = "b"\nrecipe = "smoke"\nquantizers = ["gsq"]\n[zip]\nrate = [4, 5]\n"train.steps" = [1]\n',
                    "need one length"),
    "no ladder row": ('name = "b"\nrecipe = "smoke"\nquantizers = ["gsq", "vq"]\nrates = [4]\n[ladder]\n'
                      'gsq = { 4 = { codebook_size = 16 } }\n', "no rows for quantizer 'vq'"),
    "same run twice": ('name = "b"\nrecipe = "smoke"\nquantizers = ["gsq"]\n[grid]\n"train.log_every" = [1, 2]\n',
                       "is the same run as"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_sweep_files_fail_before_anything_runs(tmp_path, regs, case):
    text, message = BAD[case]
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        commands.sweep(str(path), dry_run=False, jobs=1, launcher="local", out=str(tmp_path / "out"),
                       slurm_options={}, progress=False)
    assert not (tmp_path / "out").exists()


def test_set_fixes_a_key_for_every_point_but_not_a_swept_one(tmp_path, regs):
    from qbench.sweeps.spec import with_overrides

    spec = load_sweep(SWEEPS / "convergence-cpu.toml")
    with pytest.raises(ConfigError, match="--set train.steps: the sweep varies this key"):
        with_overrides(spec, ["train.steps=3"])
    plan = build_plan(with_overrides(spec, ["optim.lr=2e-3"]), tmp_path, regs)
    assert {p.identity.recipe.optim.lr for p in plan.points} == {2e-3}


@pytest.mark.parametrize("case", ["unknown key", "option not taken"])
def test_bad_sweep_file_is_one_line_exit_2_from_the_cli(tmp_path, case):
    text, message = BAD[case]
    result = run_cli("sweep", str(write(tmp_path, text)), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


# ---- running: skip what is done, resume what was interrupted, record failures ------------------

SMOKE = """
    name = "smoke-sweep"
    recipe = "smoke"
    quantizers = ["gsq", "fsq"]
    seeds = [0]
    set = { "train.steps" = 4, "train.checkpoint_every" = 2, "eval.max_images" = 8, "optim.ema_decay" = 0.0 }
    [grid]
    "quantizers.gsq.groups" = [1, 2]
"""


def interrupt_point(planned, plan) -> Path:
    """A run of ``planned`` stopped after 2 of its 4 steps, as a killed worker leaves it."""
    import torch

    from qbench.engine.data import build_dataset
    from qbench.engine.model import build_tokenizer
    from qbench.engine.train import fit
    from qbench.rundir.directory import RunDirectory

    identity, block = planned.identity, planned.block(plan.spec)
    directory = RunDirectory.create(plan.out, identity.recipe.name, identity.quantizer, identity.seed)
    directory.write_config(identity, block)
    torch.manual_seed(identity.recipe.seed)
    fit(build_tokenizer(identity), identity.recipe, build_dataset(identity.recipe, "train"),
        identity={**identity.to_dict(), "sweep": block}, run_dir=directory, progress=False, stop_after=2)
    return directory.path


def sweep(path, out, jobs=3, dry_run=False):
    return commands.sweep(str(path), dry_run=dry_run, jobs=jobs, launcher="local", out=str(out),
                          slurm_options={}, progress=False)


def test_a_sweep_resumes_the_interrupted_runs_only_the_missing_and_then_nothing(tmp_path, regs, capsys):
    path, out = write(tmp_path, SMOKE), tmp_path / "out"
    plan = build_plan(load_sweep(path), out, regs)
    interrupted = interrupt_point(plan.points[1], plan)  # gsq groups=2, stopped at step 2 of 4
    assert [p.status for p in build_plan(load_sweep(path), out, regs).points] == ["new", "resume", "new"]

    assert sweep(path, out) == 0
    dirs = run_dirs(out)
    assert len(dirs) == 3 and interrupted in dirs  # resumed in place, not restarted
    record = read_metrics(interrupted)
    assert record["run"]["status"] == "ok" and record["train"]["steps"] == 4
    assert record["run"]["sweep"] == {"name": "smoke-sweep", "file": str(path), "point": {"quantizers.gsq.groups": 2}}
    log_steps = [int(line.split(",")[0]) for line in (interrupted / "log.csv").read_text().splitlines()[1:]]
    assert log_steps == [2, 4]  # the first half's log row survived the interruption

    # one point lost entirely (as if its run had never happened): only it runs again
    lost = next(d for d in dirs if read_metrics(d)["run"]["quantizer"] == "fsq")
    kept = {d: (d / "metrics.json").stat().st_mtime_ns for d in dirs if d != lost}
    __import__("shutil").rmtree(lost)
    capsys.readouterr()
    assert sweep(path, out) == 0
    assert "2 done, 1 new" in capsys.readouterr().out
    assert len(run_dirs(out)) == 3
    assert {d: (d / "metrics.json").stat().st_mtime_ns for d in kept} == kept

    # and a third time there is nothing to do
    assert sweep(path, out) == 0
    assert "nothing to run: every point is done" in capsys.readouterr().out
    assert len(run_dirs(out)) == 3
    for d in run_dirs(out):
        config = (d / "config.toml").read_text()
        assert '[sweep]' in config and 'name = "smoke-sweep"' in config


def test_a_failed_point_is_recorded_and_the_others_still_run(tmp_path, capsys):
    path = write(tmp_path, """
        name = "fails"
        recipe = "smoke"
        quantizers = ["gsq"]
        set = { "train.steps" = 3, "eval.max_images" = 8, "optim.ema_decay" = 0.0 }
        [grid]
        "optim.lr" = [1e-3, 1e30]
    """)
    out = tmp_path / "out"
    assert sweep(path, out, jobs=2) == 1
    records = {read_metrics(d)["run"]["status"]: read_metrics(d) for d in run_dirs(out)}
    assert set(records) == {"ok", "failed"}
    assert "non-finite loss" in records["failed"]["run"]["reason"]
    assert records["failed"]["run"]["sweep"]["point"] == {"optim.lr": 1e30}
    assert "1 failed" in capsys.readouterr().out
    capsys.readouterr()
    assert sweep(path, out, dry_run=True) == 0
    assert "1 done, 1 rerun" in capsys.readouterr().out  # a failed point runs again next time


# ---- the Slurm launcher, through submitit's local executor ----------------------------------


def test_submitit_launcher_runs_a_smoke_sweep(tmp_path):
    path = write(tmp_path, """
        name = "submitit-smoke"
        recipe = "smoke"
        quantizers = ["gsq", "fsq"]
        set = { "train.steps" = 2, "eval.max_images" = 8, "optim.ema_decay" = 0.0 }
        [slurm]
        time = 10
        cpus_per_task = 1
    """)
    out = tmp_path / "out"
    code = commands.sweep(str(path), dry_run=False, jobs=None, launcher="slurm", out=str(out), slurm_options={},
                          progress=False, cluster="local")
    assert code == 0
    records = [read_metrics(d) for d in run_dirs(out)]
    assert sorted(r["run"]["quantizer"] for r in records) == ["fsq", "gsq"]
    assert all(r["run"]["status"] == "ok" and r["run"]["sweep"]["name"] == "submitit-smoke" for r in records)
    assert list((out / "submitit").glob("*/*_result.pkl"))  # the points ran as submitit jobs


def test_a_requeued_job_resubmits_the_same_point():
    from qbench.sweeps.slurm import PointJob

    task = {"index": 1, "label": "gsq seed=0"}
    job = PointJob()
    delayed = job.checkpoint(task)  # what submitit calls on preemption or time-out
    assert delayed.function is job and delayed.args == (task,)


def child_pids(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        if int(fields.get("PPid", "0").strip()) == pid:
            found.append(int(status.parent.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="finds the job process through /proc")
def test_a_preempted_job_is_requeued_and_resumes_its_run(tmp_path, regs):
    import time
    from dataclasses import asdict

    import submitit

    from qbench.sweeps.launch import tasks_for
    from qbench.sweeps.slurm import PointJob

    path = write(tmp_path, """
        name = "preempted"
        recipe = "smoke"
        quantizers = ["gsq"]
        set = { "train.steps" = 40, "train.checkpoint_every" = 4, "eval.max_images" = 8, "optim.ema_decay" = 0.0 }
    """)
    out = tmp_path / "out"
    [task] = tasks_for(build_plan(load_sweep(path), out, regs), threads=1)
    executor = submitit.AutoExecutor(folder=tmp_path / "jobs", cluster="local")
    executor.update_parameters(timeout_min=20)
    job = executor.submit(PointJob(), asdict(task))
    deadline = time.time() + 240
    while not list(out.rglob("checkpoint.pt")) and time.time() < deadline:
        time.sleep(0.02)
    assert list(out.rglob("checkpoint.pt")), "the job never wrote a checkpoint"
    # Slurm preempts by sending the job step USR2 (submitit's LocalExecutor only sends it near its
    # time limit, to the job process under its controller): send it there directly.  The job is frozen
    # first: on a busy machine it could otherwise finish its 40 steps before the signal, and a job
    # signalled after its result was written is requeued and reports the point "skipped" (the flake)
    [job_process] = child_pids(job._process.pid)
    os.kill(job_process, signal.SIGSTOP)
    assert not list(out.rglob("metrics.json")), "the job finished before it could be preempted"
    os.kill(job_process, signal.SIGUSR2)
    os.kill(job_process, signal.SIGCONT)
    result = job.result()
    assert result["status"] == "ok" and result["resumed"] is True, result  # the result says why, if not
    [run_dir] = run_dirs(out)  # continued in place, not restarted
    assert read_metrics(run_dir)["train"]["steps"] == 40


# ---- the sweep's checks are `qbench run`'s ------------------------------------------------------


def _one_point_sweep(tmp_path: Path, args: list[str]) -> tuple[Path, list[str]]:
    """The sweep file and --set items that give the one run ``qbench run ARGS`` would start first."""
    quantizer, seeds, sets = None, "", []
    for flag, value in zip(args[::2], args[1::2]):
        if flag == "--quantizers":
            quantizer = value.split(",")[0]
        elif flag == "--seed":
            seeds = f"seeds = [{value}]\n"
        else:
            sets.append(value)
    return write(tmp_path, f'name = "one"\nrecipe = "smoke"\nquantizers = ["{quantizer}"]\n{seeds}'), sets


def _sweep_cases():
    from test_reliability import RUN_PREFLIGHT_CASES

    # names given twice and seeds beyond TOML's integers cannot be written in a sweep file
    return [(a, m) for a, m in RUN_PREFLIGHT_CASES if "more than once" not in m
            and all(len(v) < 19 for f, v in zip(a[::2], a[1::2]) if f == "--seed")]


@pytest.mark.parametrize("args, message", _sweep_cases())
def test_every_run_preflight_error_stops_a_one_point_sweep_the_same_way(tmp_path, capsys, args, message):
    path, sets = _one_point_sweep(tmp_path, args)
    out = tmp_path / "out"
    status = qbench.cli.main(["sweep", str(path), "--out", str(out), "--no-progress", "--jobs", "1",
                              *[x for item in sets for x in ("--set", item)]])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert status == 2 and len(errors) == 1, errors
    assert errors[0].startswith(f"qbench: error: sweep {path}: point 1 (") and message.removeprefix("--") in errors[0]
    assert run_dirs(out) == []


def test_bad_points_are_one_line_each_before_any_point_trains(tmp_path, capsys):
    path = write(tmp_path, """
        name = "bad"
        recipe = "smoke"
        quantizers = ["gsq"]
        seeds = [0, -1, 4294967296]
        set = { "train.steps" = 2, "eval.max_images" = 4 }
        [grid]
        "data.image_size" = [16, 15]
    """)
    out = tmp_path / "out"
    status = qbench.cli.main(["sweep", str(path), "--out", str(out), "--no-progress", "--jobs", "1"])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert status == 2
    by_point = {}
    for line in errors:
        assert line.startswith(f"qbench: error: sweep {path}: point "), line
        by_point.setdefault(int(line.split("point ")[1].split(" ")[0]), []).append(line)
    # seeds first: points 1-2 seed 0, 3-4 seed -1, 5-6 seed 2^32; even points have image size 15
    assert sorted(by_point) == [2, 3, 4, 5, 6]
    assert all("seed must be in 0..4294967295" in " ".join(by_point[p]) for p in (3, 4, 5, 6))
    assert all("not divisible by the downsample factor" in " ".join(by_point[p]) for p in (2, 4, 6))
    assert run_dirs(out) == [] and not any(out.rglob("*.pt"))


def test_a_dry_run_refuses_the_points_the_real_run_refuses(tmp_path, capsys):
    # a dry run that passes must mean the run will start: it used to list these points as "new"
    path = write(tmp_path, """
        name = "bad"
        recipe = "smoke"
        quantizers = ["gsq"]
        seeds = [0, -1]
        [grid]
        "data.image_size" = [16, 15]
    """)
    out = tmp_path / "out"
    status = qbench.cli.main(["sweep", str(path), "--dry-run", "--out", str(out)])
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.strip()]
    assert status == 2 and "Traceback" not in captured.err
    assert errors == [
        f"qbench: error: sweep {path}: point 2 (gsq data.image_size=15 seed=0): conv backbone: image size (15, 15) "
        "is not divisible by the downsample factor 2",
        f"qbench: error: sweep {path}: point 3 (gsq data.image_size=16 seed=-1): seed must be in 0..4294967295, got -1",
        f"qbench: error: sweep {path}: point 4 (gsq data.image_size=15 seed=-1): seed must be in 0..4294967295, got -1",
        f"qbench: error: sweep {path}: point 4 (gsq data.image_size=15 seed=-1): conv backbone: image size (15, 15) "
        "is not divisible by the downsample factor 2",
    ]
    assert "4 points: 4 new" in captured.out  # the plan is still shown, then the refusal
    assert not out.exists()  # and a dry run writes nothing
    with pytest.raises(qbench.ConfigError, match="seed must be in"):
        qbench.sweep(path, out=out, dry_run=True)


@pytest.mark.parametrize("args, message", _sweep_cases())
def test_every_run_preflight_error_stops_a_dry_run_too(tmp_path, capsys, args, message):
    path, sets = _one_point_sweep(tmp_path, args)
    out = tmp_path / "out"
    status = qbench.cli.main(["sweep", str(path), "--dry-run", "--out", str(out),
                              *[x for item in sets for x in ("--set", item)]])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert status == 2 and len(errors) == 1, errors
    assert errors[0].startswith(f"qbench: error: sweep {path}: point 1 (") and message.removeprefix("--") in errors[0]
    assert not out.exists()


def test_a_point_that_cannot_resume_is_reported_as_restarted(tmp_path, regs, capsys):
    from qbench.report.tables import build_report, render_text

    path = write(tmp_path, SMOKE.replace('quantizers = ["gsq", "fsq"]', 'quantizers = ["gsq"]').replace("[1, 2]", "[1]"))
    out = tmp_path / "out"
    plan = build_plan(load_sweep(path), out, regs)
    broken = interrupt_point(plan.points[0], plan)
    checkpoint = broken / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:200])  # truncated
    capsys.readouterr()
    assert sweep(path, out, jobs=1) == 0
    console = capsys.readouterr().out
    assert "restarted: point 1 (gsq" in console and f"could not resume {broken}" in console, console
    fresh = [d for d in run_dirs(out) if d != broken]
    assert len(fresh) == 1 and read_metrics(fresh[0])["run"]["status"] == "ok"
    report = build_report([out])
    assert report.unfinished == [] and [d for d, _ in report.restarted] == [broken]
    assert f"restarted run: {broken} could not be resumed" in render_text(report)
    assert str(fresh[0]) in render_text(report)
    # the abandoned folder is not offered for resuming again
    capsys.readouterr()
    assert sweep(path, out, jobs=1) == 0
    assert "restarted:" not in capsys.readouterr().out


def test_stale_scratch_folders_of_killed_sweeps_are_removed(tmp_path):
    import subprocess
    import sys

    from qbench.sweeps.local import SCRATCH_PREFIX, remove_stale_scratch

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = tmp_path / f"{SCRATCH_PREFIX}{int(dead.stdout)}-abc"
    live = tmp_path / f"{SCRATCH_PREFIX}{os.getppid()}-def"  # a running process: its sweep may still need it
    other = tmp_path / "qbench-sweep-notapid"
    for folder in (gone, live, other):
        folder.mkdir()
        (folder / "1.task.json").write_text("{}")
    assert remove_stale_scratch(tmp_path) == [gone]
    assert not gone.exists() and live.exists() and other.exists()


def test_jobs_above_the_core_count_are_capped_with_a_note(tmp_path, capsys, monkeypatch):
    from qbench.sweeps import local

    assert local.capped_jobs(3, cores=4) == (3, "")
    jobs, note = local.capped_jobs(1000, cores=4)
    assert jobs == 4 and "--jobs 1000 is more than the 4 cores" in note
    monkeypatch.setattr(local, "available_cores", lambda: 2)
    path = write(tmp_path, 'name = "j"\nrecipe = "smoke"\nquantizers = ["gsq"]\n')
    assert qbench.cli.main(["sweep", str(path), "--dry-run", "--jobs", "1000", "--out", str(tmp_path / "o")]) == 0
    captured = capsys.readouterr()
    assert "qbench: note: --jobs 1000 is more than the 2 cores" in captured.err
    assert "with --jobs 2 " in captured.out


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="the machine has a GPU")
def test_a_slurm_sweep_leaves_the_device_to_its_jobs(tmp_path, regs):
    from qbench.sweeps.launch import check_points

    path = write(tmp_path, 'name = "gpu"\nrecipe = "smoke"\nquantizers = ["gsq"]\nset = { "train.device" = "cuda" }\n')
    plan = build_plan(load_sweep(path), tmp_path / "out", regs)
    with pytest.raises(ConfigError, match="train.device=cuda, but torch sees no CUDA GPU"):
        check_points(plan, regs, local=True)
    check_points(plan, regs, local=False)  # the jobs run on GPU nodes, not on this login node


# ---- world size, and switching datasets -------------------------------------------------------


def test_a_run_of_another_world_size_is_refused_in_one_line_and_never_retrained(tmp_path, regs, capsys):
    import torch

    path = write(tmp_path, SMOKE.replace('quantizers = ["gsq", "fsq"]', 'quantizers = ["gsq"]').replace("[1, 2]", "[1]"))
    out = tmp_path / "out"
    plan = build_plan(load_sweep(path), out, regs)
    run_dir = interrupt_point(plan.points[0], plan)
    config = run_dir / "config.toml"
    assert "world_size = 1" in config.read_text()
    config.write_text(config.read_text().replace("world_size = 1", "world_size = 2"))  # as a 2-rank job leaves it
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    torch.save({**state, "world_size": 2}, run_dir / "checkpoint.pt")
    with pytest.raises(ConfigError) as refused:
        sweep(path, out, jobs=1, dry_run=True)  # the dry run says what would happen: nothing, and why
    assert str(refused.value).count("\n") == 0
    assert f"point 1 (gsq groups=1 seed=0): cannot resume {run_dir}: it was trained on 2 rank(s) and this would " \
           "continue it on 1" in str(refused.value)
    # a folder that does not record its world size (written before it was recorded) reaches the worker,
    # which fails the point with the same reason and leaves the run as it is: never trained afresh
    config.write_text(config.read_text().replace("world_size = 2\n", ""))
    capsys.readouterr()
    assert sweep(path, out, jobs=1) == 1
    console = capsys.readouterr().out
    assert "failed: point 1 (gsq groups=1 seed=0): cannot resume" in console and "trained on 2 rank(s)" in console, console
    assert run_dirs(out) == [run_dir] and not (run_dir / "metrics.json").exists()
    assert "restarted" not in console


def test_switching_the_dataset_drops_the_old_datasets_options_and_an_empty_options_table_counts(tmp_path, regs):
    assert load_recipe("cpu-default").data.options  # photos' own options
    assert load_recipe("cpu-default", ["data.dataset='imagefolder'"]).data.options == {}
    assert load_recipe("cpu-default", ["data.options.val_fraction=0.1", "data.dataset='imagefolder'"]
                       ).data.options == {"val_fraction": 0.1}  # given beside the switch: kept, in any order
    assert load_recipe("cpu-default", ["data.dataset='photos'"]).data.options  # not a switch: kept
    for fixed, expected in (('"data.dataset" = "webdataset", "data.options.streams" = 4', {"streams": 4}),
                            ('"data.options" = {}', {}),
                            ('data = { options = {} }', {})):
        path = write(tmp_path, f"""
            name = "switch"
            recipe = "cpu-default"
            quantizers = ["gsq"]
            set = {{ {fixed} }}
        """)
        [point] = build_plan(load_sweep(path), tmp_path / "out", regs).points
        assert point.identity.recipe.data.options == expected, fixed


def _fake_slurm(folder: Path, name: str, script: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)


def test_a_cluster_without_accounting_or_refusing_the_job_is_one_line_before_submitting(tmp_path, monkeypatch):
    from qbench.sweeps import slurm_request

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    _fake_slurm(bin_dir, "sacct", 'echo "sacct: error: Slurm accounting storage is disabled" >&2; exit 1\n')
    with pytest.raises(ConfigError, match="needs Slurm accounting \\(slurmdbd\\).*sacct, which says: "
                                          "Slurm accounting storage is disabled$"):
        slurm_request.check_accounting()
    _fake_slurm(bin_dir, "sbatch", 'cat > /dev/null; echo "allocation failure: Requested node configuration is '
                                   'not available" >&2; exit 1\n')
    _fake_slurm(bin_dir, "sinfo", 'echo "gpu* 3 64 512000 gpu:8"\n')
    with pytest.raises(ConfigError) as refused:
        slurm_request.check_request({"partition": "gpu", "nodes": 4, "ntasks_per_node": 8, "gpus_per_node": 8},
                                    "#!/bin/bash\n#SBATCH --nodes=4\n")
    assert str(refused.value) == (
        "--launcher slurm: Slurm refuses the request (partition gpu, 4 node(s) x 8 task(s), 8 GPU(s) per node): "
        "allocation failure: Requested node configuration is not available; partition gpu has 3 node(s) of 64 "
        "CPUs, 512000 MB, generic resources gpu:8")
    _fake_slurm(bin_dir, "sbatch", 'cat > /dev/null; echo "sbatch: Job 3 to start at now" >&2\n')
    slurm_request.check_request({}, "#!/bin/bash\n")  # accepted: nothing raised
