"""Status lines of qbench sweep and qbench tune: redrawn on a terminal, rationed in a log."""

import io

from qbench.platform import progress
from qbench.sweeps.progress import SweepProgress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_a_prefixed_status_line_at_most_once_per_interval(monkeypatch):
    log = io.StringIO()
    bar = SweepProgress(total=3, already_done=1, parallel=1, estimates={}, stream=log)
    now = [1000.0]
    monkeypatch.setattr(progress.time, "perf_counter", lambda: now[0])
    for t in (1000.0, 1001.0, 1000.0 + progress.LOG_INTERVAL_S + 1):
        now[0] = t
        bar.tick()
    lines = log.getvalue().splitlines()
    assert len(lines) == 2 and all(line.startswith("sweep: ") for line in lines)
    assert bar.status() in lines[0]


def test_a_terminal_redraws_the_status_in_place_and_nothing_when_disabled():
    screen = Terminal()
    SweepProgress(total=2, already_done=0, parallel=1, estimates={}, stream=screen).tick()
    assert screen.getvalue().startswith("\r\033[K") and "\n" not in screen.getvalue()
    quiet = io.StringIO()
    SweepProgress(total=2, already_done=0, parallel=1, estimates={}, stream=quiet, enabled=False).tick()
    assert quiet.getvalue() == ""
