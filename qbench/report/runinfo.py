"""What a run directory records beyond its table row: the full recipe, the sweep file, the evaluation set.

The run frame (qbench.report.rows) keeps what the tables show; a claim may
move along any recipe key (``train.steps``) and a table states the images it
was scored on, so these are read from the run's own files on demand, once
per run.  A file that cannot be read gives nothing, never an error: the
frame already lists such runs as broken.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import tomllib

from qbench.rundir.directory import CONFIG_FILE, METRICS_FILE

SPLIT = re.compile(r"(?:^|/)split=([A-Za-z0-9_-]+)")


@lru_cache(maxsize=4096)
def _config(run_dir: str) -> dict[str, Any]:
    try:
        return tomllib.loads((Path(run_dir) / CONFIG_FILE).read_text())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return {}


@lru_cache(maxsize=4096)
def _record(run_dir: str) -> dict[str, Any]:
    try:
        record = json.loads((Path(run_dir) / METRICS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def recipe_value(run_dir: str, dotted: str) -> Any:
    """The run's recipe value at ``dotted`` (``train.steps``), None when not recorded."""
    node: Any = _config(str(run_dir)).get("recipe", {})
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def sweep_file(run_dir: str) -> str:
    """The sweep file the run's study was run from, as it was given ("" outside a sweep)."""
    sweep = (_record(str(run_dir)).get("run") or {}).get("sweep")
    return str(sweep.get("file") or "") if isinstance(sweep, dict) else ""


def eval_set(run_dir: str) -> tuple[int | None, str]:
    """(images scored, split) of the run's final evaluation, from its metrics' protocols."""
    metrics = _record(str(run_dir)).get("metrics") or {}
    images, split = None, ""
    for entry in metrics.values():
        protocol = entry.get("protocol") if isinstance(entry, dict) else None
        if not isinstance(protocol, dict):
            continue
        count = protocol.get("num_images")
        if images is None and isinstance(count, int) and not isinstance(count, bool):
            images = count
        found = SPLIT.search(str(protocol.get("eval_set", "")))
        if not split and found:
            split = found.group(1)
    return images, split


def _recorded(run: Any, column: str) -> Any:
    value = run.get(column) if hasattr(run, "get") else None
    return None if value is None or (isinstance(value, float) and value != value) else value


def eval_note(runs: Any) -> str:
    """What a table's runs were scored on: images and split, from the run frame or the runs' records."""
    counts: dict[tuple[int | None, str], int] = {}
    for _, run in runs[runs["status"] == "ok"].iterrows():
        images, split = _recorded(run, "eval_images"), _recorded(run, "eval_split")
        if images is None or not split:
            found = eval_set(run["run_dir"])
            images, split = images if images is not None else found[0], split or found[1]
        key = (int(images) if images is not None else None, str(split or ""))
        counts[key] = counts.get(key, 0) + 1
    if not counts:
        return ""

    def said(images: int | None, split: str) -> str:
        if images is None:
            return "an evaluation set its runs did not record"
        return f"{images:,} images of the {split} split" if split else f"{images:,} images"

    if len(counts) == 1:
        return f"scored on {said(*next(iter(counts)))} (every run)"
    parts = [f"{said(*key)} ({n} runs)" for key, n in sorted(counts.items(), key=lambda kv: -kv[1])]
    return "scored on different evaluation sets: " + "; ".join(parts)
