"""Run directories: what one quantizer's run leaves behind.

A run directory holds ``config.toml`` (resolved recipe, effective quantizer
options, plugin provenance and hashes), ``metrics.json`` (every metric with
status and protocol, plus provenance), ``log.csv`` (per-step training log),
``recon.png`` (validation originals beside reconstructions) and the
checkpoint.  One object, ``RunDirectory``, owns every write into it; every
file is written atomically, so a crashed run never leaves a half-written
result for ``qbench report`` to read.
"""

from __future__ import annotations

import csv
import io
import json
import platform
import re
import subprocess
import time
from pathlib import Path
from typing import Any

from qbench import atomic
from qbench._version import __version__
from qbench.platform import strict_json
from qbench.recipe.identity import RunIdentity

SCHEMA_VERSION = 1
CONFIG_FILE = "config.toml"
METRICS_FILE = "metrics.json"
LOG_FILE = "log.csv"
GRID_FILE = "recon.png"
SAMPLES_FILE = "recon.npz"
RESTARTED_FILE = "restarted.txt"  # in a run folder that could not be resumed and was trained afresh elsewhere


def mark_restarted(run_dir: str | Path, reason: str) -> None:
    """Say in ``run_dir`` that it could not be resumed and was replaced (reports list it apart)."""
    (Path(run_dir) / RESTARTED_FILE).write_text(" ".join(reason.split()) + "\n")


def restarted_reason(run_dir: str | Path) -> str:
    """Why ``run_dir`` was abandoned for a fresh run; empty when it was not."""
    try:
        return (Path(run_dir) / RESTARTED_FILE).read_text().strip()
    except OSError:
        return ""


