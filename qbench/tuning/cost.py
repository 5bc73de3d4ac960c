"""What a tuning study cost, read back from its storage: trials, trial-hours, steps, busy wall time.

Every number comes from the trials' own timestamps and held-out curves in
the Optuna storage, so a study continued over several sittings (or on
several machines) adds up the same way.  A trial's time is
``datetime_complete - datetime_start``; the busy wall time is the union of
those intervals (time when at least one trial ran: pauses between sittings
do not count); steps are the planned steps for a complete trial and the
last held-out step for a pruned one.  A trial that was interrupted and
failed as stale is counted as a trial but not in the hours (its end is when
a later worker noticed, not when it stopped); its resumed successor counts
the remaining part.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import optuna
from optuna.trial import FrozenTrial, TrialState

from qbench.tuning.studies import trials_in


@dataclass(frozen=True)
class Cost:
    finished: int  # complete + pruned
    complete: int
    pruned: int
    failed: int
    trial_hours: float  # the finished and non-stale failed trials' run times, summed
    busy_hours: float  # the union of those intervals: the wall time some trial was running
    steps: int  # steps trained by finished trials
    steps_per_trial: int

    @property
    def full_length_trials(self) -> float:
        return self.steps / self.steps_per_trial if self.steps_per_trial else float("nan")


def _timed(trial: FrozenTrial) -> bool:
    if trial.datetime_start is None or trial.datetime_complete is None:
        return False
    return trial.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
        trial.state == TrialState.FAIL and not trial.user_attrs.get("stale"))


def _union_hours(intervals: list[tuple[datetime, datetime]]) -> float:
    total, end = 0.0, None
    for start, stop in sorted(intervals):
        if end is None or start > end:
            total += (stop - start).total_seconds()
            end = stop
        elif stop > end:
            total += (stop - end).total_seconds()
            end = stop
    return total / 3600


def cost_of(handles: dict[str, optuna.Study], steps_per_trial: int) -> Cost:
    """The cost of the studies in ``handles`` together."""
    trials = [t for handle in handles.values() for t in trials_in(handle)]
    count = {s: sum(t.state == s for t in trials) for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    timed = [t for t in trials if _timed(t)]
    steps = 0
    for t in trials:
        if t.state == TrialState.COMPLETE:
            steps += steps_per_trial
        elif t.state == TrialState.PRUNED:
            steps += max(t.intermediate_values, default=0)
    return Cost(
        finished=count[TrialState.COMPLETE] + count[TrialState.PRUNED],
        complete=count[TrialState.COMPLETE],
        pruned=count[TrialState.PRUNED],
        failed=count[TrialState.FAIL],
        trial_hours=sum((t.datetime_complete - t.datetime_start).total_seconds() for t in timed) / 3600,
        busy_hours=_union_hours([(t.datetime_start, t.datetime_complete) for t in timed]),
        steps=int(steps),
        steps_per_trial=int(steps_per_trial),
    )


def cost_lines(cost: Cost) -> list[str]:
    """The report's cost paragraph."""
    return [
        "## Cost", "",
        f"{cost.finished} finished trials ({cost.complete} complete, {cost.pruned} pruned) and {cost.failed} failed; "
        f"{cost.steps:,} training steps, {cost.full_length_trials:.1f} full-length ({cost.steps_per_trial}-step) "
        f"trial equivalents; {cost.trial_hours:.2f} trial-hours; {cost.busy_hours:.2f} h of wall time with at least "
        f"one trial running (pauses between sittings not counted). A trial-hour is a CPU-hour where each trial "
        "has one core (`--jobs 2` on 2 cores). From the storage's timestamps; trials failed as stale after an "
        "interruption are counted but not timed.", "",
    ]
