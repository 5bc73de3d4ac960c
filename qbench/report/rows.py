"""One run directory -> one table row, and the labels rows are known by.

A row holds the run's identity (recipe, hash, protocol, quantizer, options,
seed, sweep point, plugin versions) and, per metric column, its value and
status: a failed or unavailable metric is a status, never a number.  The
rows of every run below some folders are what ``qbench.load_runs`` returns.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd

from qbench.errors import ConfigError
from qbench.platform.strict_json import is_finite_number
from qbench.report.columns import BITS, DESCRIPTIVE_TAIL, Column, eval_se_key, metric_key
from qbench.report.curves import OPTION_PREFIX
from qbench.rundir.directory import CONFIG_FILE, METRICS_FILE


def metric_value_problem(record: dict[str, Any]) -> str:
    """Why a record's numbers cannot be read, or "": every ``ok`` metric must hold a finite number.

    A string (``"n/a"``, or ``"12.9"``, which would silently pass for a
    number) or a missing value under ``ok`` makes the whole run broken: its
    other numbers may be as wrong, and reading them must not crash a report.
    """
    for name, entry in record["metrics"].items():
        if entry.get("status") == "ok" and not is_finite_number(entry.get("value")):
            return (f"metric {name!r} says ok but its value {entry.get('value')!r} is not a finite number "
                    "(qbench eval RUN_DIR scores it again)")
    return ""


def find_run_dirs(paths: list[str | Path]) -> list[Path]:
    """Run directories below ``paths``: any directory holding config.toml or metrics.json.

    Sorted within each path, paths in the order given (a report lists its sweeps in that order).
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise ConfigError(f"no such results directory or run: {path}")
        if (path / CONFIG_FILE).exists() or (path / METRICS_FILE).exists():
            found.append(path)
            continue
        markers = list(path.rglob(CONFIG_FILE)) + list(path.rglob(METRICS_FILE))
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
    parts = ", ".join(f"{k}={','.join(map(_short, v)) if isinstance(v, list) else _short(v)}" for k, v in shown.items())
    return f"{quantizer} ({parts})"


def _short(value: Any) -> str:
    """A tuned float (``0.0800703641613046``) as 4 significant digits; hand-set values as written."""
    text = str(value)
    if isinstance(value, float) and len(text.replace("-", "").replace(".", "").lstrip("0")) > 6:
        return f"{value:.4g}"
    return text


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


def evaluation_of(record: dict[str, Any]) -> tuple[str | None, int | None]:
    """The split a run's metrics were scored on and how many images: its ``eval`` block, or, in
    records written before there was one, what its metrics' protocols say (``split=`` in the
    evaluation-set key, ``num_images``)."""
    block = record.get("eval")
    if isinstance(block, dict) and block.get("split"):
        images = block.get("images")
        return str(block["split"]), int(images) if isinstance(images, int) else None
    for entry in (record.get("metrics") or {}).values():
        protocol = entry.get("protocol") if isinstance(entry, dict) else None
        key = protocol.get("eval_set") if isinstance(protocol, dict) else None
        if isinstance(key, str) and "split=" in key:
            images = protocol.get("num_images")
            return key.rsplit("split=", 1)[1].split("/")[0], int(images) if isinstance(images, int) else None
    return None, None


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
        # one table for the runs of one recipe, quantizers' own optim / latent keys included (per_quantizer)
        "comparison_hash": run.get("comparison_hash") or run.get("recipe_hash", "?"),
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
        "continuous": bool((record.get("model") or {}).get("continuous", False)),  # the unquantized ceiling
        "git_revision": str((record.get("env") or {}).get("git_revision") or ""),
    }
    row["eval_split"], row["eval_images"] = evaluation_of(record)
    names = {metric_key(n): n for n in recorded}
    for column in metrics:
        entry = recorded.get(names.get(column.key, ""))
        key = column.key
        if not isinstance(entry, dict):
            row[key], row[f"{key}_status"] = None, "not measured"
        elif entry.get("status") == "ok" and entry.get("value") is not None:
            row[key], row[f"{key}_status"] = float(entry["value"]), "ok"
            se = (entry.get("extras") or {}).get("standard_error")
            row[eval_se_key(key)] = float(se) if isinstance(se, (int, float)) else None
        else:
            row[key], row[f"{key}_status"] = None, entry.get("status", "failed")
            row[f"{key}_reason"] = entry.get("reason", "")
    for column in (BITS, *DESCRIPTIVE_TAIL):
        value = _dig(record, column.source)
        row[column.key] = float(value) * column.scale if isinstance(value, (int, float)) else None
        row[f"{column.key}_status"] = "ok" if row[column.key] is not None else "not measured"
    return row


def version_labels(runs: pd.DataFrame) -> dict[str, str]:
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


def swept_options(runs: pd.DataFrame) -> dict[str, set[str]]:
    """Quantizer -> its options a sweep varies (shown as columns, not in the row label)."""
    swept: dict[str, set[str]] = {}
    for point in runs["point"]:
        for k in json.loads(point):
            if k.startswith(OPTION_PREFIX) and k.count(".") >= 2:
                _, quantizer, option = k.split(".", 2)
                swept.setdefault(quantizer, set()).add(option)
    return swept


def row_label(run: pd.Series, swept: dict[str, set[str]]) -> str:
    options = {k: v for k, v in json.loads(run["given_options"]).items() if k not in swept.get(run["quantizer"], set())}
    ceiling = " (ceiling)" if run.get("continuous", False) else ""
    return config_label(run["quantizer"], options) + ceiling + run["version_suffix"]


def row_labels(runs: pd.DataFrame) -> dict[str, str]:
    """Group -> its row label in this table (a sweep's swept options are columns, not part of it)."""
    swept = swept_options(runs) if (runs["sweep"] != "").any() else {}
    return {run["group"]: row_label(run, swept) for _, run in runs.drop_duplicates("group").iterrows()}


def counted(runs: pd.DataFrame) -> pd.DataFrame:
    """Successful runs, each (configuration, seed) once: the first found in path order.

    The same identity and seed run again (a seed-0 point two studies share)
    is one measurement of that seed, not another seed; counting it twice
    would narrow the interval.  summary.csv still lists every run.
    """
    ok = runs[runs["status"] == "ok"]
    return ok[~ok.duplicated(["group", "seed"], keep="first")]
