"""Evaluation noise against seed noise: is the evaluation set large enough?

A score is a mean over the evaluation images, so it carries the standard
error of that mean (``standard_error`` in the extras of the per-image
metrics: PSNR, SSIM, LPIPS); the training seed adds noise of its own (the
spread of the score over seeds).  When the evaluation noise is well below
the seed noise, a larger evaluation set would not sharpen a comparison and
the seeds are what to add.  One row per configuration of a table with at
least two seeds: the seeds' standard deviation, the root mean square of the
runs' standard errors, and their ratio.  A paired comparison of two
configurations on the same images has less evaluation noise than this (the
images that are hard for one are hard for the other), so the column is an
upper bound for it.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from qbench.report.columns import Column, eval_se_key, fmt
from qbench.report.sections import Section, per_table


def _cell(rows: pd.DataFrame, column: Column) -> str | None:
    se_key = eval_se_key(column.key)
    if se_key not in rows:
        return None
    ok = rows[(rows[f"{column.key}_status"] == "ok") & rows[se_key].notna()]
    if len(ok) < 2 or len(ok) < (rows[f"{column.key}_status"] == "ok").sum():
        return None  # under two seeds, or some runs lack the extras: no like-for-like figure
    values = ok[column.key].astype(float)
    seed_sd = float(values.std(ddof=1))
    eval_se = math.sqrt(float((ok[se_key].astype(float) ** 2).mean()))
    digits = column.format or ".3f"
    ratio = f"{seed_sd / eval_se:.1f}x" if eval_se > 0 else "—"
    return f"{fmt(seed_sd, digits)} / {fmt(eval_se, digits)} ({ratio})"


def noise_table(runs: pd.DataFrame, metrics: list[Column]) -> pd.DataFrame:
    """One row per configuration: seed sd / evaluation se (ratio) per metric that records its standard error."""
    columns = [c for c in metrics if eval_se_key(c.key) in runs and runs[eval_se_key(c.key)].notna().any()]
    if not columns:
        return pd.DataFrame()
    ran = runs[runs["status"] == "ok"]
    rows = []
    for _, group in ran.groupby("group", sort=False):
        row: dict[str, Any] = {"configuration": group["label"].iloc[0], "seeds": len(group),
                               "images": _images(group)}
        cells = {f"{c.heading}: seed sd / eval se": _cell(group, c) for c in columns}
        if any(v is not None for v in cells.values()):
            rows.append({**row, **{k: v or "—" for k, v in cells.items()}})
    return pd.DataFrame(rows)


def _images(group: pd.DataFrame) -> str:
    counts = sorted({int(n) for n in group["eval_images"].dropna()}) if "eval_images" in group else []
    return "/".join(map(str, counts)) or "?"


def noise_sections(report: Any) -> list[Section]:
    return per_table(report, noise_table, "evaluation noise against seed noise", "noise", [
        "seed sd: the standard deviation of the score over the configuration's seeds; eval se: the standard "
        "error of the mean over the evaluation images (root mean square over the runs); ratio = seed sd / eval "
        "se. A paired comparison on the same images has less evaluation noise than eval se (docs/statistics.md)."])
