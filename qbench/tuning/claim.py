"""Which trial a worker starts next, decided under one lock so that the count of finished trials is exact.

Every worker (a ``--jobs`` slot of ``qbench tune`` or a Slurm job) claims its
next trial holding ``OUT/.tune.lock`` (``fcntl.flock``, released when the
process dies).  Under the lock it:

1. fails the *stale* trials: RUNNING trials whose runner is gone, i.e. a
   process of this host that no longer exists (``kill -9``: seen at once), or
   a heartbeat older than ``GRACE_S`` (a node that died).  Each is told FAIL
   with ``fail_reason`` and ``stale = true`` and its parameters are queued
   again (``enqueue_trial``) with its run folder, so the next trial resumes
   the killed training from its checkpoint: no finished work is lost, no
   configuration trains twice from scratch, and stale failures do not count
   against ``max_failures``;
2. picks a study: one with a queued (WAITING) trial first, else the one with
   the fewest finished + active trials that still needs some, where a study
   needs a trial while finished (COMPLETE + PRUNED) + active (RUNNING +
   WAITING) < planned and its failures are below the cap;
3. asks it for a trial and stamps the worker and a heartbeat on it.

A study is settled when it has its planned finished trials (or hit the
failure cap) and nothing active; a worker stops when every study is.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from qbench.tuning.plan import Study, TunePlan
from qbench.tuning.studies import ACTIVE, FINISHED, trials_in
from qbench.tuning.trial import worker_id

GRACE_S = 120.0  # a heartbeat this old (6 missed beats) means the runner is gone
LOCK_FILE = ".tune.lock"


@contextlib.contextmanager
def tune_lock(out: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # no flock here: one worker per study folder is then the user's care
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    with open(out / LOCK_FILE, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # someone else's process, or not ours to ask
        return True
    return True


def stale_reason(trial: optuna.trial.FrozenTrial, now: float) -> str:
    """Why a RUNNING trial's runner is gone, or "" while it lives."""
    worker = str(trial.user_attrs.get("worker", ""))
    host, _, pid = worker.rpartition(":")
    if host == socket.gethostname() and pid.isdigit() and int(pid) != os.getpid():
        # a runner on this host is judged by its process alone: a stopped or suspended one is late, not gone
        return "" if _alive(int(pid)) else f"its runner {worker} is gone (killed?)"
    beat = trial.user_attrs.get("heartbeat")
    if isinstance(beat, (int, float)) and now - beat > GRACE_S:
        return f"no heartbeat from {worker} for {now - beat:.0f} s"
    return ""


def fail_stale(handle: optuna.Study) -> list[int]:
    """Fail the stale trials of one study and queue their parameters again; their numbers."""
    now, failed = time.time(), []
    storage = handle._storage  # the public Study has no way to fail another worker's trial
    for trial in trials_in(handle, (TrialState.RUNNING,)):
        why = stale_reason(trial, now)
        if not why:
            continue
        step = trial.last_step
        where = f" after step {step}" if step is not None else ""
        storage.set_trial_user_attr(trial._trial_id, "fail_reason", f"stale: {why}{where}; parameters queued again")
        storage.set_trial_user_attr(trial._trial_id, "stale", True)
        try:
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:  # another worker got there first
            continue
        handle.enqueue_trial(trial.params, user_attrs={"resumes": trial.number,
                                                        "run_folder": trial.user_attrs.get("run_folder", "")})
        failed.append(trial.number)
    return failed


@dataclass
class StudyState:
    study: Study
    handle: optuna.Study
    finished: int
    active: int
    waiting: int
    failures: int  # not counting stale ones

    def needs(self, planned: int, cap: int) -> bool:
        return self.waiting > 0 or (self.finished + self.active < planned and self.failures < cap)

    def settled(self, planned: int, cap: int) -> bool:
        return self.active == 0 and (self.finished >= planned or self.failures >= cap)


def state_of(study: Study, handle: optuna.Study) -> StudyState:
    trials = trials_in(handle)
    fails = [t for t in trials if t.state == TrialState.FAIL and not t.user_attrs.get("stale")]
    return StudyState(study, handle, sum(t.state in FINISHED for t in trials), sum(t.state in ACTIVE for t in trials),
                      sum(t.state == TrialState.WAITING for t in trials), len(fails))


def claim(plan: TunePlan, handles: dict[str, optuna.Study]) -> tuple[Study, optuna.Study, optuna.Trial] | None:
    """The next trial to run, or None when no study needs one now."""
    tune = plan.tune
    with tune_lock(plan.out):
        states = []
        for study in plan.studies:
            fail_stale(handles[study.name])
            states.append(state_of(study, handles[study.name]))
        open_ = [s for s in states if s.needs(tune.trials, tune.failure_cap)]
        if not open_:
            return None
        pick = min(open_, key=lambda s: (s.waiting == 0, s.finished + s.active))
        trial = pick.handle.ask()
        trial.set_user_attr("worker", worker_id())
        trial.set_user_attr("heartbeat", time.time())
        return pick.study, pick.handle, trial


def all_settled(plan: TunePlan, handles: dict[str, optuna.Study]) -> bool:
    tune = plan.tune
    return all(state_of(s, handles[s.name]).settled(tune.trials, tune.failure_cap) for s in plan.studies)
