"""The parts of a report: comparison tables and the sections computed from them.

A ``Table`` compares the runs of one recipe (or one sweep) row by row; a
``Section`` is what ``--baseline`` and ``--fit`` add after the tables (paired
differences, Bjøntegaard deltas, scaling fits).  Both are rendered the same
way: a heading, a Markdown table, notes.  ``key`` names the figure files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from qbench.report.claim import Claim
from qbench.report.scaling import ScalingFit


@dataclass(kw_only=True)
class Section:
    title: str
    key: str  # the stem of this part's files (figures)
    frame: pd.DataFrame  # formatted cells, as printed
    notes: list[str] = field(default_factory=list)


@dataclass(kw_only=True)
class Table(Section):
    """One comparison table: a row per configuration of ``runs``."""

    runs: pd.DataFrame  # the run rows it was made from (qbench.report.rows)
    sweep: str = ""  # the sweep's name; "" for runs made outside a sweep
    point_keys: list[str] = field(default_factory=list)  # the swept keys, shown as columns


@dataclass(kw_only=True)
class FitSection(Section):
    """A scaling fit, with the grid it was fitted to (its figure draws both)."""

    fit: ScalingFit
    grid: pd.DataFrame  # columns D, V, y
    metric: str
    claims: list[Claim] = field(default_factory=list)  # what the fit determines, and what it does not


def per_table(report, frame_of, title: str, suffix: str, notes: list[str]) -> list[Section]:
    """One section per comparison table of ``report`` whose ``frame_of(table.runs, report.metrics)`` is not empty."""
    sections = []
    for table in report.tables:
        frame = frame_of(table.runs, report.metrics)
        if not frame.empty:
            sections.append(Section(title=f"{title}, {table.title}", key=f"{table.key}-{suffix}", frame=frame,
                                    notes=list(notes)))
    return sections