def slug(text: str, empty: str = "run") -> str:
    """``text`` as one safe path component (letters, digits, ``_.=-``); ``empty`` when nothing is left."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "-", text).strip("-") or empty


def recipe_folder(out_root: str | Path, recipe_name: str) -> Path:
    """``OUT/RECIPE``: where the run directories of one recipe go."""
    return Path(out_root) / slug(recipe_name)


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


# ---- log.csv, recon.png, metrics.json ---------------------------------------------------------


def _git(*args: str) -> str:
    try:
        out = subprocess.run(
            ["git", *args], cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def _git_revision() -> str:
    """``git describe --dirty --always`` of qbench's own checkout (``-dirty``: tracked files modified).

    Empty when qbench does not run from a git checkout of itself: installed
    from a wheel, perhaps inside some other project's repository, whose
    revision says nothing about qbench's code.
    """
    top = _git("rev-parse", "--show-toplevel")
    if not top or Path(top).resolve() != Path(__file__).resolve().parents[2]:
        return ""
    return _git("describe", "--dirty", "--always")


def environment() -> dict[str, str]:
    # deferred: loads torch only when this runs
    import torch

    return {
        "qbench": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_revision": _git_revision(),
    }


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
    problem = _shape_problem(record)
    if problem:
        raise ValueError(f"{path}: not a qbench metrics record ({problem})")
    return record


def _shape_problem(record: dict[str, Any]) -> str:
    """What is wrong with the structure of a metrics record that parsed as JSON, or ""."""
    for key in ("run", "metrics"):
        if not isinstance(record[key], dict):
            return f"{key!r} must be an object, got {type(record[key]).__name__}"
    for key in ("model", "train", "env"):
        if key in record and not isinstance(record[key], dict):
            return f"{key!r} must be an object, got {type(record[key]).__name__}"
    bad = [name for name, entry in record["metrics"].items() if not isinstance(entry, dict)]
    if bad:
        return f"metric {bad[0]!r} must be an object"
    run = record["run"]
    for key in ("options", "given_options", "plugins", "sweep"):
        if run.get(key) is not None and not isinstance(run[key], dict):
            return f"run.{key} must be an object"
    if run.get("seed") is not None and (isinstance(run["seed"], bool) or not isinstance(run["seed"], int)):
        return f"run.seed must be an integer, got {run['seed']!r}"
    if not isinstance(run.get("quantizer", ""), str) or not isinstance(run.get("status", ""), str):
        return "run.quantizer and run.status must be strings"
    return ""


def build_record(identity: RunIdentity, *, status: str, reason: str = "", failed_step: int | None = None,
                 metrics: dict[str, dict[str, Any]], model_info: dict[str, Any], train_info: dict[str, Any],
                 sweep: dict[str, Any] | None = None, evaluation: dict[str, Any] | None = None) -> dict[str, Any]:
    """The content of ``metrics.json`` (schema documented in docs/results.md).

    ``evaluation``: the ``eval`` block, the split the metrics are scored on and its image count."""
    if status not in ("ok", "failed"):
        raise ValueError(f"status must be ok or failed, got {status!r}")
    run = {
        "quantizer": identity.quantizer,
        "options": dict(identity.options),
        "given_options": dict(identity.given_options),
        "recipe": identity.recipe.name,
        "recipe_hash": identity.recipe_hash,
        **({"comparison_hash": identity.comparison_hash} if identity.comparison_hash else {}),
        "config_hash": identity.config_hash,
        "seed": identity.seed,
        "plugins": identity.plugins,
        "status": status,
        "reason": reason,
        "failed_step": failed_step,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if sweep:
        run["sweep"] = sweep
    record = {"schema": SCHEMA_VERSION, "run": run, "metrics": metrics, "model": model_info, "train": train_info,
              "env": environment()}
    if evaluation:
        record["eval"] = dict(evaluation)
    return record


class RunDirectory:
    """One run's directory, and the only writer of the files in it."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    @classmethod
    def create(cls, out_root: str | Path, recipe_name: str, label: str, seed: int) -> RunDirectory:
        """A fresh, empty directory ``OUT/RECIPE/LABEL-seedN-TIMESTAMP`` (safe against concurrent creators)."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        parent = recipe_folder(out_root, recipe_name)
        parent.mkdir(parents=True, exist_ok=True)
        base = f"{slug(label)}-seed{seed}-{stamp}"
        for n in range(1, 10_000):
            path = parent / (base if n == 1 else f"{base}-{n}")
            try:
                path.mkdir()  # atomic: exactly one of several racing processes gets each name
            except FileExistsError:
                continue
            return cls(path)
        raise RuntimeError(f"no free run directory name under {parent}")

    def write_config(self, identity: RunIdentity, sweep: dict[str, Any] | None = None, world_size: int = 1) -> Path:
        """``world_size``: the ranks training the run; it resumes only with as many (read without torch by sweeps)."""
        table: dict[str, Any] = {
            "run": {"quantizer": identity.quantizer, "recipe_hash": identity.recipe_hash,
                    "config_hash": identity.config_hash, "seed": identity.seed, "world_size": world_size},
            "quantizer_options": dict(identity.options),
            "plugins": identity.plugins,
            "recipe": identity.recipe.to_dict(),
        }
        if sweep:
            table["sweep"] = sweep
        return atomic.write_text(self.path / CONFIG_FILE, to_toml(table))

    def write_log(self, rows: list[dict[str, Any]]) -> Path:
        columns: list[str] = []
        for row in rows:
            columns.extend(k for k in row if k not in columns)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
        return atomic.write_text(self.path / LOG_FILE, buf.getvalue())

    def write_recon_grid(self, originals, reconstructions, *, columns: int = 8) -> Path:
        """A PNG grid: each row of originals is followed by the row of their reconstructions.

        The uint8 arrays are kept beside it (``recon.npz``) so that ``qbench
        report`` can put several quantizers' reconstructions of the same
        validation images side by side.
        """
        # deferred: loads numpy and PIL only when this runs
        import numpy as np

        from qbench.rundir.grid import recon_grid_image

        originals = np.asarray(originals, dtype=np.uint8)
        reconstructions = np.asarray(reconstructions, dtype=np.uint8)
        samples = io.BytesIO()
        np.savez_compressed(samples, originals=originals, reconstructions=reconstructions)
        atomic.write_bytes(self.path / SAMPLES_FILE, samples.getvalue())
        image = recon_grid_image(originals, reconstructions, columns=columns)
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return atomic.write_bytes(self.path / GRID_FILE, buf.getvalue())

    def write_metrics(self, record: dict[str, Any]) -> Path:
        """Atomically, as strict JSON: a non-finite number (a NaN loss) is written as ``null``."""
        return atomic.write_text(self.path / METRICS_FILE, strict_json.dumps(record, indent=2, sort_keys=True) + "\n")

    def remove_stale_temporaries(self) -> list[Path]:
        """Delete the ``.NAME.*.tmp`` files an atomic write leaves when its process is killed.

        Call only while this process is the run's one writer (a resume, a re-score).
        """
        stale = [p for p in self.path.glob(".*.tmp") if p.is_file()]
        for path in stale:
            path.unlink(missing_ok=True)
        return stale

    def discard_if_unused(self) -> bool:
        """Remove the directory when it holds nothing to keep: no checkpoint and no metrics.

        A run stopped before its first checkpoint (an error, Ctrl-C) would
        otherwise leave a folder with only ``config.toml`` that reports list
        and ``--resume`` cannot continue.  Anything else in it is left alone.
        """
        disposable = {CONFIG_FILE, LOG_FILE}
        entries = list(self.path.iterdir()) if self.path.is_dir() else []
        if any(not (e.is_file() and (e.name in disposable or e.name.endswith(".tmp"))) for e in entries):
            return False
        for entry in entries:
            entry.unlink(missing_ok=True)
        self.path.rmdir()
        return True

    def read_metrics(self) -> dict[str, Any]:
        return read_metrics(self.path)

    def save_checkpoint(self, state: dict[str, Any]) -> Path:
        # deferred: loads torch only when this runs
        from qbench.rundir import checkpoint

        return checkpoint.save(self.path, state)
