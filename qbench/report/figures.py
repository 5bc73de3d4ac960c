"""Which figures a report table gets, and the data behind each.

- rate-distortion: bits per position against PSNR, SSIM, LPIPS and rFID
  (where measured), one line per curve (qbench.report.curves) with its 95% band;
- codebook usage against bits per position along the same curves, or per
  configuration where the table has no curve;
- scaling, for D x V x G grids: a metric against log2 V with one line per
  latent width D, and against the group count G with one line per (D, V);
- training loss curves, held-out PSNR against step (``eval.every``), and a sheet of every configuration's reconstruction
  of the same validation crops.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from qbench.report import plots, runinfo
from qbench.report.columns import Column
from qbench.report.curves import (
    RD_METRICS,
    Curve,
    ceilings,
    curve_points,
    curves,
    quantized,
    seed_values,
)
from qbench.report.fit import grid_points
from qbench.report.legend import display_labels, recipe_point, seed_note, styles, varying, with_point
from qbench.report.stats import mean_ci
from qbench.rundir import directory as results
from qbench.rundir.grid import image_rows, save_png

SHEET_IMAGES = 8
BOUNDS = {"usage": (0.0, 100.0), "ssim": (None, 1.0)}  # the range a metric's value (and interval) can take
SCALING_METRICS = ("rfid", "psnr")


def shared_points(runs: pd.DataFrame, curve: Curve, key: str) -> tuple[dict[str, np.ndarray], str]:
    """A curve's points over the seeds every one of its points has, and the label saying which.

    A rung with extra seeds (5 at the default rate against 3 elsewhere) would
    make one curve average different runs at different points; the table
    row keeps all of them, the curve keeps the common set.
    """
    values = seed_values(runs, key)
    seeds = set.intersection(*(set(values.get(g, {})) for g in curve.groups))
    if not seeds:  # no seed at every point: each point says its own count
        points = curve_points(runs, curve, key)
        counts = sorted({int(c) for c in points["n"]})
        return points, f"(n={counts[0]}-{counts[-1]} by point, no seed at every point)" if len(counts) > 1 \
            else f"(n={counts[0]})" if counts else ""
    return curve_points(runs[runs["seed"].isin(seeds)], curve, key), seed_note(list(seeds))


def rate_distortion(runs: pd.DataFrame, column: Column, path: Path, what: str = "rate-distortion") -> Path | None:
    """One series per curve (one seed set each); a step-budget study gets one panel per budget."""
    keys = varying(quantized(runs[runs["status"] == "ok"]))
    firsts = runs.drop_duplicates("group").set_index("group")
    low, high = BOUNDS.get(column.key, (None, None))
    series = []
    for curve in curves(runs):
        points, seeds = shared_points(runs, curve, column.key)
        if len(points["bits"]):
            if low is not None or high is not None:  # an interval never leaves the metric's range
                points["low"], points["high"] = (np.clip(points[k], low, high) for k in ("low", "high"))
            point = recipe_point(firsts.loc[curve.groups[0]])
            series.append({"label": f"{with_point(curve.label, point, keys)} {seeds}", "base": f"{curve.label} {seeds}",
                           "colour": curve.label, "panel": ", ".join(f"{k}={point.get(k)}" for k in keys), **points})
    if not series:
        return None
    title = f"{what}: {column.heading} (band: 95% CI over seeds)"
    levels = ceiling_levels(runs, column.key, keys)
    if keys and all(len(s["bits"]) == 1 for s in series):  # one rate, several budgets: a panel per budget
        return plots.grouped_panels(series, "bits per position", column.title, path, title, ceilings=levels)
    return plots.rate_distortion(series, column.title, path, title, ceilings=levels)


def ceiling_levels(runs: pd.DataFrame, key: str, keys: list[str] = ()) -> list[dict]:
    """Each continuous configuration's mean and 95% interval of ``key``: horizontal reference lines."""
    levels = []
    ceiling_runs = ceilings(runs)
    if f"{key}_status" in ceiling_runs:
        ceiling_runs = ceiling_runs[ceiling_runs[f"{key}_status"] == "ok"]
    for _, group in ceiling_runs.groupby("group", sort=False):
        ci = mean_ci(group[key].astype(float).tolist())
        point = recipe_point(group.iloc[0])
        levels.append({"label": f"{with_point(group.iloc[0]['label'], point, keys)} (ceiling, n={ci.n})",
                       "panel": ", ".join(f"{k}={point.get(k)}" for k in keys),
                       "mean": ci.mean, "low": ci.low, "high": ci.high})
    return levels


