"""The Python API for notebooks: ``qbench.run``, ``qbench.sweep``, ``qbench.load_runs``, ``qbench.load_tokenizer``.

The same work as ``qbench run``, ``qbench sweep`` and ``qbench report``,
with Python values in and out instead of exit statuses and printed tables.
Bad input is a ``qbench.ConfigError`` (one line per problem) raised before
any training, as the CLI's exit status 2 is, and worded for Python (the
argument's name, not a command-line flag).  Documented in
docs/python-api.md; ``qbench/__init__.py`` re-exports these names lazily, so
``import qbench`` stays torch-free.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qbench.commands import DEFAULT_OUT, SweepOutcome, checked_recipe, run_sweep
from qbench.comparison.preflight import check_out_root, check_writable_folder
from qbench.comparison.runner import RunOutcome, run_comparison
from qbench.errors import ConfigError
from qbench.platform.plugins import registries
from qbench.recipe.checks import MAX_SEED
from qbench.report.columns import KNOWN_ORDER, metric_columns

if TYPE_CHECKING:
    import pandas as pd

    from qbench.engine.model import Tokenizer

DEFAULT_RECIPE = "cpu-tuned"
PathLike = (str, os.PathLike)


def run(quantizers: str | Iterable[str], recipe: str | Path = DEFAULT_RECIPE, overrides: Iterable[str] = (),
        seed: int | None = None, out: str | Path = DEFAULT_OUT, progress: bool = True) -> list[RunOutcome]:
    """Train and score each quantizer under one recipe, as ``qbench run`` does; one run directory each.

    ``quantizers`` is a list of names or ``"gsq,vq"``; ``recipe`` a recipe
    name or TOML file; ``overrides`` are ``--set`` items (``"train.steps=200"``).
    Returns one ``RunOutcome`` per quantizer, in order: ``quantizer``,
    ``options``, ``run_dir``, ``status`` (``"ok"`` or ``"failed"``), ``reason``,
    ``metrics`` (name -> ``{"value", "status", ...}``) and ``record`` (the
    run's metrics.json).  A failed run is an outcome, not an exception.
    """
    names = _quantizer_names(quantizers)
    recipe = _path_or_name("recipe", DEFAULT_RECIPE if recipe is None else recipe,
                           "a recipe name (qbench list recipes) or a TOML file")
    items = _overrides(overrides)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED):
        raise ConfigError(f"seed must be an integer in 0..{MAX_SEED}, or None for the recipe's, got {seed!r}")
    out = DEFAULT_OUT if out is None else _path_or_name("out", out, "a folder")
    check_writable_folder(out, "out")
    regs = registries()
    resolved = checked_recipe(",".join(names), recipe, items, seed, regs, out=out)
    check_out_root(out, resolved, what="out")
    return run_comparison(names, resolved, out_root=out, progress=progress, regs=regs)


def sweep(path: str | Path, out: str | Path | None = None, jobs: int | None = None, overrides: Iterable[str] = (),
          dry_run: bool = False, progress: bool = True) -> SweepOutcome:
    """Run a sweep file as ``qbench sweep`` does (local launcher): plan, print the plan, run what is not done.

    ``out`` defaults to ``results/sweeps/NAME``.  Returns a ``SweepOutcome``:
    ``plan`` (a ``Plan``: ``plan.points``, each with its status, rate and
    time estimate), ``results`` (one per point run now; empty for a dry run),
    ``out`` and ``failed``.  Load the runs with ``qbench.load_runs(outcome.out)``.
    """
    path = _path_or_name("path", path, "a sweep file")
    out = None if out is None else _path_or_name("out", out, "a folder")
    if out is not None:
        check_writable_folder(out, "out")
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise ConfigError(f"jobs must be an integer >= 1 (None: one point per core), got {jobs!r}")
    return run_sweep(path, dry_run=dry_run, jobs=jobs, out=out, progress=progress, overrides=_overrides(overrides))


def load_runs(paths: str | Path | Iterable[str | Path]) -> pd.DataFrame:
    """One row per finished run below ``paths``: the columns of ``summary.csv``, plus ``config_hash`` and ``rate``.

    The identity columns (``recipe``, ``recipe_hash``, ``quantizer``,
    ``options``, ``config_hash``, ``sweep``, ``point``), ``seed``, ``rate`` (the
    model's bits per position, the x axis of a rate-distortion plot), each
    metric with its ``*_status``, and the configuration's mean and 95%
    interval over seeds (``*_mean``, ``*_ci_low``, ``*_ci_high``, ``*_n``), and
    the split that scored the run and its image count (``eval_split``,
    ``eval_images``).
    A failed metric or run is a status with no value, never a number.
    Unfinished run directories are not rows; broken ones (an unreadable
    ``metrics.json``, a metric value that is not a number) are not either,
    and a ``UserWarning`` names each.  No runs at all give an empty frame
    with these columns (the built-in metrics' among them).
    """
    # deferred: loads pandas only when this runs
    import pandas as pd

    from qbench.report.publish import summary_frame
    from qbench.report.tables import build_report

    if isinstance(paths, PathLike):
        paths = [paths]
    elif isinstance(paths, Iterable) and not isinstance(paths, bytes):
        paths = list(paths)
    else:
        paths = [paths]
    bad = [p for p in paths if not isinstance(p, PathLike)]
    if bad:
        raise ConfigError(f"paths must be a folder, a run directory or a list of them, got {bad[0]!r}")
    report = build_report(paths)
    if report.broken:
        shown = "; ".join(f"{run_dir}: {reason}" for run_dir, reason in report.broken)
        warnings.warn(f"qbench.load_runs left out {len(report.broken)} broken run "
                      f"director{'y' if len(report.broken) == 1 else 'ies'}: {shown}", UserWarning, stacklevel=2)
    if report.runs is None:
        return pd.DataFrame(columns=_empty_columns())
    frame = summary_frame(report.runs).reset_index(drop=True)
    frame["config_hash"] = [g if g != label else None for g, label in zip(frame["group"], frame["config"])]
    frame["rate"] = frame["bits"]
    return frame


def _empty_columns() -> list[str]:
    """The columns ``load_runs`` gives runs that recorded the built-in metrics: those of an empty frame."""
    # deferred: the report modules load pandas, only when this runs
    import pandas as pd

    from qbench.report.publish import summary_frame
    from qbench.report.rows import run_row

    metrics = metric_columns([{"metrics": {name: {} for name in KNOWN_ORDER}}])
    names = [*run_row(Path(), {"run": {}, "metrics": {}}, metrics), "version_suffix", "label"]  # as build_report
    names += [f"{c.key}_{suffix}" for c in metrics for suffix in ("mean", "ci_low", "ci_high", "n")]
    return [*summary_frame(pd.DataFrame(columns=names)).columns, "config_hash", "rate"]


def load_tokenizer(run_dir: str | Path, use_ema: bool | None = None) -> Tokenizer:
    """The trained encoder -> quantizer -> decoder of a run, in eval mode, for encoding one's own images.

    ``tokenizer.encode(x)`` takes images ``(B, 3, H, W)`` in [-1, 1] and
    returns codes; ``tokenizer.decode(codes)`` and ``tokenizer(x)`` (which
    returns ``(x_hat, QuantizerOutput)``) go back.  The weights are the ones
    the run was scored with (EMA when its recipe says ``eval.use_ema``;
    ``use_ema`` overrides that); ``tokenizer.identity`` is the run's
    identity (recipe, quantizer, effective options, hashes).
    """
    run_dir = Path(_path_or_name("run_dir", run_dir, "a run directory"))
    if use_ema is not None and not isinstance(use_ema, bool):
        raise ConfigError(f"use_ema must be True, False or None (the recipe's eval.use_ema), got {use_ema!r}")
    if not run_dir.is_dir():
        raise ConfigError(f"run_dir {run_dir} is not a folder: give a run directory written by qbench.run, "
                          "such as outcome.run_dir")
    # deferred: loads torch only when this runs
    from qbench.engine.model import load_trained

    tokenizer, identity = load_trained(run_dir, use_ema)
    tokenizer.identity = identity
    return tokenizer


# -- arguments, checked in Python's words -------------------------------------------------


def _path_or_name(argument: str, value: Any, what: str) -> str:
    if not isinstance(value, PathLike):
        raise ConfigError(f"{argument} must be {what}, got {value!r}")
    return os.fspath(value)


def _quantizer_names(quantizers: Any) -> list[str]:
    if isinstance(quantizers, str):
        names = [n.strip() for n in quantizers.split(",") if n.strip()]
    elif isinstance(quantizers, Iterable) and not isinstance(quantizers, bytes):
        names = list(quantizers)
        bad = [n for n in names if not isinstance(n, str) or "," in n]
        if bad:
            raise ConfigError(f"quantizers must be names such as ['gsq', 'vq'], got {bad[0]!r} among them")
        names = [n.strip() for n in names]
    else:
        raise ConfigError(f"quantizers must be a list of names or a string such as 'gsq,vq', got {quantizers!r}")
    if not names or not all(names):
        raise ConfigError("quantizers needs at least one name and no empty ones, e.g. ['gsq', 'vq'] "
                          "(qbench list quantizers)")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"quantizers names {', '.join(repeated)} more than once; each quantizer runs once per "
                          "call (more seeds: call again with seed=N)")
    return names


def _overrides(overrides: Any) -> list[str]:
    if isinstance(overrides, (str, bytes)) or not isinstance(overrides, Iterable):
        raise ConfigError(f"overrides must be a list of 'KEY=VALUE' strings, e.g. ['train.steps=200'], "
                          f"got {overrides!r}")
    items = list(overrides)
    bad = [item for item in items if not isinstance(item, str) or "=" not in item]
    if bad:
        raise ConfigError(f"overrides: each item is 'KEY=VALUE' (a dotted recipe key and a TOML value), e.g. "
                          f"'train.steps=200'; got {bad[0]!r}")
    return items


__all__ = ["RunOutcome", "SweepOutcome", "load_runs", "load_tokenizer", "run", "sweep"]
