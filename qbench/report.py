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
whose ``metrics.json`` cannot be read is listed as broken.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from . import results
from .columns import BITS, DESCRIPTIVE_TAIL, Column, fmt, metric_columns, metric_key
from .curves import OPTION_PREFIX, short_key
from .errors import ConfigError
from .stats import mean_ci


@dataclass
class Report:
    tables: list[dict[str, Any]] = field(default_factory=list)  # each: title, key, frame, runs, sweep, point_keys, notes
    broken: list[tuple[Path, str]] = field(default_factory=list)
    unfinished: list[Path] = field(default_factory=list)  # config.toml, no metrics.json yet
    runs: pd.DataFrame | None = None
    metrics: list[Column] = field(default_factory=list)
    sections: list[dict[str, Any]] = field(default_factory=list)  # baseline, BD and fit results: title, frame, notes

    @property
    def columns(self) -> list[Column]:
        return [BITS, *self.metrics, *DESCRIPTIVE_TAIL]


def find_run_dirs(paths: list[str | Path]) -> list[Path]:
    """Run directories below ``paths``: any directory holding config.toml or metrics.json.

    Sorted within each path, paths in the order given (a report lists its sweeps in that order).
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise ConfigError(f"no such results directory or run: {path}")
        if (path / results.CONFIG_FILE).exists() or (path / results.METRICS_FILE).exists():
            found.append(path)
            continue
        markers = list(path.rglob(results.CONFIG_FILE)) + list(path.rglob(results.METRICS_FILE))
        found.extend(sorted({m.parent for m in markers}))
    return list(dict.fromkeys(found))


def _dig(record: dict[str, Any], dotted: str) -> Any:
    node: Any = record
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def config_label(quantizer: str, options: dict[str, Any]) -> str:
    shown = {k: v for k, v in sorted(options.items()) if k != "dim"}
    if not shown:
        return quantizer
    parts = ", ".join(f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in shown.items())
    return f"{quantizer} ({parts})"


def protocol_key(metrics: dict[str, Any]) -> str:
    protocols = {n: m.get("protocol", {}) for n, m in sorted(metrics.items()) if isinstance(m, dict)}
    blob = json.dumps(protocols, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def plugin_versions(run: dict[str, Any]) -> dict[str, str]:
    """``{"quantizer": "qbench 0.1.0", "metric psnr": ...}`` from the run's plugin provenance."""
    plugins = run.get("plugins") or {}
    flat = {}
    for role, info in plugins.items():
        entries = info.items() if role == "metrics" and isinstance(info, dict) else [(None, info)]
        for name, entry in entries:
            if isinstance(entry, dict):
                who = entry.get("distribution") or entry.get("plugin") or ""
                flat[role if name is None else f"metric {name}"] = f"{who} {entry.get('version', '')}".strip()
    return flat


def run_row(run_dir: Path, record: dict[str, Any], metrics: list[Column]) -> dict[str, Any]:
    run = record["run"]
    recorded = record.get("metrics") or {}
    options = run.get("options") or {}  # effective: every default filled in (D, V, G for grids)
    given = run.get("given_options", options) or {}  # what the recipe set: short labels
    label = config_label(run.get("quantizer", "?"), given)
    sweep = run.get("sweep") if isinstance(run.get("sweep"), dict) else {}
    row: dict[str, Any] = {
        "run_dir": str(run_dir),
        "recipe": run.get("recipe", "?"),
        "recipe_hash": run.get("recipe_hash", "?"),
        "protocol": protocol_key(recorded),
        "quantizer": run.get("quantizer", "?"),
        "config": label,
        "group": run.get("config_hash") or label,
        "seed": run.get("seed"),
        "status": run.get("status", "?"),
        "reason": run.get("reason", ""),
        "sweep": str(sweep.get("name") or ""),
        "point": json.dumps(sweep.get("point") or {}, sort_keys=True),
        "options": json.dumps(options, sort_keys=True),
        "given_options": json.dumps(given, sort_keys=True),
        "plugins": json.dumps(plugin_versions(run), sort_keys=True),
    }
    names = {metric_key(n): n for n in recorded}
    for column in metrics:
        entry = recorded.get(names.get(column.key, ""))
        key = column.key
        if not isinstance(entry, dict):
            row[key], row[f"{key}_status"] = None, "not measured"
        elif entry.get("status") == "ok" and entry.get("value") is not None:
            row[key], row[f"{key}_status"] = float(entry["value"]), "ok"
        else:
            row[key], row[f"{key}_status"] = None, entry.get("status", "failed")
            row[f"{key}_reason"] = entry.get("reason", "")
    for column in (BITS, *DESCRIPTIVE_TAIL):
        value = _dig(record, column.source)
        row[column.key] = float(value) * column.scale if isinstance(value, (int, float)) else None
        row[f"{column.key}_status"] = "ok" if row[column.key] is not None else "not measured"
    return row


