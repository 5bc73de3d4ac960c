"""Run directories: what one quantizer's run leaves behind.

A run directory holds ``config.toml`` (resolved recipe, quantizer options and
their hashes), ``metrics.json`` (every metric with status and protocol, plus
provenance), ``log.csv`` (per-step training log), ``recon.png`` (validation
originals beside reconstructions) and the checkpoint.  Every file is written
atomically, so a crashed run never leaves a half-written result for
``qbench report`` to read.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import platform
import re
import subprocess
import time
from pathlib import Path
from typing import Any

from . import __version__, atomic
from .config import Recipe

SCHEMA_VERSION = 1
CONFIG_FILE = "config.toml"
METRICS_FILE = "metrics.json"
LOG_FILE = "log.csv"
GRID_FILE = "recon.png"
SAMPLES_FILE = "recon.npz"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "-", text).strip("-") or "run"


def new_run_dir(out_root: str | Path, recipe: Recipe, label: str, seed: int) -> Path:
    """A fresh, empty directory ``OUT/RECIPE/LABEL-seedN-TIMESTAMP``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(out_root) / _slug(recipe.name) / f"{_slug(label)}-seed{seed}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    path.mkdir(parents=True)
    return path


# ---- config.toml ------------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if value is None:
        return '""'
    return json.dumps(str(value))


def to_toml(table: dict[str, Any], prefix: str = "") -> str:
    """A minimal TOML writer for plain recipe data (tables, scalars, lists)."""
    scalars = [(k, v) for k, v in table.items() if not isinstance(v, dict)]
    tables = [(k, v) for k, v in table.items() if isinstance(v, dict)]
    lines = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in scalars]
    out = "\n".join(lines)
    for key, sub in tables:
        name = f"{prefix}{_toml_key(key)}"
        body = to_toml(sub, f"{name}.")
        has_scalars = any(not isinstance(v, dict) for v in sub.values())
        if has_scalars or not sub:
            out += f"\n\n[{name}]\n" + body
        else:
            out += "\n" + body
    return out.strip() + "\n"


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def config_hash(recipe: Recipe, quantizer: str, options: dict[str, Any]) -> str:
    blob = json.dumps({"recipe": recipe.hash(), "quantizer": quantizer, "options": options}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def write_config(run_dir: str | Path, recipe: Recipe, quantizer: str, options: dict[str, Any]) -> dict[str, str]:
    hashes = {"recipe_hash": recipe.hash(), "config_hash": config_hash(recipe, quantizer, options)}
    table = {
        "run": {"quantizer": quantizer, **hashes},
        "quantizer_options": dict(options),
        "recipe": recipe.to_dict(),
    }
    atomic.write_text(Path(run_dir) / CONFIG_FILE, to_toml(table))
    return hashes


# ---- log.csv, recon.png, metrics.json ---------------------------------------------------------


def write_log(run_dir: str | Path, rows: list[dict[str, Any]]) -> None:
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    atomic.write_text(Path(run_dir) / LOG_FILE, buf.getvalue())


def write_recon_grid(run_dir: str | Path, originals, reconstructions, *, columns: int = 8) -> Path:
    """A PNG grid: each row of originals is followed by the row of their reconstructions.

    The uint8 arrays are kept beside it (``recon.npz``) so that ``qbench
    report`` can put several quantizers' reconstructions of the same
    validation images side by side.
    """
    import numpy as np

    from .plots import recon_grid_image

    originals = np.asarray(originals, dtype=np.uint8)
    reconstructions = np.asarray(reconstructions, dtype=np.uint8)
    samples = io.BytesIO()
    np.savez_compressed(samples, originals=originals, reconstructions=reconstructions)
    atomic.write_bytes(Path(run_dir) / SAMPLES_FILE, samples.getvalue())
    image = recon_grid_image(originals, reconstructions, columns=columns)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return atomic.write_bytes(Path(run_dir) / GRID_FILE, buf.getvalue())


def _git(*args: str) -> str:
    try:
        out = subprocess.run(
            ["git", *args], cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def _git_revision() -> str:
    """The source revision, ``-dirty`` when tracked files are modified."""
    rev = _git("rev-parse", "--short", "HEAD")
    return f"{rev}-dirty" if rev and _git("status", "--porcelain", "--untracked-files=no") else rev


def environment() -> dict[str, str]:
    import torch

    return {
        "qbench": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_revision": _git_revision(),
    }


def build_record(
    *,
    recipe: Recipe,
    quantizer: str,
    options: dict[str, Any],
    seed: int,
    status: str,
    reason: str = "",
    failed_step: int | None = None,
    metrics: dict[str, dict[str, Any]],
    model_info: dict[str, Any],
    train_info: dict[str, Any],
) -> dict[str, Any]:
    """The content of ``metrics.json`` (schema documented in docs/results.md)."""
    if status not in ("ok", "failed"):
        raise ValueError(f"status must be ok or failed, got {status!r}")
    return {
        "schema": SCHEMA_VERSION,
        "run": {
            "quantizer": quantizer,
            "options": dict(options),
            "recipe": recipe.name,
            "recipe_hash": recipe.hash(),
            "config_hash": config_hash(recipe, quantizer, options),
            "seed": seed,
            "status": status,
            "reason": reason,
            "failed_step": failed_step,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
        "metrics": metrics,
        "model": model_info,
        "train": train_info,
        "env": environment(),
    }


def write_metrics(run_dir: str | Path, record: dict[str, Any]) -> Path:
    return atomic.write_json(Path(run_dir) / METRICS_FILE, record)


def read_metrics(run_dir: str | Path) -> dict[str, Any]:
    """Read ``metrics.json``; raise ``ValueError`` naming the problem if it is broken."""
    path = Path(run_dir) / METRICS_FILE
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(record, dict) or not {"run", "metrics"} <= record.keys():
        raise ValueError(f"{path}: not a qbench metrics record")
    return record
