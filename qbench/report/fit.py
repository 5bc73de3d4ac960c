"""``qbench report --fit``: the scaling law fitted to each D x V grid in the runs.

A grid is one quantizer at one group count G within one table, with at
least two latent widths D (option ``dim``) and two codebook sizes V (option
``codebook_size``); every seed's run is a point (qbench.report.scaling).
"""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from qbench.errors import ConfigError
from qbench.report.columns import fmt
from qbench.report.scaling import PARAMETERS, fit_scaling
from qbench.report.sections import FitSection, Table

PREFERRED = ("rfid", "lpips", "psnr")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def grid_points(runs: pd.DataFrame, key: str) -> pd.DataFrame:
    """quantizer, G, D, V and the metric ``y`` of each successful run with numeric dim and codebook_size (V ≥ 2)."""
    ok = runs[(runs["status"] == "ok") & (runs[f"{key}_status"] == "ok")]
    points = []
    for _, run in ok.iterrows():
        options = json.loads(run["options"])
        d, v, g = (_number(options.get(k, default)) for k, default in (("dim", None), ("codebook_size", None), ("groups", 1)))
        if d and v and g and v >= 2:
            points.append({"quantizer": run["quantizer"], "G": g, "D": d, "V": v, "y": float(run[key])})
    return pd.DataFrame(points, columns=["quantizer", "G", "D", "V", "y"])


def grids(runs: pd.DataFrame, key: str) -> list[tuple[str, pd.DataFrame]]:
    """(description, points) for each quantizer and G with ≥ 2 values of D and of V."""
    found = []
    for (quantizer, groups), grid in grid_points(runs, key).groupby(["quantizer", "G"]):
        if grid["D"].nunique() >= 2 and grid["V"].nunique() >= 2:
            found.append((f"{quantizer} (groups={groups:g})", grid))
    return found


def _metrics(report: Any, requested: str) -> list[str]:
    """The metric to fit, or for "auto" the candidates in order of preference."""
    names = [c.key for c in report.metrics]
    if requested == "auto":
        return [n for n in PREFERRED if n in names]
    if requested not in names:
        raise ConfigError(f"--fit-metric: no metric {requested!r} in these runs; they hold: {', '.join(names) or '(none)'}")
    return [requested]


def fit_sections(report: Any, requested: str) -> list[FitSection]:
    for key in _metrics(report, requested):
        found = [(table, description, grid) for table in report.tables for description, grid in grids(table.runs, key)]
        if found:
            return [_section(table, description, grid, key) for table, description, grid in found]
    measured = "" if requested == "auto" else f" with {requested} measured"
    raise ConfigError(
        f"--fit needs runs of one quantizer over at least 2 latent widths D (option dim) and 2 codebook sizes V "
        f"(option codebook_size){measured}; these runs form no such grid"
    )


def _section(table: Table, description: str, grid: pd.DataFrame, key: str) -> FitSection:
    result = fit_scaling(grid["D"], grid["V"], grid["y"])
    frame = pd.DataFrame([
        {"parameter": p, "estimate": fmt(result.estimates[p], ".4g"),
         "95% CI": "—" if math.isnan(result.intervals[p][0])
         else f"[{fmt(result.intervals[p][0], '.4g')}, {fmt(result.intervals[p][1], '.4g')}]"}
        for p in PARAMETERS
    ])
    notes = [f"{result.points} runs on {result.cells} (D, V) cells; residual RMS {fmt(result.rms, '.3g')}, "
             f"R² {fmt(result.r2, '.3f')}", *(f"warning: {w}" for w in result.warnings)]
    return FitSection(
        title=f"scaling fit: {key} = a / (log2 V)^b + c·D^e, {description}, {table.title}",
        key=f"{table.key}-fit-{key}", frame=frame, notes=notes, fit=result, grid=grid, metric=key,
    )
