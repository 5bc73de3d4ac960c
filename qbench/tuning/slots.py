"""A worker's loop: keep up to N trials training, claim the next as one ends, stop when every study is settled.

One loop runs in the ``qbench tune`` process for ``--jobs N`` (N trials at a
time, each a training process with ``cores // N`` threads) and one in each
Slurm job (N = 1).  The loop is single-threaded: it polls its training
processes, so pruning, heartbeats and the storage are all handled from one
place.  On Ctrl-C (or any error) the training processes are stopped; their
trials stay RUNNING in the storage, and the next ``qbench tune`` (or another
worker) finds them stale, fails them with the reason and resumes their
parameters from the checkpoint (``qbench.tuning.claim``).
"""

from __future__ import annotations

import time

from qbench.platform.plugins import Registries
from qbench.tuning.claim import all_settled, claim
from qbench.tuning.plan import TunePlan
from qbench.tuning.trial import Outcome, RunningTrial, start

POLL_S = 0.5
IDLE_S = 5.0  # nothing to claim: look again this often (other workers' trials may fail or go stale)


def run_slots(plan: TunePlan, handles, regs: Registries, *, jobs: int, threads: int, progress) -> list[Outcome]:
    """Run trials until every study is settled; the outcomes of the trials this loop ran."""
    running: list[RunningTrial] = []
    outcomes: list[Outcome] = []
    next_claim = 0.0
    try:
        while True:
            while len(running) < jobs and time.perf_counter() >= next_claim:
                got = claim(plan, handles)
                if got is None:
                    next_claim = time.perf_counter() + IDLE_S
                    break
                study, handle, trial = got
                started = start(plan, study, handle, trial, regs, threads)
                if isinstance(started, Outcome):
                    outcomes.append(started)
                    progress.ended(started)
                    continue
                resumes = trial.user_attrs.get("resumes")
                progress.started_trial(study, trial.number, f" (resumes trial {resumes})" if resumes is not None else "")
                running.append(started)
            for trial in list(running):
                outcome = trial.poll()
                if outcome is not None:
                    running.remove(trial)
                    outcomes.append(outcome)
                    progress.ended(outcome)
                    next_claim = 0.0
            if not running and next_claim > time.perf_counter() and all_settled(plan, handles):
                return outcomes
            progress.tick()
            time.sleep(POLL_S)
    finally:
        for trial in running:  # interrupted: stop our training; the trials go stale and resume next time
            trial.stop()