def _version_labels(runs: pd.DataFrame) -> dict[str, str]:
    """Group -> label suffix naming the plugin versions where one configuration's groups differ in them."""
    suffix: dict[str, str] = {}
    firsts = runs.drop_duplicates("group")
    for _, same in firsts.groupby("config", sort=False):
        if len(same) < 2:
            continue
        versions = {row["group"]: json.loads(row["plugins"]) for _, row in same.iterrows()}
        roles = sorted({r for v in versions.values() for r in v})
        differing = [r for r in roles if len({v.get(r, "") for v in versions.values()}) > 1]
        for group, v in versions.items():
            shown = ", ".join(f"{r} {v.get(r, '?')}" if r.startswith("metric") else v.get(r, "?") for r in differing)
            suffix[group] = f" [{shown}]" if shown else ""
    # still alike within one table (options that only the effective set tells apart): name the hash
    firsts = firsts.assign(shown=firsts["config"] + firsts["group"].map(lambda g: suffix.get(g, "")))
    for _, alike in firsts[firsts["sweep"] == ""].groupby(["recipe_hash", "protocol", "shown"], sort=False):
        if len(alike) > 1:
            for group in alike["group"]:
                suffix[group] = suffix.get(group, "") + f" [config {str(group)[:8]}]"
    return suffix


def _cell(group: pd.DataFrame, column: Column) -> str:
    key = column.key
    ok = group[group[f"{key}_status"] == "ok"][key].dropna()
    if ok.empty:
        return "/".join(sorted(set(group[f"{key}_status"])))
    ci = mean_ci(ok.tolist())
    if column.descriptive or ci.n == 1:
        return fmt(ci.mean, column.format)
    return f"{fmt(ci.mean, column.format)} ± {fmt(ci.half_width, column.format)} (n={ci.n})"


def _swept_options(runs: pd.DataFrame) -> dict[str, set[str]]:
    """Quantizer -> its options a sweep varies (shown as columns, not in the row label)."""
    swept: dict[str, set[str]] = {}
    for point in runs["point"]:
        for k in json.loads(point):
            if k.startswith(OPTION_PREFIX) and k.count(".") >= 2:
                _, quantizer, option = k.split(".", 2)
                swept.setdefault(quantizer, set()).add(option)
    return swept


def _row_label(run: pd.Series, swept: dict[str, set[str]]) -> str:
    options = {k: v for k, v in json.loads(run["given_options"]).items() if k not in swept.get(run["quantizer"], set())}
    return config_label(run["quantizer"], options) + run["version_suffix"]


def row_labels(runs: pd.DataFrame) -> dict[str, str]:
    """Group -> its row label in this table (a sweep's swept options are columns, not part of it)."""
    swept = _swept_options(runs) if (runs["sweep"] != "").any() else {}
    return {run["group"]: _row_label(run, swept) for _, run in runs.drop_duplicates("group").iterrows()}


def comparison_table(runs: pd.DataFrame, columns: list[Column], point_keys: list[str] = ()) -> pd.DataFrame:
    """One row per configuration (failed runs on rows of their own), formatted cells."""
    swept = _swept_options(runs) if point_keys else {}
    # a metric only other tables' runs recorded would be a column of "not measured" here
    columns = [c for c in columns if (runs[f"{c.key}_status"] != "not measured").any()] or columns
    rows = []

    def head(run: pd.Series) -> dict[str, Any]:
        row = {"quantizer": _row_label(run, swept)}
        point = json.loads(run["point"])
        for key in point_keys:
            value = next((v for k, v in point.items() if short_key(k) == key), "")
            row[key] = ",".join(map(str, value)) if isinstance(value, list) else value
        return row

    ok = runs[runs["status"] == "ok"]
    for _, group in ok.groupby("group", sort=False):
        row = head(group.iloc[0]) | {"seeds": len(group)}
        row.update({c.title: _cell(group, c) for c in columns})
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


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "-", text).strip("-") or "sweep"


