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

from qbench.report import plots
from qbench.report.columns import Column
from qbench.report.curves import RD_METRICS, ceilings, curve_points, curves
from qbench.report.fit import grid_points
from qbench.report.stats import mean_ci
from qbench.rundir import directory as results
from qbench.rundir.grid import image_rows, save_png

SHEET_IMAGES = 8
BOUNDS = {"usage": (0.0, 100.0), "ssim": (None, 1.0)}  # the range a metric's value (and interval) can take
SCALING_METRICS = ("rfid", "psnr")


def rate_distortion(runs: pd.DataFrame, column: Column, path: Path, what: str = "rate-distortion") -> Path | None:
    series = []
    low, high = BOUNDS.get(column.key, (None, None))
    for curve in curves(runs):
        points = curve_points(runs, curve, column.key)
        if len(points["bits"]):
            if low is not None or high is not None:  # an interval never leaves the metric's range
                points["low"], points["high"] = (np.clip(points[k], low, high) for k in ("low", "high"))
            series.append({"label": f"{curve.label} {_seed_counts(points['n'])}", **points})
    if not series:
        return None
    return plots.rate_distortion(series, column.title, path, f"{what}: {column.heading} (band: 95% CI over seeds)",
                                 ceilings=ceiling_levels(runs, column.key))


def ceiling_levels(runs: pd.DataFrame, key: str) -> list[dict]:
    """Each continuous configuration's mean and 95% interval of ``key``: horizontal reference lines."""
    levels = []
    ceiling_runs = ceilings(runs)
    if f"{key}_status" in ceiling_runs:
        ceiling_runs = ceiling_runs[ceiling_runs[f"{key}_status"] == "ok"]
    for _, group in ceiling_runs.groupby("group", sort=False):
        ci = mean_ci(group[key].astype(float).tolist())
        levels.append({"label": f"{group.iloc[0]['label']} (ceiling, n={ci.n})", "mean": ci.mean,
                       "low": ci.low, "high": ci.high})
    return levels


def _seed_counts(n) -> str:
    """'(n=3)', or '(n=3-8)' where the points of one curve average different numbers of seeds."""
    counts = sorted({int(c) for c in n})
    return f"(n={counts[0]})" if len(counts) == 1 else f"(n={counts[0]}-{counts[-1]} by point)"


def _has_curves(runs: pd.DataFrame) -> bool:
    return any(len(c.groups) > 1 for c in curves(runs))  # curves() keeps the successful runs only


def usage(runs: pd.DataFrame, path: Path, column: Column | None = None) -> Path | None:
    """Codebook usage against bits per position where the table has curves, else a bar per configuration."""
    if column is not None and _has_curves(runs):
        return rate_distortion(runs, column, path, what="codebook usage by rate")
    ok = runs[(runs["status"] == "ok") & (runs["usage_status"] == "ok")] if "usage_status" in runs else runs.iloc[:0]
    labels, values = [], []
    for _, group in ok.groupby("group", sort=False):
        labels.append(group.iloc[0]["label"])
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
    return {group.iloc[0]["label"]: Path(group.iloc[0]["run_dir"]) for _, group in ok.groupby("group", sort=False)}


def training_curves(runs: pd.DataFrame, path: Path) -> Path | None:
    series = {}
    for label, run_dir in _first_ok_runs(runs).items():
        log = run_dir / results.LOG_FILE
        if not log.exists():
            continue
        try:
            frame = pd.read_csv(log)
        except (pd.errors.ParserError, pd.errors.EmptyDataError):
            continue
        if {"step", "loss"} <= set(frame.columns):
            frame = frame.dropna(subset=["loss"])  # held-out rows carry no training loss
            series[label] = (frame["step"].tolist(), frame["loss"].tolist())
    return plots.curves(series, "training loss", path, "training loss") if series else None


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
    for _, group in runs[runs["status"] == "ok"].groupby("group", sort=False):
        per_seed = [_heldout_values(Path(d), column) for d in group["run_dir"]]
        steps = sorted(set().union(*per_seed))
        points = [(step, mean_ci([v[step] for v in per_seed if step in v])) for step in steps]
        points = [(step, ci) for step, ci in points if ci is not None]
        if len(points) < 2:
            continue
        series.append({"label": f"{group.iloc[0]['label']} (n={len(per_seed)})",
                       "x": np.array([p[0] for p in points], dtype=float),
                       "mean": np.array([p[1].mean for p in points]), "low": np.array([p[1].low for p in points]),
                       "high": np.array([p[1].high for p in points])})
    if not series:
        return None
    return plots.lines(series, "training step", ylabel, path, f"{ylabel} during training (band: 95% CI over seeds)")


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
