"""The progress display of a tuning study: finished trials / planned, per study and in all, with the best so far.

Every trial that ends prints one line (state, study, trial, value or reason,
time).  On a terminal a status line below them is redrawn in place; in a log
the status goes with each event line and, between events, at most every
``LOG_INTERVAL_S`` seconds.  The counts come from the storage, so trials run
by other workers (Slurm jobs, a second ``qbench tune``) count too.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from qbench.platform.progress import StatusLine
from qbench.tuning.claim import state_of
from qbench.tuning.studies import best_trial
from qbench.tuning.trial import Outcome

REFRESH_S = 5.0  # reading every study's trials from the storage is not free


def _time(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


class TuneProgress(StatusLine):
    prefix = "tune"

    def __init__(self, plan, handles, stream: TextIO | None = None, enabled: bool = True):
        self.plan, self.handles = plan, handles
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.interactive = self.stream.isatty()
        self.started = time.perf_counter()
        self.last_status = self.last_read = 0.0
        self.text = ""

    def status(self, fresh: bool = False) -> str:
        now = time.perf_counter()
        if fresh or not self.text or now - self.last_read >= REFRESH_S:
            self.last_read = now
            planned = self.plan.tune.trials * len(self.plan.studies)
            done = running = 0
            bests = []
            for study in self.plan.studies:
                state = state_of(study, self.handles[study.name])
                done += min(state.finished, self.plan.tune.trials)
                running += state.active
                best = best_trial(self.handles[study.name])
                shown = f"{best.value:.2f}" if best is not None else "-"
                bests.append(f"{study.quantizer}@{study.rate:g} {state.finished}/{self.plan.tune.trials} best {shown}")
            self.text = (f"{done}/{planned} finished trials, {running} active, "
                         f"{_time(now - self.started)}; " + ", ".join(bests))
        return self.text

    def _write(self, text: str) -> None:
        if not self.enabled:
            return
        if self.interactive:
            self.stream.write("\r\033[K" + text + "\n" + self.status(fresh=True))
        else:
            self.stream.write(f"{text}  [{self.status(fresh=True)}]\n")
            self.last_status = time.perf_counter()
        self.stream.flush()

    def started_trial(self, study, number: int, note: str = "") -> None:
        self._write(f"start    {study.label} trial {number}{note}")

    def ended(self, outcome: Outcome) -> None:
        shown = f"{self.plan.tune.metric} {outcome.value:.4g}" if outcome.value is not None else ""
        detail = " ".join(x for x in (shown, outcome.reason) if x)
        self._write(f"{outcome.state.lower():8s} {outcome.study.label} trial {outcome.number}  "
                    f"{_time(outcome.seconds)}  {detail}")

    def note(self, text: str) -> None:
        self._write(text)

    def close(self) -> None:
        if self.enabled:
            self.stream.write(("\r\033[K" if self.interactive else "") + self.status(fresh=True) + "\n")
            self.stream.flush()
