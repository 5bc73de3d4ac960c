"""Write a report to a directory: ``summary.csv``, ``README.md`` and the plots.

``summary.csv`` has one row per run: raw numbers and statuses, plus its
configuration's mean, 95% interval bounds and n per metric.  ``claims.csv``
has one row per claim (qbench.report.claims): the page's verdict words come
from those rows and nowhere else.  ``README.md``
has the tables, their figures (qbench.report.figures), the baseline comparisons
and scaling fits when asked for, and the broken run directories.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd

from qbench import atomic
from qbench.report import figures
from qbench.report.claim import to_csv
from qbench.report.output import ReportDirectory
from qbench.report.sections import FitSection, Section
from qbench.report.tables import Report, render_text, to_markdown

# run-frame columns that only serve the tables
INTERNAL = ("version_suffix", "comparison_hash")
LATER = ("eval_split", "eval_images")  # which split scored a run, on how many images (docs/results.md)


def _section(section: Section) -> list[str]:
    lines = [f"## {section.title}", ""]
    if len(section.frame):
        lines += [to_markdown(section.frame), ""]
    notes = section.notes
    return lines + ([f"- {n}" for n in notes] + [""] if notes else [])


def summary_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """The run frame as ``summary.csv`` has it: one row per run, without the tables' helper columns.

    The columns added since summaries were first published (``LATER``) come last, so the columns of a
    committed ``summary.csv`` stay a prefix of a new one."""
    kept = runs.drop(columns=[c for c in runs.columns if c.endswith(("_reason", "_eval_se")) or c in INTERNAL])
    return kept[[c for c in kept.columns if c not in LATER] + [c for c in LATER if c in kept.columns]]


def write_report(report: Report, out_dir: str | Path, intro: str = "") -> Path:
    """Write the report; ``intro`` (Markdown) replaces the default heading.

    Every file is rendered into a staging folder first and moved into
    ``out_dir`` together (``qbench.report.output``).
    """
    with ReportDirectory(out_dir) as stage:
        _write(report, stage, intro)
    return Path(out_dir) / "README.md"


def _write(report: Report, out: Path, intro: str) -> None:
    lines = [intro.rstrip(), ""] if intro.strip() else ["# qbench comparison", ""]
    if report.runs is not None:
        frame = summary_frame(report.runs)
        atomic.write_text(out / "summary.csv", frame.to_csv(index=False, quoting=csv.QUOTE_MINIMAL))
        atomic.write_text(out / "claims.csv", to_csv(report.claims))
        lines += [
            "Every run is listed in [summary.csv](summary.csv). ↑: higher is better, ↓: lower is better; "
            "`mean ± h (n=seeds)`: h is the half-width of the 95% Student t interval over seeds.",
            "",
        ]
        if report.claims:
            lines += ["Every verdict below (above, below, ties, met, not met, ...) is a row of "
                      "[claims.csv](claims.csv), computed by the report from the families and criteria each study "
                      "declares; the rows name the runs they were computed from.", ""]
    for table in report.tables:
        key, runs = table.key, table.runs
        lines += _section(table)
        for fig in figures.table_figures(runs, report.metrics, out, key):
            lines += [f"![{fig.stem}]({fig.name})", ""]
        sheet = figures.recon_sheet(runs, out / f"{key}-reconstructions.png")
        if sheet:
            path, labels = sheet
            lines += [f"Reconstructions of the same validation crops; rows: {', '.join(labels)}.", "", f"![reconstructions]({path.name})", ""]
        unavailable = sorted(
            {f"{c[:-7]}: {r}" for c in runs.columns if c.endswith("_reason") for r in runs[c].dropna() if r}
        )
        if unavailable:
            lines += ["Not measured here:", ""] + [f"- {u}" for u in unavailable] + [""]
    for section in report.sections:
        lines += _section(section)
        if isinstance(section, FitSection):  # a scaling fit carries its grid: drawn with the fitted law
            fig = figures.scaling_fit(section.grid, section.fit, section.metric, out / f"{section.key}.png")
            lines += [f"![{fig.stem}]({fig.name})", ""]
    if report.unfinished:
        lines += ["## Unfinished runs", "", "No metrics.json yet: running, or stopped before evaluation "
                  "(`qbench sweep` or `qbench run --resume` finishes them); not in the tables above.", ""]
        lines += [f"- `{d}`" for d in report.unfinished] + [""]
    if report.restarted:
        lines += ["## Restarted runs", "", "Could not be resumed (a damaged checkpoint); the point was trained "
                  "afresh in another folder. Not in the tables above.", ""]
        lines += [f"- `{d}`: {why}" for d, why in report.restarted] + [""]
    if report.broken:
        lines += ["## Broken runs", ""] + [f"- `{d}`: {reason}" for d, reason in report.broken] + [""]
    if not report.tables and not report.broken and not report.unfinished and not report.restarted:
        lines += ["No runs found.", ""]
    atomic.write_text(out / "README.md", "\n".join(lines))


__all__ = ["write_report", "render_text", "summary_frame"]
