"""Progress bars that suit both a terminal and a log file.

On a terminal the bar redraws often; when stderr is not a terminal (CI, a
batch job's log) it writes a line at most every ``LOG_INTERVAL_S`` seconds,
so long runs still show progress without flooding the log.
"""

from __future__ import annotations

import sys
import time

from tqdm import tqdm

LOG_INTERVAL_S = 30.0


def progress_bar(**kwargs):
    interactive = sys.stderr.isatty()
    kwargs.setdefault("file", sys.stderr)
    kwargs.setdefault("dynamic_ncols", interactive)
    kwargs.setdefault("mininterval", 0.1 if interactive else LOG_INTERVAL_S)
    kwargs.setdefault("leave", not interactive)
    return tqdm(**kwargs)


class StatusLine:
    """A status line that a subclass keeps up to date while it waits (``status()`` gives its text).

    On a terminal ``tick`` redraws the line in place; in a log it writes
    ``"{prefix}: {status}"`` at most every ``LOG_INTERVAL_S`` seconds.
    Subclasses set ``stream``, ``enabled``, ``interactive`` and ``last_status``.
    """

    prefix = "progress"

    def status(self) -> str:
        raise NotImplementedError

    def tick(self) -> None:
        """Called while waiting: redraw (terminal) or an occasional status line (log)."""
        if not self.enabled:
            return
        now = time.perf_counter()
        if self.interactive:
            self.stream.write("\r\033[K" + self.status())
            self.stream.flush()
        elif now - self.last_status >= LOG_INTERVAL_S:
            self.last_status = now
            self.stream.write(f"{self.prefix}: {self.status()}\n")
            self.stream.flush()