def _has_curves(runs: pd.DataFrame) -> bool:
    return any(len(c.groups) > 1 for c in curves(runs))  # curves() keeps the successful runs only


def usage(runs: pd.DataFrame, path: Path, column: Column | None = None) -> Path | None:
    """Codebook usage against bits per position where the table has curves, else a bar per configuration."""
    if column is not None and _has_curves(runs):
        return rate_distortion(runs, column, path, what="codebook usage by rate")
    ok = runs[(runs["status"] == "ok") & (runs["usage_status"] == "ok")] if "usage_status" in runs else runs.iloc[:0]
    labels, values = [], []
    names = display_labels(ok) if len(ok) else {}
    for g, group in ok.groupby("group", sort=False):
        labels.append(names[g])
        values.append(float(group["usage"].mean()))
    return plots.bars(labels, values, "codebook usage (%)", path, "codebook usage on the validation split") if labels else None


def _series(frame: pd.DataFrame, line_keys: list[str], x: str, name) -> list[dict]:
    series = []
    for values, line in frame.groupby(line_keys, sort=True):
        xs, mean, low, high = [], [], [], []
        for xv, at in line.groupby(x, sort=True):
            ci = mean_ci(at["y"].tolist())
            xs.append(float(xv))
            mean.append(ci.mean)
            low.append(ci.low)
            high.append(ci.high)
        values = values if isinstance(values, tuple) else (values,)
        series.append({"label": name(dict(zip(line_keys, values))), "x": np.array(xs), "mean": np.array(mean),
                       "low": np.array(low), "high": np.array(high)})
    return series


def scaling(runs: pd.DataFrame, column: Column, out: Path, key: str) -> list[Path]:
    """Against log2 V per D where D and V both vary, and against G per (D, V) where G varies.

    V alone at one D adds nothing to the rate-distortion plot (bits = G log2 V), so it gets none here.
    """
    frame = grid_points(runs, column.key)
    figures = []
    for quantizer, grid in frame.groupby("quantizer", sort=True):
        if grid["V"].nunique() >= 2 and grid["D"].nunique() >= 2:
            for groups, at_g in grid.groupby("G", sort=True):
                at_g = at_g.assign(log2V=np.log2(at_g["V"]))
                series = _series(at_g, ["D"], "log2V", lambda v: f"D={v['D']:g}")
                path = out / f"{key}-scaling-{quantizer}-G{groups:g}-V-{column.key}.png"
                figures.append(plots.lines(series, "log2 V (codebook size)", column.title, path,
                                           f"{quantizer}, G={groups:g}: {column.heading} against codebook size"))
        if grid["G"].nunique() >= 2:
            series = _series(grid, ["D", "V"], "G", lambda v: f"D={v['D']:g}, V={v['V']:g}")
            path = out / f"{key}-scaling-{quantizer}-G-{column.key}.png"
            figures.append(plots.lines(series, "groups G", column.title, path, f"{quantizer}: {column.heading} against G",
                                       log2_x=True))  # G comes in powers of two
    return figures


def scaling_fit(grid: pd.DataFrame, fit, metric: str, path: Path) -> Path:
    """Each latent width's runs against log2 V, with the fitted law through them (``qbench.report.scaling``)."""
    # deferred: loads numpy only when this runs
    from qbench.report.scaling import PARAMETERS, law

    measured, model = {}, {}
    for d, at_d in grid.groupby("D", sort=True):
        label = f"D={d:g}"
        measured[label] = (np.log2(at_d["V"].to_numpy(float)), at_d["y"].to_numpy(float))
        log_v = np.linspace(np.log2(at_d["V"].min()), np.log2(at_d["V"].max()), 50)
        model[label] = (log_v, law(np.vstack([np.full_like(log_v, d), 2.0**log_v]), *(fit.estimates[p] for p in PARAMETERS)))
    return plots.points_and_model(measured, model, "log2 V (codebook size)", metric, path,
                                  f"{metric}: runs and a/(log2 V)^b + c·D^e (R² {fit.r2:.2f})")


def _first_ok_runs(runs: pd.DataFrame) -> dict[str, Path]:
    ok = runs[runs["status"] == "ok"].sort_values("seed")
    labels = display_labels(ok) if len(ok) else {}
    return {labels[g]: Path(group.iloc[0]["run_dir"]) for g, group in ok.groupby("group", sort=False)}


