"""Sending one run's progress to the loggers its recipe names (``train.loggers``).

``check_loggers`` finds every user error (unknown name, missing package,
bad option) before training.  ``open_loggers`` builds a ``LoggerGroup`` for
one run: on rank 0 it holds the recipe's loggers, elsewhere none, so under
DDP only rank 0 logs.  The group calls every logger; one that raises is
reported on one line and switched off for the rest of the run, because a
broken tracker must never cost a run that took hours of GPU time.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from qbench.errors import ConfigError, one_line
from qbench.logger import FAILED, INTERRUPTED, OK, Logger, RunInfo
from qbench.platform.plugins import Registries
from qbench.recipe.config import Recipe


def logger_names(recipe: Recipe) -> list[str]:
    return list(dict.fromkeys(recipe.train.loggers))


def with_loggers(recipe: Recipe, names: Iterable[str]) -> Recipe:
    """``recipe`` with ``names`` added to ``train.loggers`` (what ``qbench run --log`` does)."""
    merged = list(dict.fromkeys([*recipe.train.loggers, *names]))
    return dataclasses.replace(recipe, train=dataclasses.replace(recipe.train, loggers=merged))


def _missing_modules(modules: Iterable[str]) -> list[str]:
    # find_spec on a top-level name looks the package up without importing it
    return [m for m in modules if importlib.util.find_spec(m) is None]


def check_loggers(recipe: Recipe, regs: Registries) -> None:
    """Raise ``ConfigError`` for an unknown logger, a missing package or a bad option.

    Builds each logger once: constructors only store and check their
    options, so nothing is opened and no tracker package is imported.
    """
    for name in logger_names(recipe):
        spec = regs.loggers.get(name)  # unknown name: did-you-mean
        missing = _missing_modules(spec.requires)
        if missing:
            hint = f": {spec.install}" if spec.install else ""
            packages = f"{', '.join(missing)} package{'s' if len(missing) > 1 else ''}"
            raise ConfigError(f"logger {name!r} needs the {packages}{hint}")
        regs.loggers.create(name, **recipe.logger_options(name))  # option names and values


def warn(message: str) -> None:
    print(f"qbench: warning: {message}", file=sys.stderr, flush=True)


class LoggerGroup:
    """The loggers of one run, called together; one that raises is dropped with one warning."""

    def __init__(self, loggers: Mapping[str, Logger] | None = None):
        self.active: dict[str, Logger] = dict(loggers or {})
        self.finished = False
        self.last_step = 0

    def _call(self, method: str, *args: Any) -> None:
        for name, logger in list(self.active.items()):
            try:
                getattr(logger, method)(*args)
            except Exception as exc:
                del self.active[name]
                warn(f"logger {name!r} failed in {method} ({one_line(exc)}); it is off for the rest of this run")

    def start(self, run: RunInfo) -> None:
        self.last_step = run.start_step
        self._call("start", run)

    def log_row(self, row: Mapping[str, Any]) -> None:
        """One log.csv row: ``step`` plus scalars."""
        self.last_step = int(row["step"])
        self._call("log_scalars", self.last_step, {k: float(v) for k, v in row.items() if k != "step"})

    def log_images(self, step: int, name: str, image) -> None:
        self._call("log_images", step, name, image)

    def log_histograms(self, step: int, histograms: Mapping[str, Any]) -> None:
        for name, counts in histograms.items():
            self._call("log_histogram", step, name, counts)

    def log_metrics(self, results: Mapping[str, Mapping[str, Any]]) -> None:
        """Evaluation results as ``evaluate`` returns them; only computed values are sent."""
        values = {name: float(result["value"]) for name, result in results.items()
                  if result.get("status") == "ok" and result.get("value") is not None}
        if values:
            self._call("log_metrics", values)

    def finish(self, status: str, reason: str = "") -> None:
        if self.finished:
            return
        self.finished = True
        self._call("finish", status, reason)
        self.active.clear()

    def __enter__(self) -> LoggerGroup:
        return self

    def __exit__(self, kind, exc, traceback) -> None:
        # a run that raised still ends in the trackers, marked as such: stopped from outside (Ctrl-C, a
        # preemption, an exit: not an Exception) is interrupted, and resumes; an error is a failure
        if exc is not None:
            self.finish(FAILED if isinstance(exc, Exception) else INTERRUPTED, one_line(exc))
        self.finish(OK)


def open_loggers(recipe: Recipe, regs: Registries, run: RunInfo, *, enabled: bool = True) -> LoggerGroup:
    """Create and start the recipe's loggers for ``run``; an empty group when not ``enabled``."""
    if not enabled:
        return LoggerGroup()
    loggers: dict[str, Logger] = {}
    for name in logger_names(recipe):
        try:
            loggers[name] = regs.loggers.create(name, **recipe.logger_options(name))
        except Exception as exc:  # checked before training; a failure now costs this logger only
            warn(f"logger {name!r} could not be created ({one_line(exc)}); this run goes on without it")
    group = LoggerGroup(loggers)
    group.start(run)
    return group
