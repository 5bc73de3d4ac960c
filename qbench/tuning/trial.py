"""One trial: a training run in a fresh process, watched for its held-out curve, pruned or told.

A trial trains like a sweep point: ``python -m qbench.sweeps.worker`` runs it
in its own folder (``OUT/trials/QUANTIZER-RATEbit/trial-NNNN``), which
resumes an interrupted run of the same identity from its checkpoint and
skips one already done.  While it trains, the runner (in the ``qbench tune``
process or a Slurm worker) reads the run's ``log.csv``: every held-out row
(``eval.every``, measured on the validation split) is reported to Optuna as
an intermediate value, and when the pruner says so the training process is
stopped and the trial told PRUNED (its run folder gets a ``restarted.txt``
saying it was pruned, so that nothing resumes it and reports list it apart).
A finished run is told COMPLETE with its final validation score; a failed
run (a non-finite loss, a crash, a worker killed) is told FAIL with the
reason in the trial's ``fail_reason`` attribute, never dropped.  The runner
writes a heartbeat (``heartbeat``, ``worker`` attributes) so that a trial
whose runner died is recognised (``qbench.tuning.claim``).
"""

from __future__ import annotations

import csv
import ctypes
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from qbench.errors import ConfigError
from qbench.platform.plugins import Registries
from qbench.recipe.identity import resolve
from qbench.rundir.directory import CONFIG_FILE, LOG_FILE, mark_restarted, read_metrics, restarted_reason
from qbench.sweeps import existing
from qbench.sweeps.worker import PointResult, PointTask
from qbench.tuning.plan import Study, TunePlan

HEARTBEAT_S = 20.0
TASK_FILE, RESULT_FILE, WORKER_LOG = "task.json", "result.json", "worker.log"


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def heldout_rows(run_dir: Path | None, metric: str) -> list[tuple[int, float]]:
    """(step, value) of every held-out row of ``run_dir``'s log.csv (written atomically by the csv logger)."""
    if run_dir is None:
        return []
    try:
        with open(run_dir / LOG_FILE, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, csv.Error):
        return []
    found = []
    for row in rows:
        text = row.get(f"heldout_{metric}") or ""
        try:
            found.append((int(float(row["step"])), float(text)))
        except (KeyError, TypeError, ValueError):
            continue
    return found


def _run_dir(folder: Path, key: tuple[str, int]) -> Path | None:
    """The run directory of identity ``key`` below ``folder`` that is being written (newest config first)."""
    candidates = [p.parent for p in folder.rglob(CONFIG_FILE) if existing._identity_of_config(p.parent)[0] == key
                  and not restarted_reason(p.parent)]
    return max(candidates, key=lambda d: (d / CONFIG_FILE).stat().st_mtime) if candidates else None