def training_curves(runs: pd.DataFrame, path: Path) -> Path | None:
    """Each configuration's training loss, from its lowest seed (the label says which)."""
    series, chosen = {}, {}
    ok = runs[runs["status"] == "ok"].sort_values("seed")
    labels, style = (display_labels(ok), styles(ok)) if len(ok) else ({}, {})
    for g, group in ok.groupby("group", sort=False):
        run = group.iloc[0]
        try:
            frame = pd.read_csv(Path(run["run_dir"]) / results.LOG_FILE)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError):
            continue
        if {"step", "loss"} <= set(frame.columns):
            frame = frame.dropna(subset=["loss"])  # held-out rows carry no training loss
            label = f"{labels[g]} (seed {run['seed']})"
            series[label], chosen[label] = (frame["step"].tolist(), frame["loss"].tolist()), style[g]
    return plots.curves(series, "training loss", path, "training loss", styles=chosen) if series else None


def _heldout_values(run_dir: Path, column: str) -> dict[int, float]:
    try:
        frame = pd.read_csv(run_dir / results.LOG_FILE)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return {}
    if column not in frame:
        return {}
    rows = frame.dropna(subset=[column])
    return dict(zip(rows["step"].astype(int), rows[column].astype(float)))


def heldout_curves(runs: pd.DataFrame, path: Path, column: str = "heldout_psnr",
                   ylabel: str = "held-out PSNR (dB)") -> Path | None:
    """``eval.every`` rows: the held-out metric against step, one line per configuration, band over seeds."""
    series = []
    ok = runs[runs["status"] == "ok"]
    labels, style = (display_labels(ok), styles(ok)) if len(ok) else ({}, {})
    for g, group in ok.groupby("group", sort=False):
        per_seed = [_heldout_values(Path(d), column) for d in group["run_dir"]]
        steps = sorted(set().union(*per_seed))
        points = [(step, mean_ci([v[step] for v in per_seed if step in v])) for step in steps]
        points = [(step, ci) for step, ci in points if ci is not None]
        if len(points) < 2:
            continue
        series.append({"label": f"{labels[g]} {seed_note(group['seed'].tolist())}", **style[g],
                       "x": np.array([p[0] for p in points], dtype=float),
                       "mean": np.array([p[1].mean for p in points]), "low": np.array([p[1].low for p in points]),
                       "high": np.array([p[1].high for p in points])})
    if not series:
        return None
    images = runinfo.recipe_value(ok["run_dir"].iloc[0], "eval.heldout_images")
    on = f" on {images} validation images" if isinstance(images, int) and images > 0 else ""
    return plots.lines(series, "training step", ylabel, path, f"{ylabel}{on} during training (band: 95% CI over seeds)")


def recon_sheet(runs: pd.DataFrame, path: Path) -> tuple[Path, list[str]] | None:
    rows, labels, reference = [], [], None
    for label, run_dir in _first_ok_runs(runs).items():
        try:
            with np.load(run_dir / results.SAMPLES_FILE) as data:
                originals, recons = data["originals"][:SHEET_IMAGES], data["reconstructions"][:SHEET_IMAGES]
        except (OSError, KeyError, ValueError):
            continue
        if reference is None:
            reference = originals
            rows.append(originals)
            labels.append("original")
        elif originals.shape != reference.shape or not np.array_equal(originals, reference):
            continue  # different validation images: not comparable side by side
        rows.append(recons)
        labels.append(label)
    if len(rows) < 2:
        return None
    save_png(image_rows(rows), path)
    return path, labels


def table_figures(runs: pd.DataFrame, metrics: list[Column], out: Path, key: str) -> list[Path]:
    """Every plot of one table, in reading order (the reconstruction sheet is separate)."""
    by_key = {c.key: c for c in metrics}
    figures = []
    for name in RD_METRICS:
        if name in by_key:
            figures.append(rate_distortion(runs, by_key[name], out / f"{key}-rd-{name}.png"))
    figures.append(usage(runs, out / f"{key}-usage.png", by_key.get("usage")))
    for name in SCALING_METRICS:
        if name in by_key:
            figures += scaling(runs, by_key[name], out, key)
    figures.append(training_curves(runs, out / f"{key}-curves.png"))
    figures.append(heldout_curves(runs, out / f"{key}-heldout-psnr.png"))
    return [f for f in figures if f is not None]
