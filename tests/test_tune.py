"""``qbench tune``: a tiny study killed with SIGKILL mid-study and resumed ends with exactly the planned
finished trials per study, nothing trained twice, the best configurations written and the storage readable
by ``optuna.load_study``; overlays round-trip into recipes; bad input is one line and exit status 2."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from conftest import ROOT, run_cli
from optuna.trial import TrialState

from qbench.errors import ConfigError
from qbench.platform.plugins import registries
from qbench.recipe.config import load_recipe
from qbench.rundir.directory import restarted_reason
from qbench.sweeps import build_plan as build_sweep_plan
from qbench.sweeps import load_sweep
from qbench.tuning.spec import load_tune
from qbench.tuning.trial import _run_dir, heldout_rows

TRIALS = 2
TUNE = f"""
name = "tiny"
recipe = "smoke"
quantizers = ["gsq", "vq"]
rates = [4]
trials = {TRIALS}
pruner = {{ kind = "median", startup_trials = 1 }}

[set]
"train.steps" = 12
"train.checkpoint_every" = 4
"eval.every" = 4

[shared]
"optim.lr" = {{ low = 3e-4, high = 3e-3, log = true }}
"model.latent_dim" = [4, 8]
"""
STUDIES = ("tiny-gsq-4bit", "tiny-vq-4bit")


def _storage(out: Path) -> str:
    return f"sqlite:///{out / 'study.db'}"


def _trials(out: Path) -> dict[str, list]:
    storage = optuna.storages.RDBStorage(_storage(out))
    found = {}
    for name in STUDIES:
        try:
            found[name] = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
        except KeyError:  # not created yet
            found[name] = []
    return found


def _storage_is_ready(db: Path) -> bool:
    """Whether the study has created its storage's tables (opening it earlier would race it to create them)."""
    if not db.exists():
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as connection:
            return bool(connection.execute("SELECT count(*) FROM alembic_version").fetchone()[0])
    except sqlite3.Error:
        return False


