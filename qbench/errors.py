"""Error types that the CLI maps to exit codes.

``ConfigError`` (and its subclasses) are *user* errors: a wrong name, a bad
option value, a missing file.  The CLI prints their message on one line and
exits with status 2.  ``RunFailed`` marks a single training run as failed
(NaN loss, a plugin raising) while the other runs of the same command go on.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from enum import IntEnum


class ExitCode(IntEnum):
    """The ``qbench`` command's exit statuses."""

    OK = 0
    RUN_FAILED = 1  # a run failed; the others finished
    USER_ERROR = 2  # a ConfigError or PluginError: one line on stderr, nothing trained
    INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT


class QbenchError(Exception):
    """Base class of every error qbench raises on purpose."""


class ConfigError(QbenchError, ValueError):
    """A user error: unknown name, invalid option, missing data or weights."""


class ResumeRefused(ConfigError):
    """A run exists but cannot be continued as asked (another world size): training it afresh would be wrong."""


class PluginError(QbenchError):
    """A plugin is broken: duplicate names, a bad spec, a failing factory import."""


class RunFailed(QbenchError):
    """One run failed (for example a non-finite loss); others still run."""

    def __init__(self, reason: str, step: int | None = None):
        super().__init__(reason if step is None else f"step {step}: {reason}")
        self.reason = reason
        self.step = step


def one_line(exc: BaseException) -> str:
    """``"TypeName: first line of the message"`` (``"TypeName"`` when it has none), for one-line reports."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def suggest(name: str, known: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest known name, or ``""``."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_name_error(kind: str, name: str, known: Iterable[str]) -> ConfigError:
    known = sorted(known)
    hint = suggest(name, known) or f" (see: qbench list {kind}s)"
    return ConfigError(f"unknown {kind} {name!r}{hint}; known: {', '.join(known) or '(none)'}")


class MetricUnavailable(QbenchError):
    """A metric cannot be computed here (typically: pretrained weights are missing).

    The run still finishes; the metric is reported as unavailable with this
    message as the reason, never as a number.
    """