def _die_with_parent() -> None:
    """In the child: be killed when the runner dies (kill -9 of the runner alone leaves no orphan training)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:  # not Linux: a killed runner may leave its training process to finish alone
        pass


@dataclass
class Outcome:
    study: Study
    number: int
    state: str  # COMPLETE | PRUNED | FAIL
    value: float | None = None
    reason: str = ""
    seconds: float = 0.0


@dataclass
class RunningTrial:
    plan: TunePlan
    study: Study
    handle: optuna.Study
    trial: optuna.Trial
    key: tuple[str, int]
    folder: Path
    process: subprocess.Popen
    total_steps: int
    started: float = field(default_factory=time.perf_counter)
    beat: float = field(default_factory=time.time)
    reported: set[int] = field(default_factory=set)
    run_dir: Path | None = None

    def heartbeat(self) -> None:
        if time.time() - self.beat >= HEARTBEAT_S:
            self.beat = time.time()
            self.trial.set_user_attr("heartbeat", self.beat)

    def poll(self) -> Outcome | None:
        """Report new held-out rows, prune if told to, and tell the trial once the process ends."""
        self.heartbeat()
        exited = self.process.poll() is not None  # read the log after this, so no row is missed
        # looked up at every poll: a killed trial without a checkpoint leaves its run directory behind, and the
        # resumed one trains afresh in a newer one, which must take over the curve
        self.run_dir = _run_dir(self.folder, self.key) or self.run_dir
        for step, value in heldout_rows(self.run_dir, self.plan.tune.metric):
            if step in self.reported or not math.isfinite(value):
                continue
            self.trial.report(value, step)
            self.reported.add(step)
            if step < self.total_steps and not exited and self.trial.should_prune():
                if self.process.poll() is None:
                    return self.prune(step, value)
                return self.poll()  # it finished while the pruner was asked: a complete training is a complete trial
        return self.finish() if exited else None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def prune(self, step: int, value: float) -> Outcome:
        self.stop()
        if self.run_dir is not None:
            mark_restarted(self.run_dir, f"pruned by qbench tune at step {step} (held-out {self.plan.tune.metric} "
                                         f"{value:.4g}; study {self.study.name}, trial {self.trial.number}); "
                                         "not to be resumed")
        self.handle.tell(self.trial, state=TrialState.PRUNED)
        return Outcome(self.study, self.trial.number, "PRUNED", value, f"at step {step}", self.seconds)

    @property
    def seconds(self) -> float:
        return round(time.perf_counter() - self.started, 1)

    def finish(self) -> Outcome:
        result_file = self.folder / RESULT_FILE
        try:
            result = PointResult.from_dict(json.loads(result_file.read_text()))
        except (OSError, ValueError, TypeError):
            code = self.process.returncode
            why = f"killed by signal {-code}" if code < 0 else f"exited with status {code}"
            return fail(self, f"training process {why}; see {self.folder / WORKER_LOG}")
        if result.status not in ("ok", "skipped"):
            return fail(self, f"training {result.status}: {result.reason}")
        try:
            record = read_metrics(result.run_dir)
            entry = record["metrics"][self.plan.tune.metric]
            value = float(entry["value"]) if entry.get("status", "ok") == "ok" else float("nan")
        except (ValueError, KeyError, TypeError) as exc:
            return fail(self, f"no final {self.plan.tune.metric} in {result.run_dir}: {exc}")
        if not math.isfinite(value):
            return fail(self, f"diverged: final val {self.plan.tune.metric} is {value}")
        self.trial.set_user_attr("run_dir", result.run_dir)
        bits = (record["metrics"].get("bits") or {}).get("value")
        if bits is not None:
            self.trial.set_user_attr("bits_per_position", bits)
        self.handle.tell(self.trial, value)
        return Outcome(self.study, self.trial.number, "COMPLETE", value, "", self.seconds)


def fail(running: RunningTrial | None, reason: str, *, handle=None, trial=None, study=None) -> Outcome:
    """Tell a trial FAIL with its reason recorded (``fail_reason``)."""
    handle = handle or running.handle
    trial = trial or running.trial
    study = study or running.study
    reason = " ".join(reason.split())[:1000]
    trial.set_user_attr("fail_reason", reason)
    handle.tell(trial, state=TrialState.FAIL)
    return Outcome(study, trial.number, "FAIL", None, reason, running.seconds if running else 0.0)


def start(plan: TunePlan, study: Study, handle: optuna.Study, trial: optuna.Trial, regs: Registries,
          threads: int) -> RunningTrial | Outcome:
    """Draw the trial's configuration and start its training process (or fail it at once, with the reason)."""
    try:
        values = study.space.suggest(trial)
        recipe = plan.trial_recipe(values)
        identity = resolve(recipe, study.quantizer, regs)
    except ConfigError as exc:  # a combination the constructor refuses: recorded, the study goes on
        return fail(None, f"configuration refused: {exc}", handle=handle, trial=trial, study=study)
    folder = Path(trial.user_attrs.get("run_folder") or study.folder / f"trial-{trial.number:04d}")
    folder.mkdir(parents=True, exist_ok=True)
    trial.set_user_attr("run_folder", str(folder))
    trial.set_user_attr("config_hash", identity.config_hash)
    trial.set_user_attr("values", {k: v for k, v in values.items()})
    task = PointTask(index=trial.number, label=f"{study.quantizer} trial {trial.number}", quantizer=study.quantizer,
                     recipe=recipe.to_dict(), config_hash=identity.config_hash, seed=identity.seed, out=str(folder),
                     sweep={"name": study.name, "file": plan.tune.path,
                            "point": {**trial.params, "trial": trial.number}},
                     threads=threads)
    (folder / TASK_FILE).write_text(task.to_json())
    (folder / RESULT_FILE).unlink(missing_ok=True)
    env = dict(os.environ)
    if threads > 0:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    with open(folder / WORKER_LOG, "a") as log:
        process = subprocess.Popen([sys.executable, "-m", "qbench.sweeps.worker", str(folder / TASK_FILE),
                                    str(folder / RESULT_FILE)], stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=env, preexec_fn=_die_with_parent)
    return RunningTrial(plan, study, handle, trial, (identity.config_hash, identity.seed), folder, process,
                        recipe.train.steps)


def values_of(trial_params: dict[str, Any], study: Study) -> dict[str, Any]:
    """The dotted recipe keys a finished trial's parameters stand for."""
    return study.space.values(trial_params)
