"""How far each quantizer is from its backbone's unquantized ceiling.

A table that holds ``identity`` runs (``continuous`` in their record) gets a
section: for every rate-distortion curve, the ceiling's metric minus the
curve's metric at its lowest and at its highest rate, paired by seed (the
seeds both ran), with the 95% t interval.  A gap that shrinks with rate is
the quantizer binding less; a gap near zero at the lowest rate means the
quantizer does not bind at all and rate cannot matter yet.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from qbench.report.columns import Column, fmt
from qbench.report.curves import ceilings, coordinates, curves, is_option, seed_values
from qbench.report.sections import Section, per_table
from qbench.report.stats import paired_difference

GAP_METRICS = ("psnr", "ssim")


def _gap(values: dict, ceiling_group: str, group: str, column: Column) -> str:
    diff = paired_difference(values.get(ceiling_group, {}), values.get(group, {}))
    if diff is None:
        return "—"
    if diff.n < 2:
        return f"{fmt(diff.mean, column.format)} (n=1)"
    return f"{fmt(diff.mean, column.format)} [{fmt(diff.low, column.format)}, {fmt(diff.high, column.format)}] (n={diff.n})"


def gap_table(runs: pd.DataFrame, metrics: list[Column]) -> pd.DataFrame:
    """One row per (ceiling, curve): the gap at the curve's lowest and highest rate, per metric."""
    columns = [c for c in metrics if c.key in GAP_METRICS]
    ceiling_groups = list(dict.fromkeys(ceilings(runs)["group"]))
    if not ceiling_groups or not columns:
        return pd.DataFrame()
    firsts = runs.drop_duplicates("group").set_index("group")
    labels = firsts["label"]
    bits = runs.groupby("group")["bits"].mean()
    values = {c.key: seed_values(runs, c.key) for c in columns}
    rows = []
    for ceiling_group in ceiling_groups:
        # a ceiling bounds the curves trained as it was: the same recipe keys (train.steps, ...)
        where = {k: v for k, v in coordinates(firsts.loc[ceiling_group]).items() if not is_option(k)}
        for curve in curves(runs):
            if any(where.get(k, v) != v for k, v in curve.recipe_fixed.items()):
                continue
            low, high = curve.groups[0], curve.groups[-1]
            row: dict[str, Any] = {"ceiling": labels[ceiling_group], "curve": curve.label,
                                   **({"at": ", ".join(f"{k}={v}" for k, v in where.items())} if where else {}),
                                   "rates (bits/pos)": f"{bits[low]:.2f} → {bits[high]:.2f}"}
            for column in columns:
                row[f"gap {column.heading} at lowest"] = _gap(values[column.key], ceiling_group, low, column)
                row[f"gap {column.heading} at highest"] = _gap(values[column.key], ceiling_group, high, column)
            rows.append(row)
    return pd.DataFrame(rows)


def ceiling_sections(report: Any) -> list[Section]:
    return per_table(report, gap_table, "gap to the unquantized ceiling", "ceiling", [
        "gap = ceiling − quantizer over the seeds both ran (positive: the quantizer loses that "
        "much); mean [95% t interval] (n = pairs), at the curve's lowest and highest rate."])