def _a_running_trial_has_a_checkpoint(out: Path) -> bool:
    if not _storage_is_ready(out / "study.db"):
        return False
    for trials in _trials(out).values():
        for t in trials:
            folder = t.user_attrs.get("run_folder")
            if t.state == TrialState.RUNNING and folder and list(Path(folder).rglob("checkpoint.pt")):
                return True
    return False


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The tiny study, killed (SIGKILL to its process group) once a running trial has a checkpoint, then resumed."""
    root = tmp_path_factory.mktemp("tune")
    tune_file, out = root / "tiny.toml", root / "out"
    tune_file.write_text(TUNE)
    command = [sys.executable, "-m", "qbench.cli", "tune", str(tune_file), "--out", str(out), "--jobs", "2",
               "--no-progress"]
    first = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    deadline = time.time() + 600
    try:
        while not _a_running_trial_has_a_checkpoint(out):
            assert first.poll() is None, "the study ended before it could be killed"
            assert time.time() < deadline, "no trial reached a checkpoint"
            time.sleep(0.3)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    killed = {name: [t for t in trials if t.state == TrialState.RUNNING] for name, trials in _trials(out).items()}
    killed = {name: [(t, bool(list(Path(t.user_attrs["run_folder"]).rglob("checkpoint.pt")))) for t in running]
              for name, running in killed.items()}
    second = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    return out, killed, second


def test_the_resumed_study_ends_with_exactly_the_planned_finished_trials(study):
    out, killed, second = study
    assert second.returncode == 0, second.stderr[-3000:]
    assert any(had for running in killed.values() for _, had in running)  # one was killed past a checkpoint
    for name, trials in _trials(out).items():
        finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        assert len(finished) == TRIALS, (name, [(t.number, t.state.name) for t in trials])
        assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
        assert any(t.state == TrialState.COMPLETE for t in trials)


def test_every_complete_trial_reported_its_held_out_curve_to_the_pruner(study):
    out, _, _ = study
    for name, trials in _trials(out).items():
        for t in (t for t in trials if t.state == TrialState.COMPLETE):
            # eval.every = 4 over 12 steps: held-out rows at 4, 8 and 12, each an intermediate value
            assert sorted(t.intermediate_values) == [4, 8, 12], (name, t.number, t.intermediate_values)
            assert t.intermediate_values[12] == pytest.approx(heldout_rows(Path(t.user_attrs["run_dir"]), "psnr")[-1][1])


def test_the_run_directory_of_a_trial_is_found_by_its_identity(tmp_path):
    run_dir = tmp_path / "smoke" / "gsq-seed0"
    run_dir.mkdir(parents=True)
    (run_dir / "config.toml").write_text('[run]\nconfig_hash = "abc123"\nseed = 0\nworld_size = 1\n')
    assert _run_dir(tmp_path, ("abc123", 0)) == run_dir
    assert _run_dir(tmp_path, ("abc123", 1)) is None


def test_killed_trials_are_failed_with_a_reason_and_resumed_from_their_checkpoint(study):
    out, killed, _ = study
    trials = _trials(out)
    for name, running in killed.items():
        for dead, had_checkpoint in running:
            after = next(t for t in trials[name] if t.number == dead.number)
            assert after.state == TrialState.FAIL and after.user_attrs["stale"] is True
            assert "is gone" in after.user_attrs["fail_reason"]
            resumed = [t for t in trials[name] if t.user_attrs.get("resumes") == dead.number]
            assert len(resumed) == 1 and resumed[0].params == dead.params
            assert resumed[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
            assert resumed[0].user_attrs["run_folder"] == dead.user_attrs["run_folder"]
            if had_checkpoint:
                # resumed in place: one run directory in the folder, not a second one trained from scratch
                assert len(list(Path(dead.user_attrs["run_folder"]).rglob("config.toml"))) == 1


def test_nothing_was_trained_twice(study):
    out, _, _ = study
    for trials in _trials(out).values():
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        run_dirs = [t.user_attrs["run_dir"] for t in complete]
        assert len(set(run_dirs)) == len(run_dirs)
        folders = {t.user_attrs["run_folder"] for t in trials if "run_folder" in t.user_attrs}
        done = [p for f in folders for p in Path(f).rglob("metrics.json") if not restarted_reason(p.parent)]
        assert len(done) == len(complete)  # every finished training not stopped by the pruner is one complete trial


def test_the_best_configuration_is_written_and_runs_as_a_recipe(study):
    out, _, _ = study
    regs = registries()
    for quantizer, name in zip(("gsq", "vq"), STUDIES):
        best = optuna.load_study(study_name=name, storage=_storage(out)).best_trial
        overlay = out / "best" / f"{quantizer}-4bit.toml"
        recipe = load_recipe(str(overlay), regs=regs)
        assert recipe.optim.lr == pytest.approx(best.params["optim.lr"])
        assert recipe.train.steps == 12 and recipe.eval.split == load_recipe("smoke").eval.split
        assert recipe.data.image_size == load_recipe("smoke").data.image_size  # the rest comes from the base
    sweep = load_sweep(out / "retrain.toml")
    plan = build_sweep_plan(sweep, out / "retrain", regs)
    assert len(plan.points) == 2 * 5 and {p.identity.seed for p in plan.points} == {1, 2, 3, 4, 5}
    gsq_point = next(p for p in plan.points if p.point.quantizer == "gsq")
    best_gsq = optuna.load_study(study_name=STUDIES[0], storage=_storage(out)).best_trial
    assert gsq_point.identity.recipe.optim.lr == pytest.approx(best_gsq.params["optim.lr"])
    assert (out / "report" / "README.md").read_text().count("| gsq | 4 |") == 1


def test_the_report_regenerates_from_the_storage(study):
    out, _, _ = study
    result = run_cli("tune", str(out.parent / "tiny.toml"), "--out", str(out), "--report")
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout and (out / "report" / "gsq-4bit.png").exists()


# ---- overlays ------------------------------------------------------------------------------------


def test_an_overlay_merges_into_its_base_key_by_key(tmp_path):
    (tmp_path / "tuned.toml").write_text(textwrap.dedent("""
        extends = "smoke"
        [optim]
        lr = 2e-3
        [quantizers.gsq]
        beta = 0.5
    """))
    recipe = load_recipe(str(tmp_path / "tuned.toml"), overrides=["optim.lr=3e-3"])
    base = load_recipe("smoke")
    assert recipe.name == "tuned" and recipe.optim.lr == 3e-3  # --set applies on top of the overlay
    assert recipe.quantizers["gsq"] == {**base.quantizers["gsq"], "beta": 0.5}  # tables merge, not replace
    assert recipe.optim.ema_decay == base.optim.ema_decay


def test_an_overlay_of_an_overlay_file_found_beside_it(tmp_path):
    (tmp_path / "a.toml").write_text('extends = "smoke"\n[train]\nsteps = 7\n')
    (tmp_path / "b.toml").write_text('extends = "a.toml"\n[optim]\nlr = 5e-4\n')
    recipe = load_recipe(str(tmp_path / "b.toml"))
    assert (recipe.train.steps, recipe.optim.lr, recipe.name) == (7, 5e-4, "b")


def test_an_overlay_cycle_is_a_user_error(tmp_path):
    (tmp_path / "a.toml").write_text('extends = "b.toml"\n')
    (tmp_path / "b.toml").write_text('extends = "a.toml"\n')
    with pytest.raises(ConfigError, match="deep"):
        load_recipe(str(tmp_path / "a.toml"))


# ---- bad input -----------------------------------------------------------------------------------


def _tune_file(tmp_path, text: str) -> Path:
    path = tmp_path / "t.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_an_unknown_quantizer_is_one_line_with_a_suggestion_and_exit_2(tmp_path):
    path = _tune_file(tmp_path, 'name = "t"\nrecipe = "smoke"\nquantizers = ["gsqq"]\nrates = [4]\ntrials = 2\n'
                                '[set]\n"eval.every" = 2\n')
    result = run_cli("tune", str(path), "--out", str(tmp_path / "out"), "--dry-run")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "gsqq" in lines[0] and "gsq" in lines[0].split("gsqq", 1)[1]


@pytest.mark.parametrize("text, message", [
    ('trials = 0', "trials must be an integer >= 1"),
    ('trials = 2\nsampler = "tpee"', "did you mean 'tpe'"),
    ('trials = 2\npruner = "medain"', "pruner must be one of"),
    ('trials = 2\npruner = { kind = "median", startup = 2 }', "has no key 'startup'"),
    ('trials = 2\nmetric = "lpips"', "held-out metrics"),
    ('trials = 2\n[shared]\n"optim.lr" = { low = 1e-2, high = 1e-3, log = true }', "low 0.01 must be below"),
    ('trials = 2\n[shared]\n"quantizers.gsq.beta" = [0.1, 0.2]', "dotted recipe keys outside"),
    ('trials = 2\ntrails = 3', "did you mean 'trials'"),
])
def test_bad_tune_file_values_name_the_problem(tmp_path, text, message):
    path = _tune_file(tmp_path, f'name = "t"\nrecipe = "smoke"\nquantizers = ["gsq"]\nrates = [4]\n{text}\n')
    with pytest.raises(ConfigError, match=message) as info:
        load_tune(path)
    assert str(info.value).startswith(f"tune {path}") and "\n" not in str(info.value)


def test_bad_values_found_by_planning_exit_2_before_training(tmp_path):
    path = _tune_file(tmp_path, 'name = "t"\nrecipe = "smoke"\nquantizers = ["gsq"]\nrates = [4.5]\ntrials = 2\n'
                                '[set]\n"eval.every" = 2\n')
    result = run_cli("tune", str(path), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "whole bit rates" in result.stderr and not (tmp_path / "out" / "trials").exists()


def test_a_pruner_without_held_out_rows_is_refused(tmp_path):
    path = _tune_file(tmp_path, 'name = "t"\nrecipe = "smoke"\nquantizers = ["gsq"]\nrates = [4]\ntrials = 2\n')
    with pytest.raises(ConfigError, match="eval.every"):
        from qbench.tuning import build_plan

        build_plan(load_tune(path), tmp_path / "out", registries())


def test_the_shipped_tune_files_plan():
    regs = registries()
    from qbench.tuning import build_plan

    for path in sorted((ROOT / "benchmarks" / "tune").glob("*.toml")):
        plan = build_plan(load_tune(path), "/nonexistent/out", regs)
        assert len(plan.studies) == len(plan.tune.quantizers) * len(plan.tune.rates)
        assert all(s.space.tunables() for s in plan.studies)


def test_a_runner_on_this_host_is_stale_only_when_its_process_is_gone():
    """A stopped (SIGSTOP) or suspended runner misses heartbeats but lives: its trials are not failed."""
    import socket
    from types import SimpleNamespace

    from qbench.tuning.claim import GRACE_S, stale_reason

    now = time.time()
    old = now - 10 * GRACE_S
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    here = socket.gethostname()
    alive_late = SimpleNamespace(user_attrs={"worker": f"{here}:{os.getppid()}", "heartbeat": old})
    gone = SimpleNamespace(user_attrs={"worker": f"{here}:{dead.pid}", "heartbeat": now})
    elsewhere_late = SimpleNamespace(user_attrs={"worker": "another-node:12", "heartbeat": old})
    elsewhere_beating = SimpleNamespace(user_attrs={"worker": "another-node:12", "heartbeat": now})
    assert stale_reason(alive_late, now) == ""
    assert "is gone" in stale_reason(gone, now)
    assert "no heartbeat" in stale_reason(elsewhere_late, now)
    assert stale_reason(elsewhere_beating, now) == ""
