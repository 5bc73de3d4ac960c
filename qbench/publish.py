"""Write a report to a directory: ``summary.csv``, ``README.md`` and the plots.

Plots per table: rate-distortion (bits/position against PSNR, and against
rFID where measured), codebook usage per quantizer, training curves, and a
reconstruction sheet showing every quantizer's reconstruction of the same
validation images.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from . import atomic, plots, results
from .report import Report, render_text, to_markdown

SHEET_IMAGES = 8


def _points(runs: pd.DataFrame, key: str) -> list[dict]:
    points = []
    ok = runs[(runs["status"] == "ok") & (runs[f"{key}_status"] == "ok")]
    for config, group in ok.groupby("config", sort=False):
        values = group[key].astype(float)
        points.append(
            {
                "label": config,
                "bits": float(group["bits"].mean()),
                key: float(values.mean()),
                f"{key}_err": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            }
        )
    return points


def _first_ok_runs(runs: pd.DataFrame) -> dict[str, Path]:
    ok = runs[runs["status"] == "ok"].sort_values("seed")
    return {config: Path(group.iloc[0]["run_dir"]) for config, group in ok.groupby("config", sort=False)}


def _training_curves(runs: pd.DataFrame, path: Path, title: str) -> Path | None:
    series = {}
    for config, run_dir in _first_ok_runs(runs).items():
        log = run_dir / results.LOG_FILE
        if not log.exists():
            continue
        try:
            frame = pd.read_csv(log)
        except (pd.errors.ParserError, pd.errors.EmptyDataError):
            continue
        if {"step", "loss"} <= set(frame.columns):
            series[config] = (frame["step"].tolist(), frame["loss"].tolist())
    return plots.curves(series, "training loss", path, title) if series else None


def _recon_sheet(runs: pd.DataFrame, path: Path) -> tuple[Path, list[str]] | None:
    rows, labels, reference = [], [], None
    for config, run_dir in _first_ok_runs(runs).items():
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
        labels.append(config)
    if len(rows) < 2:
        return None
    plots.save_png(plots.image_rows(rows), path)
    return path, labels


def write_report(report: Report, out_dir: str | Path, intro: str = "") -> Path:
    """Write the report; ``intro`` (Markdown) replaces the default heading."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = [intro.rstrip(), ""] if intro.strip() else ["# qbench comparison", ""]
    if report.runs is not None:
        frame = report.runs.drop(columns=[c for c in report.runs.columns if c.endswith("_reason")])
        atomic.write_text(out / "summary.csv", frame.to_csv(index=False, quoting=csv.QUOTE_MINIMAL))
        lines += ["Every run is listed in [summary.csv](summary.csv). ↑: higher is better, ↓: lower is better.", ""]
    for table in report.tables:
        key, runs = table["key"], table["runs"]
        lines += [f"## {table['title']}", "", to_markdown(table["frame"]), ""]
        figures = []
        psnr = _points(runs, "psnr")
        if psnr:
            figures.append(plots.rate_distortion(psnr, "psnr", "PSNR (dB)", out / f"{key}-rd-psnr.png", "rate-distortion: PSNR"))
        rfid = _points(runs, "rfid")
        if rfid:
            figures.append(plots.rate_distortion(rfid, "rfid", "rFID", out / f"{key}-rd-rfid.png", "rate-distortion: rFID"))
        usage = _points(runs, "usage")
        if usage:
            figures.append(
                plots.bars([p["label"] for p in usage], [p["usage"] for p in usage], "codebook usage (%)", out / f"{key}-usage.png", "codebook usage on the validation split")
            )
        curve = _training_curves(runs, out / f"{key}-curves.png", "training loss")
        if curve:
            figures.append(curve)
        for fig in figures:
            lines += [f"![{fig.stem}]({fig.name})", ""]
        sheet = _recon_sheet(runs, out / f"{key}-reconstructions.png")
        if sheet:
            path, labels = sheet
            lines += [f"Reconstructions of the same validation crops; rows: {', '.join(labels)}.", "", f"![reconstructions]({path.name})", ""]
        unavailable = sorted(
            {f"{c[:-7]}: {r}" for c in runs.columns if c.endswith("_reason") for r in runs[c].dropna() if r}
        )
        if unavailable:
            lines += ["Not measured here:", ""] + [f"- {u}" for u in unavailable] + [""]
    if report.broken:
        lines += ["## Broken runs", ""] + [f"- `{d}`: {reason}" for d, reason in report.broken] + [""]
    if not report.tables and not report.broken:
        lines += ["No runs found.", ""]
    atomic.write_text(out / "README.md", "\n".join(lines))
    return out / "README.md"


__all__ = ["write_report", "render_text"]
