"""``qbench report``: comparison tables and plots from run directories.

Runs are grouped into one table per (recipe, recipe hash, metric protocol):
a table never mixes runs trained under different recipes or scored under
different protocols.  Rows are quantizer configurations; several seeds of
one configuration become ``mean ± std (n=seeds)``.  Failed runs and
unavailable metrics are shown as such, never as numbers; a run directory
whose ``metrics.json`` is missing or broken is listed as broken.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from . import results
from .errors import ConfigError

# column key -> (heading, source, higher_is_better); source "metric:NAME" or a record path
COLUMNS: list[tuple[str, str, str, bool | None]] = [
    ("bits", "bits/pos", "model.bits_per_position", None),
    ("rfid", "rFID", "metric:rfid", False),
    ("lpips", "LPIPS", "metric:lpips", False),
    ("psnr", "PSNR (dB)", "metric:psnr", True),
    ("ssim", "SSIM", "metric:ssim", True),
    ("usage", "usage (%)", "metric:usage", True),
    ("perplexity", "perplexity", "metric:perplexity", True),
    ("params", "params (M)", "model.parameters.total", None),
    ("train_min", "train (min)", "train.wall_time_s", None),
]
ARROW = {True: " ↑", False: " ↓", None: ""}


@dataclass
class Report:
    tables: list[dict[str, Any]] = field(default_factory=list)  # each: title, key, frame, runs
    broken: list[tuple[Path, str]] = field(default_factory=list)
    runs: pd.DataFrame | None = None


def find_run_dirs(paths: list[str | Path]) -> list[Path]:
    """Run directories below ``paths``: any directory holding config.toml or metrics.json."""
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
    return sorted(dict.fromkeys(found))


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


def run_row(run_dir: Path, record: dict[str, Any]) -> dict[str, Any]:
    run = record["run"]
    metrics = record.get("metrics") or {}
    row: dict[str, Any] = {
        "run_dir": str(run_dir),
        "recipe": run.get("recipe", "?"),
        "recipe_hash": run.get("recipe_hash", "?"),
        "protocol": protocol_key(metrics),
        "quantizer": run.get("quantizer", "?"),
        "config": config_label(run.get("quantizer", "?"), run.get("given_options", run.get("options")) or {}),
        "seed": run.get("seed"),
        "status": run.get("status", "?"),
        "reason": run.get("reason", ""),
    }
    for key, _, source, _ in COLUMNS:
        if source.startswith("metric:"):
            entry = metrics.get(source[7:])
            if not isinstance(entry, dict):
                row[key], row[f"{key}_status"] = None, "not measured"
            elif entry.get("status") == "ok" and entry.get("value") is not None:
                row[key], row[f"{key}_status"] = float(entry["value"]), "ok"
            else:
                row[key], row[f"{key}_status"] = None, entry.get("status", "failed")
                row[f"{key}_reason"] = entry.get("reason", "")
        else:
            value = _dig(record, source)
            row[key] = float(value) if isinstance(value, (int, float)) else None
            row[f"{key}_status"] = "ok" if row[key] is not None else "not measured"
    if row["params"] is not None:
        row["params"] /= 1e6
    if row["train_min"] is not None:
        row["train_min"] /= 60
    return row


def _fmt(value: float) -> str:
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    digits = max(0, 3 - int(math.floor(math.log10(abs(value)))) - 1)
    return f"{value:.{min(digits, 4)}f}"


def _cell(group: pd.DataFrame, key: str, descriptive: bool = False) -> str:
    ok = group[group[f"{key}_status"] == "ok"][key].dropna()
    if ok.empty:
        statuses = sorted(set(group[f"{key}_status"]))
        return "/".join(statuses)
    if len(ok) == 1 or descriptive:  # rates, sizes and times: the mean says it all
        return _fmt(ok.mean())
    return f"{_fmt(ok.mean())} ± {_fmt(ok.std(ddof=1))} (n={len(ok)})"


def comparison_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration (failed runs on rows of their own), formatted cells."""
    rows = []
    ok = runs[runs["status"] == "ok"]
    for config, group in ok.groupby("config", sort=False):
        row = {"quantizer": config, "seeds": len(group)}
        row.update({heading + ARROW[hib]: _cell(group, key, hib is None) for key, heading, _, hib in COLUMNS})
        rows.append(row)
    for _, run in runs[runs["status"] != "ok"].iterrows():
        row = {"quantizer": run["config"], "seeds": 1}
        row.update({heading + ARROW[hib]: "—" for _, heading, _, hib in COLUMNS})
        row["status"] = f"failed: {run['reason']}"
        rows.append(row)
    frame = pd.DataFrame(rows)
    if "status" in frame:
        frame["status"] = frame["status"].fillna("ok")
    return frame


def build_report(paths: list[str | Path]) -> Report:
    report = Report()
    rows = []
    for run_dir in find_run_dirs(paths):
        try:
            record = results.read_metrics(run_dir)
            rows.append(run_row(run_dir, record))
        except ValueError as exc:
            report.broken.append((run_dir, str(exc)))
    if not rows:
        return report
    runs = pd.DataFrame(rows)
    report.runs = runs
    for (recipe, rhash), same_recipe in runs.groupby(["recipe", "recipe_hash"], sort=True):
        # a failed run has no metric protocol: show it beside every table of its recipe
        failed = same_recipe[same_recipe["status"] != "ok"]
        scored = same_recipe[same_recipe["status"] == "ok"]
        groups = list(scored.groupby("protocol", sort=True)) or [("none", scored)]
        for proto, group in groups:
            group = pd.concat([group, failed])
            report.tables.append(
                {
                    "title": f"recipe {recipe} (hash {rhash}, metric protocol {proto})",
                    "key": f"{recipe}-{rhash}-{proto}",
                    "frame": comparison_table(group),
                    "runs": group,
                }
            )
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
    for table in report.tables:
        parts.append(f"## {table['title']}\n\n{to_markdown(table['frame'])}")
    for run_dir, reason in report.broken:
        parts.append(f"broken run: {run_dir}: {reason}")
    return "\n\n".join(parts) if parts else "no runs found"
