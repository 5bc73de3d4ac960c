"""``csv``: the run directory's ``log.csv``, one row per logged training step.

The default logger, and the file ``qbench report`` draws training curves
from.  Each row replaces the whole file atomically, so a crash never leaves
half a row.  A resumed run starts from the rows its checkpoint kept: the
steps after the checkpoint are trained again and logged anew.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path

from qbench import atomic
from qbench.logger import Logger, RunInfo

LOG_FILE = "log.csv"


class CSVLogger(Logger):
    def start(self, run: RunInfo) -> None:
        self.path = Path(run.run_dir) / LOG_FILE
        self.rows = [dict(row) for row in run.history]

    def log_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        self.rows.append({"step": step, **scalars})
        columns: list[str] = []
        for row in self.rows:
            columns.extend(k for k in row if k not in columns)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns)
        writer.writeheader()
        writer.writerows(self.rows)
        atomic.write_text(self.path, buf.getvalue())
