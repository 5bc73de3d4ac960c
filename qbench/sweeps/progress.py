"""One progress display for a whole sweep: points done / total, running, failed, ETA.

Every finished point prints one line (status, label, time, run directory or
reason).  On a terminal a status line below them is redrawn in place; in a
log (CI, a batch job) the status goes with each event line and, between
events, at most every ``qbench.platform.progress.LOG_INTERVAL_S`` seconds.

The ETA is the remaining points' planned estimates, divided among the
parallel slots and scaled by how long finished points took against their
estimates.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from qbench.platform.progress import StatusLine


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


class SweepProgress(StatusLine):
    prefix = "sweep"

    def __init__(self, total: int, already_done: int, parallel: int, estimates: dict[int, float],
                 stream: TextIO | None = None, enabled: bool = True):
        self.total, self.parallel = total, max(1, parallel)
        self.done, self.failed = already_done, 0
        self.estimates = dict(estimates)  # point index -> planned seconds
        self.running: dict[int, float] = {}  # point index -> start time
        self.spent = self.planned = 0.0  # finished points: measured and planned seconds
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.interactive = self.stream.isatty()
        self.last_status = 0.0

    def eta_s(self) -> float:
        scale = self.spent / self.planned if self.planned > 0 else 1.0
        now = time.perf_counter()
        left = sum(max(0.0, self.estimates.get(i, 0.0) * scale - (now - t)) for i, t in self.running.items())
        left += sum(s * scale for i, s in self.estimates.items() if i not in self.running)
        return left / self.parallel

    def status(self) -> str:
        return (f"{self.done}/{self.total} done, {len(self.running)} running, {self.failed} failed, "
                f"ETA {_minutes(self.eta_s())}")

    def _line(self, text: str) -> None:
        if not self.enabled:
            return
        if self.interactive:
            self.stream.write("\r\033[K" + text + "\n" + self.status())
        else:
            self.stream.write(text + "\n")
            self.last_status = time.perf_counter()
        self.stream.flush()

    def started(self, index: int, label: str, note: str = "") -> None:
        self.running[index] = time.perf_counter()
        self._line(f"start   {label}{note}  [{self.status()}]" if not self.interactive else f"start   {label}{note}")

    def finished(self, index: int, label: str, status: str, seconds: float, detail: str) -> None:
        self.running.pop(index, None)
        planned = self.estimates.pop(index, 0.0)
        if status in ("ok", "skipped"):
            self.done += 1
        elif status == "failed":
            self.failed += 1
        if status == "ok" and planned > 0:
            self.spent, self.planned = self.spent + seconds, self.planned + planned
        text = f"{status:7s} {label}  {_minutes(seconds)}  {detail}"
        self._line(text if self.interactive else f"{text}  [{self.status()}]")

    def note(self, text: str) -> None:
        """A line about a point that neither starts nor ends it (e.g. its job was requeued)."""
        self._line(text if self.interactive else f"{text}  [{self.status()}]")

    def close(self) -> None:
        if self.enabled and self.interactive:
            self.stream.write("\r\033[K" + self.status() + "\n")
            self.stream.flush()
