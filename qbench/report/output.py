"""The output folder of ``qbench report``: all files appear together, stale ones go.

A report is several files (README.md, summary.csv, plots) that must agree
with each other.  They are first written into a staging folder inside the
output folder; only when every file is complete are they moved into place
(one rename each, milliseconds in all), so a report killed while it renders
plots leaves the previous report untouched.  A manifest
(``.qbench-report.json``) lists what the last report wrote: files of the
previous report that the new one does not write (plots of a table that no
longer exists) are removed, and no other file in the folder is ever touched.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from qbench import atomic
from qbench.errors import ConfigError

MANIFEST = ".qbench-report.json"
STAGING_PREFIX = ".qbench-report-staging-"


def check_writable(out: Path) -> None:
    """A one-line ``ConfigError`` unless ``out`` is (or can be made) a writable folder."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder")
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"--out {out}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out}: no permission to write in {probe}")


class ReportDirectory:
    """``with ReportDirectory(out) as stage: write into stage ...``: files move to ``out`` on success."""

    def __init__(self, out: str | Path):
        self.out = Path(out)

    def __enter__(self) -> Path:
        check_writable(self.out)
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            for leftover in self.out.glob(f"{STAGING_PREFIX}*"):  # from a report killed earlier
                shutil.rmtree(leftover, ignore_errors=True)
            self.stage = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.out))
        except OSError as exc:
            raise ConfigError(f"--out {self.out}: {exc.strerror or exc}") from None
        return self.stage

    def __exit__(self, kind, value, traceback) -> bool:
        try:
            if kind is None:
                self._publish()
        except OSError as exc:
            raise ConfigError(f"--out {self.out}: cannot write the report: {exc.strerror or exc}") from None
        finally:
            shutil.rmtree(self.stage, ignore_errors=True)
        return False

    def _previous(self) -> list[str]:
        try:
            names = json.loads((self.out / MANIFEST).read_text()).get("files", [])
        except (OSError, ValueError, AttributeError):
            return []
        return [n for n in names if isinstance(n, str) and "/" not in n and not n.startswith(".")]

    def _publish(self) -> None:
        written = sorted(p.name for p in self.stage.iterdir() if p.is_file())
        for name in written:
            os.replace(self.stage / name, self.out / name)
        for stale in set(self._previous()) - set(written):
            try:
                (self.out / stale).unlink()
            except FileNotFoundError:
                pass
        atomic.write_json(self.out / MANIFEST, {"files": written})