def _recipe_tables(runs: pd.DataFrame, columns: list[Column]) -> list[dict[str, Any]]:
    tables = []
    for (recipe, rhash), same_recipe in runs.groupby(["recipe", "recipe_hash"], sort=True):
        # a failed run has no metric protocol: show it beside every table of its recipe
        failed = same_recipe[same_recipe["status"] != "ok"]
        scored = same_recipe[same_recipe["status"] == "ok"]
        for proto, group in list(scored.groupby("protocol", sort=True)) or [("none", scored)]:
            group = pd.concat([group, failed])
            tables.append({
                "title": f"recipe {recipe} (hash {rhash}, metric protocol {proto})",
                "key": f"{recipe}-{rhash}-{proto}",
                "frame": comparison_table(group, columns),
                "runs": group, "sweep": "", "point_keys": [], "notes": [],
            })
    return tables


def _sweep_tables(runs: pd.DataFrame, columns: list[Column]) -> list[dict[str, Any]]:
    tables = []
    for name, group in runs.groupby("sweep", sort=False):  # in the order the paths were given
        keys = _point_keys(group)
        recipes = ", ".join(sorted(set(group["recipe"])))
        notes = []
        protocols = sorted(set(group[group["status"] == "ok"]["protocol"]))
        if len(protocols) > 1:
            notes.append(f"its runs were scored under {len(protocols)} metric protocols ({', '.join(protocols)}); "
                         "summary.csv has each run's")
        tables.append({
            "title": f"sweep {name} (recipe {recipes}; swept: {', '.join(keys) or 'nothing'})",
            "key": f"sweep-{_slug(name)}",
            "frame": comparison_table(group, columns, keys),
            "runs": group, "sweep": name, "point_keys": keys, "notes": notes,
        })
    return tables


def _add_config_statistics(runs: pd.DataFrame, metrics: list[Column]) -> pd.DataFrame:
    """Each run row gets its configuration's mean, 95% interval and n per metric (for summary.csv)."""
    extra = {}
    ok = runs["status"] == "ok"
    for column in metrics:
        key = column.key
        stats = {}
        for group, same in runs[ok & (runs[f"{key}_status"] == "ok")].groupby("group", sort=False):
            stats[group] = mean_ci(same[key].tolist())
        for suffix, attr in (("mean", "mean"), ("ci_low", "low"), ("ci_high", "high"), ("n", "n")):
            extra[f"{key}_{suffix}"] = [getattr(stats[g], attr) if g in stats else None for g in runs["group"]]
    return pd.concat([runs, pd.DataFrame(extra, index=runs.index)], axis=1)


def build_report(paths: list[str | Path], *, baseline: str | None = None, fit: str | None = None,
                 bd_method: str = "cubic") -> Report:
    """Tables of every run below ``paths``; with ``baseline`` paired and BD comparisons, with ``fit`` the scaling fit."""
    report = Report()
    records = []
    for run_dir in find_run_dirs(paths):
        if not (run_dir / results.METRICS_FILE).exists() and (run_dir / results.CONFIG_FILE).exists():
            report.unfinished.append(run_dir)
            continue
        try:
            records.append((run_dir, results.read_metrics(run_dir)))
        except ValueError as exc:
            report.broken.append((run_dir, str(exc)))
    report.metrics = metric_columns(r for _, r in records)
    if not records:
        if baseline or fit:
            raise ConfigError("no runs to compare: " + ", ".join(map(str, paths)))
        return report
    runs = pd.DataFrame([run_row(d, r, report.metrics) for d, r in records])
    suffix = _version_labels(runs)
    runs["version_suffix"] = runs["group"].map(lambda g: suffix.get(g, ""))
    runs["label"] = runs["config"] + runs["version_suffix"]
    runs = _add_config_statistics(runs, report.metrics)
    report.runs = runs
    columns = report.columns
    report.tables = _recipe_tables(runs[runs["sweep"] == ""], columns) + _sweep_tables(runs[runs["sweep"] != ""], columns)
    if baseline:
        from .baseline import baseline_sections

        report.sections += baseline_sections(report, baseline, bd_method)
    if fit:
        from .scaling_report import fit_sections

        report.sections += fit_sections(report, fit)
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
        text = f"## {table['title']}\n\n{to_markdown(table['frame'])}" if len(table["frame"]) else f"## {table['title']}"
        parts.append("\n\n".join([text, *(f"- {n}" for n in table.get("notes", []))]))
    for run_dir in report.unfinished:
        parts.append(f"unfinished run (no metrics.json yet): {run_dir}")
    for run_dir, reason in report.broken:
        parts.append(f"broken run: {run_dir}: {reason}")
    return "\n\n".join(parts) if parts else "no runs found"
