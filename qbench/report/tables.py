"""``qbench report``: comparison tables from run directories.

Runs made outside a sweep are grouped into one table per (recipe, recipe
hash, metric protocol): such a table never mixes runs trained under
different recipes or scored under different protocols.  Runs of a
``qbench sweep`` are grouped into one table per sweep, whose points differ
in recipe keys on purpose, with the swept keys as columns.

Rows are configurations (``config_hash``; records without one fall back to
quantizer plus options).  Several seeds of one configuration become
``mean ± half-width (n=seeds)`` of a 95% Student t interval.  Metric columns
are the metrics the runs recorded.  Failed runs and unavailable metrics are
shown as such, never as numbers.  A run directory with a ``config.toml`` but
no ``metrics.json`` is listed as unfinished (running, or stopped before its
evaluation: ``qbench sweep`` or ``qbench run --resume`` finishes it); one
whose ``metrics.json`` cannot be read, or holds an ``ok`` metric without a
finite number, is listed as broken.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from qbench.errors import ConfigError
from qbench.report import runinfo
from qbench.report.ceiling import ceiling_sections
from qbench.report.claim import Claim
from qbench.report.claims import claims_sections
from qbench.report.columns import BITS, DESCRIPTIVE_TAIL, Column, fmt, metric_columns
from qbench.report.curves import short_key
from qbench.report.noise import noise_sections
from qbench.report.rows import (
    counted,
    find_run_dirs,
    metric_value_problem,
    row_label,
    run_row,
    swept_options,
    version_labels,
)
from qbench.report.sections import Section, Table
from qbench.report.stats import mean_ci
from qbench.report.studies import find_studies
from qbench.rundir import directory as results
from qbench.rundir.directory import slug


@dataclass
class Report:
    tables: list[Table] = field(default_factory=list)
    broken: list[tuple[Path, str]] = field(default_factory=list)
    unfinished: list[Path] = field(default_factory=list)  # config.toml, no metrics.json yet
    restarted: list[tuple[Path, str]] = field(default_factory=list)  # could not be resumed; trained afresh elsewhere
    runs: pd.DataFrame | None = None
    metrics: list[Column] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)  # claims, ceiling gaps, baseline, BD and fit results
    claims: list[Claim] = field(default_factory=list)  # every verdict the page prints (claims.csv)

    @property
    def columns(self) -> list[Column]:
        return [BITS, *self.metrics, *DESCRIPTIVE_TAIL]


def _cell(group: pd.DataFrame, column: Column) -> str:
    key = column.key
    ok = group[group[f"{key}_status"] == "ok"][key].dropna()
    if ok.empty:
        return "/".join(sorted(set(group[f"{key}_status"])))
    ci = mean_ci(ok.tolist())
    if column.descriptive or ci.n == 1:
        return fmt(ci.mean, column.format)
    return f"{fmt(ci.mean, column.format)} ± {fmt(ci.half_width, column.format)} (n={ci.n})"


def comparison_table(runs: pd.DataFrame, columns: list[Column], point_keys: list[str] = ()) -> pd.DataFrame:
    """One row per configuration (failed runs on rows of their own), formatted cells."""
    swept = swept_options(runs) if point_keys else {}
    # a metric only other tables' runs recorded would be a column of "not measured" here
    columns = [c for c in columns if (runs[f"{c.key}_status"] != "not measured").any()] or columns
    rows = []

    def head(run: pd.Series) -> dict[str, Any]:
        row = {"quantizer": row_label(run, swept)}
        point = json.loads(run["point"])
        for key in point_keys:
            value = next((v for k, v in point.items() if short_key(k) == key), "")
            row[key] = ",".join(map(str, value)) if isinstance(value, list) else value
        return row

    ok = counted(runs)
    continuous = ok["continuous"].astype(bool) if "continuous" in ok else pd.Series(False, index=ok.index)
    # the unquantized ceilings last: an upper bound below the quantizers it bounds
    for _, group in pd.concat([ok[~continuous], ok[continuous]]).groupby("group", sort=False):
        row = head(group.iloc[0]) | {"seeds": len(group)}
        row.update({c.title: _cell(group, c) for c in columns})
        if bool(group.iloc[0].get("continuous", False)):
            row.update({c.title: "continuous" for c in columns if c.key == BITS.key})
        rows.append(row)
    for _, run in runs[runs["status"] != "ok"].iterrows():
        row = head(run) | {"seeds": 1}
        row.update({c.title: "—" for c in columns})
        row["status"] = f"failed: {run['reason']}"
        rows.append(row)
    frame = pd.DataFrame(rows)
    if "status" in frame:
        frame["status"] = frame["status"].fillna("ok")
    if point_keys and not frame.empty:
        frame = frame.sort_values(["quantizer", *point_keys], key=_sortable, kind="stable").reset_index(drop=True)
        ceiling = frame["quantizer"].str.contains(" (ceiling)", regex=False)
        frame = pd.concat([frame[~ceiling], frame[ceiling]]).reset_index(drop=True)
    return frame


def _sortable(series: pd.Series) -> pd.Series:
    return series.map(lambda v: (0, float(v), "") if isinstance(v, (int, float)) else (1, 0.0, str(v)))


def _point_keys(runs: pd.DataFrame) -> list[str]:
    keys: list[str] = []
    for point in runs["point"]:
        for k in json.loads(point):
            if short_key(k) not in keys:
                keys.append(short_key(k))
    return sorted(keys, key=lambda k: (k != "rate", keys.index(k)))  # the ladder's rung first


def revision_notes(runs: pd.DataFrame) -> list[str]:
    """A note for each table row whose runs come from different code revisions or a modified tree.

    A row pools seeds: mean and interval are only about one piece of code
    when every run of it was made by the same clean revision (``git describe
    --dirty`` in each run's ``env``; "unknown" when qbench did not run from a
    checkout).
    """
    if "git_revision" not in runs:
        return []
    notes = []
    ok = runs[runs["status"] == "ok"]
    for _, row in ok.groupby(["group", "point"], sort=False):
        revisions = sorted({r or "unknown" for r in row["git_revision"]})
        label = row["label"].iloc[0] if "label" in row else row["config"].iloc[0]
        if len(revisions) > 1:
            notes.append(f"warning: row {label} mixes runs of {len(revisions)} code revisions "
                         f"({', '.join(revisions)}); summary.csv has each run's")
        elif revisions[0].endswith("-dirty"):
            notes.append(f"warning: row {label} comes from a modified source tree ({revisions[0]}): "
                         "the revision does not say which code made it")
    return notes


def _recipe_tables(runs: pd.DataFrame, columns: list[Column]) -> list[Table]:
    tables = []
    for (recipe, rhash), same_recipe in runs.groupby(["recipe", "comparison_hash"], sort=True):
        # a failed run has no metric protocol: show it beside every table of its recipe
        failed = same_recipe[same_recipe["status"] != "ok"]
        scored = same_recipe[same_recipe["status"] == "ok"]
        for proto, group in list(scored.groupby("protocol", sort=True)) or [("none", scored)]:
            group = pd.concat([group, failed])
            tables.append(Table(
                title=f"recipe {recipe} (hash {rhash}, metric protocol {proto})",
                key=f"{recipe}-{rhash}-{proto}",
                frame=comparison_table(group, columns),
                runs=group, notes=[n for n in [runinfo.eval_note(group)] if n] + revision_notes(group),
            ))
    return tables


def _sweep_table(name: str, group: pd.DataFrame, columns: list[Column], title: str = "", notes: tuple = ()) -> Table:
    keys = _point_keys(group)
    recipes = ", ".join(sorted(set(group["recipe"])))
    notes = [*notes, *[n for n in [runinfo.eval_note(group)] if n]]
    protocols = sorted(set(group[group["status"] == "ok"]["protocol"]))
    if len(protocols) > 1:
        notes.append(f"its runs were scored under {len(protocols)} metric protocols ({', '.join(protocols)}); "
                     "summary.csv has each run's")
    notes += revision_notes(group)
    return Table(
        title=f"{title or f'sweep {name}'} (recipe {recipes}; swept: {', '.join(keys) or 'nothing'})",
        key=f"sweep-{slug(name, 'sweep')}",
        frame=comparison_table(group, columns, keys),
        runs=group, sweep=name, point_keys=keys, notes=notes,
    )


def _sweep_tables(runs: pd.DataFrame, columns: list[Column]) -> list[Table]:
    # in the order the paths were given
    return [_sweep_table(name, group, columns) for name, group in runs.groupby("sweep", sort=False)]


def _joined_tables(runs: pd.DataFrame, studies: dict, columns: list[Column]) -> list[Table]:
    """One more table per study that joins sweeps (``[report] joins``): their runs as one study.

    A study measured in steps (10 bits tuned first, then 6, 8 and 12 bits)
    leaves its runs in several sweeps, each of whose tables draws only its
    own rates; joined, each quantizer's curve spans every rate, and the
    study's families pool the joined runs.  The runs keep their rows in
    their own sweeps' tables and in summary.csv.
    """
    tables = []
    for study in studies.values():
        joined = runs[runs["sweep"].isin(study.joins)]
        if joined.empty:
            continue
        if (runs["sweep"] == study.name).any():
            raise ConfigError(f"study {study.name} ({study.source}) joins sweeps, but runs of a sweep of that name "
                              "are here too; give the joining study a name of its own")
        present = list(dict.fromkeys(joined["sweep"]))
        missing = [s for s in study.joins if s not in present]
        notes = [f"the runs of sweeps {', '.join(present)} together (each also has its own table)"]
        notes += [f"no runs of sweep {', '.join(missing)} among these paths"] if missing else []
        tables.append(_sweep_table(study.name, joined.assign(sweep=study.name), columns,
                                   title=f"study {study.name}: {', '.join(present)} joined", notes=tuple(notes)))
    return tables


def _add_config_statistics(runs: pd.DataFrame, metrics: list[Column]) -> pd.DataFrame:
    """Each run row gets its configuration's mean, 95% interval and n per metric (for summary.csv)."""
    extra = {}
    ok = runs.index.isin(counted(runs).index)
    for column in metrics:
        key = column.key
        stats = {}
        for group, same in runs[ok & (runs[f"{key}_status"] == "ok")].groupby("group", sort=False):
            stats[group] = mean_ci(same[key].tolist())
        for suffix, attr in (("mean", "mean"), ("ci_low", "low"), ("ci_high", "high"), ("n", "n")):
            extra[f"{key}_{suffix}"] = [getattr(stats[g], attr) if g in stats else None for g in runs["group"]]
    return pd.concat([runs, pd.DataFrame(extra, index=runs.index)], axis=1)


