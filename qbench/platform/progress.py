"""Progress bars that suit both a terminal and a log file.

On a terminal the bar redraws often; when stderr is not a terminal (CI, a
batch job's log) it writes a line at most every ``LOG_INTERVAL_S`` seconds,
so long runs still show progress without flooding the log.
"""

from __future__ import annotations

import sys

from tqdm import tqdm

LOG_INTERVAL_S = 30.0


def progress_bar(**kwargs):
    interactive = sys.stderr.isatty()
    kwargs.setdefault("file", sys.stderr)
    kwargs.setdefault("dynamic_ncols", interactive)
    kwargs.setdefault("mininterval", 0.1 if interactive else LOG_INTERVAL_S)
    kwargs.setdefault("leave", not interactive)
    return tqdm(**kwargs)
