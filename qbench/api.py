"""The Python API for notebooks: ``qbench.run``, ``qbench.sweep``, ``qbench.load_runs``, ``qbench.load_tokenizer``.

The same work as ``qbench run``, ``qbench sweep`` and ``qbench report``,
with Python values in and out instead of exit statuses and printed tables.
Bad input is a ``qbench.ConfigError`` (one line per problem) raised before
any training, as the CLI's exit status 2 is.  Documented in
docs/python-api.md; ``qbench/__init__.py`` re-exports these names lazily, so
``import qbench`` stays torch-free.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from qbench.commands import DEFAULT_OUT, SweepOutcome, checked_recipe, run_sweep
from qbench.comparison.runner import RunOutcome, parse_quantizers, run_comparison
from qbench.platform.plugins import registries

if TYPE_CHECKING:
    import pandas as pd

    from qbench.engine.model import Tokenizer

DEFAULT_RECIPE = "cpu-default"


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
    names = parse_quantizers(quantizers if isinstance(quantizers, str) else ",".join(quantizers))
    regs = registries()
    resolved = checked_recipe(",".join(names), str(recipe), list(overrides), seed, regs, out=str(out))
    return run_comparison(names, resolved, out_root=out, progress=progress, regs=regs)


def sweep(path: str | Path, out: str | Path | None = None, jobs: int | None = None, overrides: Iterable[str] = (),
          dry_run: bool = False, progress: bool = True) -> SweepOutcome:
    """Run a sweep file as ``qbench sweep`` does (local launcher): plan, print the plan, run what is not done.

    ``out`` defaults to ``results/sweeps/NAME``.  Returns a ``SweepOutcome``:
    ``plan`` (every point, its status and rate), ``results`` (one per point
    run now; empty for a dry run), ``out`` and ``failed``.  Load the runs
    with ``qbench.load_runs(outcome.out)``.
    """
    return run_sweep(path, dry_run=dry_run, jobs=jobs, out=out, progress=progress, overrides=list(overrides))


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
    Unfinished and unreadable run directories are not rows.
    """
    # deferred: loads pandas only when this runs
    import pandas as pd

    from qbench.report.publish import summary_frame
    from qbench.report.tables import build_report

    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    report = build_report(paths)
    if report.runs is None:
        return pd.DataFrame()
    frame = summary_frame(report.runs).reset_index(drop=True)
    frame["config_hash"] = [g if g != label else None for g, label in zip(frame["group"], frame["config"])]
    frame["rate"] = frame["bits"]
    return frame


def load_tokenizer(run_dir: str | Path, use_ema: bool | None = None) -> Tokenizer:
    """The trained encoder -> quantizer -> decoder of a run, in eval mode, for encoding one's own images.

    ``tokenizer.encode(x)`` takes images ``(B, 3, H, W)`` in [-1, 1] and
    returns codes; ``tokenizer.decode(codes)`` and ``tokenizer(x)`` (which
    returns ``(x_hat, QuantizerOutput)``) go back.  The weights are the ones
    the run was scored with (EMA when its recipe says ``eval.use_ema``;
    ``use_ema`` overrides that); ``tokenizer.identity`` is the run's
    identity (recipe, quantizer, effective options, hashes).
    """
    # deferred: loads torch only when this runs
    from qbench.engine.model import load_trained

    tokenizer, identity = load_trained(run_dir, use_ema)
    tokenizer.identity = identity
    return tokenizer


__all__ = ["RunOutcome", "SweepOutcome", "load_runs", "load_tokenizer", "run", "sweep"]