def build_report(paths: list[str | Path], *, baseline: str | None = None, fit: str | None = None,
                 bd_method: str = "cubic", studies: list[str | Path] | None = ()) -> Report:
    """Tables of every run below ``paths``; with ``baseline`` paired and BD comparisons, with ``fit`` the scaling fit.

    ``studies``: sweep or study files (or folders of them) whose ``[report]``
    tables declare the claims; None reads the sweep files the runs recorded
    (what ``qbench report`` does without ``--studies``); empty: no claims
    (``qbench.load_runs`` wants the run frame only).
    """
    report = Report()
    records = []
    for run_dir in find_run_dirs(paths):
        if not (run_dir / results.METRICS_FILE).exists() and (run_dir / results.CONFIG_FILE).exists():
            why = results.restarted_reason(run_dir)
            report.restarted.append((run_dir, why)) if why else report.unfinished.append(run_dir)
            continue
        try:
            record = results.read_metrics(run_dir)
        except ValueError as exc:
            report.broken.append((run_dir, str(exc)))
            continue
        problem = metric_value_problem(record)
        if problem:
            report.broken.append((run_dir, f"{run_dir / results.METRICS_FILE}: {problem}"))
            continue
        records.append((run_dir, record))
    report.metrics = metric_columns(r for _, r in records)
    if not records:
        if baseline or fit:
            raise ConfigError("no runs to compare: " + ", ".join(map(str, paths)))
        return report
    runs = pd.DataFrame([run_row(d, r, report.metrics) for d, r in records])
    suffix = version_labels(runs)
    runs["version_suffix"] = runs["group"].map(lambda g: suffix.get(g, ""))
    runs["label"] = runs["config"] + runs["version_suffix"]
    runs = _add_config_statistics(runs, report.metrics)
    report.runs = runs
    columns = report.columns
    report.tables = _recipe_tables(runs[runs["sweep"] == ""], columns) + _sweep_tables(runs[runs["sweep"] != ""], columns)
    if studies is None:  # the sweep files the runs were made from, where they still exist
        studies = sorted({f for f in map(runinfo.sweep_file, runs["run_dir"]) if f})
        declared = find_studies(studies, explicit=False)
    else:
        declared = find_studies(studies)
    report.tables += _joined_tables(runs, declared, columns)
    report.claims, report.sections = claims_sections(report, declared)
    report.sections += ceiling_sections(report)
    report.sections += noise_sections(report)
    if baseline:
        # deferred: loads pandas and numpy only when this runs
        from qbench.report.baseline import baseline_sections

        report.sections += baseline_sections(report, baseline, bd_method)
    if fit:
        # deferred: loads pandas and numpy only when this runs
        from qbench.report.fit import fit_sections

        fitted = fit_sections(report, fit)
        report.sections += fitted
        report.claims += [c for section in fitted for c in section.claims]
    return report


def to_markdown(frame: pd.DataFrame) -> str:
    headings = list(frame.columns)
    lines = ["| " + " | ".join(headings) + " |", "|" + "|".join("---" for _ in headings) + "|"]
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(str(row[h]).replace("|", "\\|") for h in headings) + " |")
    return "\n".join(lines)


def render_text(report: Report) -> str:
    """The tables as plain Markdown text (what ``qbench run`` and ``qbench report`` print)."""
    parts = []
    for table in report.tables + report.sections:
        text = f"## {table.title}\n\n{to_markdown(table.frame)}" if len(table.frame) else f"## {table.title}"
        parts.append("\n\n".join([text, *(f"- {n}" for n in table.notes)]))
    for run_dir in report.unfinished:
        parts.append(f"unfinished run (no metrics.json yet): {run_dir}")
    for run_dir, why in report.restarted:
        parts.append(f"restarted run: {run_dir} {why}")
    for run_dir, reason in report.broken:
        parts.append(f"broken run: {run_dir}: {reason}")
    return "\n\n".join(parts) if parts else "no runs found"
