"""Run directories already under a sweep's output folder, and what they mean for a point.

A point is identified by its ``config_hash`` (``qbench.recipe.identity.resolve``:
recipe hash, quantizer, effective options, plugin versions) and its seed.
For each identity the folder may hold:

- a *done* run: ``metrics.json`` with ``run.status == "ok"``: skipped;
- a *failed* run: ``metrics.json`` with status failed: the point runs again
  in a new directory (the failed one stays, with its reason and log);
- an *interrupted* run: ``config.toml`` and ``checkpoint.pt`` but no
  ``metrics.json`` (killed, preempted, out of time): resumed from its
  checkpoint with ``qbench.comparison.runner.resume_run``; with several, the newest;
- an *abandoned* start: ``config.toml`` without checkpoint or metrics
  (stopped before its first checkpoint): nothing to resume, the point starts
  afresh in a new directory.

A directory whose identity differs from every point (another recipe, an
older plugin version) is never resumed or counted: the point it resembles
starts afresh.  Only plain files are read (TOML and JSON), so scanning
imports no torch.

While a point runs, its worker holds a lock file
(``OUT/.locks/HASH-seedN.lock``, ``fcntl.flock``): a second sweep process on
the same folder sees the point as running and leaves it alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from qbench.rundir.directory import CONFIG_FILE, METRICS_FILE, read_metrics, restarted_reason

CHECKPOINT_FILE = "checkpoint.pt"  # qbench.rundir.checkpoint.CHECKPOINT_FILE, without importing torch
LOCK_DIR = ".locks"

Key = tuple[str, int]  # (config_hash, seed)


@dataclass
class Existing:
    """What the output folder holds for one identity."""

    done: Path | None = None
    record: dict[str, Any] | None = None  # the done run's metrics.json
    interrupted: list[Path] = field(default_factory=list)  # newest checkpoint first
    failed: list[Path] = field(default_factory=list)
    world_sizes: dict[Path, int] = field(default_factory=dict)  # interrupted run -> the ranks that trained it

    def resume_world_size(self) -> int | None:
        """The ranks that trained the run this point would resume (``None``: nothing to resume, or not recorded)."""
        return self.world_sizes.get(self.interrupted[0]) if self.interrupted and self.done is None else None

    @property
    def status(self) -> str:
        if self.done is not None:
            return "done"
        if self.interrupted:
            return "resume"
        return "rerun" if self.failed else "new"


def _identity_of_config(run_dir: Path) -> tuple[Key | None, int | None]:
    """(config_hash, seed) and the world size recorded in ``config.toml`` (``None`` where absent or unreadable)."""
    try:
        run = tomllib.loads((run_dir / CONFIG_FILE).read_text()).get("run", {})
        key = str(run["config_hash"]), int(run["seed"])
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError):
        return None, None
    world = run.get("world_size")
    return key, world if isinstance(world, int) and not isinstance(world, bool) else None


def scan(out: str | Path) -> dict[Key, Existing]:
    """Every run directory below ``out``, indexed by (config_hash, seed)."""
    index: dict[Key, Existing] = {}
    root = Path(out)
    if not root.is_dir():
        return index
    dirs = {p.parent for p in root.rglob(CONFIG_FILE)} | {p.parent for p in root.rglob(METRICS_FILE)}
    for run_dir in sorted(dirs):
        if (run_dir / METRICS_FILE).exists():
            try:
                record = read_metrics(run_dir)
                key = (str(record["run"]["config_hash"]), int(record["run"]["seed"]))
            except (ValueError, KeyError, TypeError):
                continue  # broken records are the report's business; the point runs again
            entry = index.setdefault(key, Existing())
            if record["run"].get("status") == "ok":
                if entry.done is None:
                    entry.done, entry.record = run_dir, record
            else:
                entry.failed.append(run_dir)
            continue
        key, world = _identity_of_config(run_dir)
        if key is not None and (run_dir / CHECKPOINT_FILE).exists() and not restarted_reason(run_dir):
            entry = index.setdefault(key, Existing())
            entry.interrupted.append(run_dir)
            if world is not None:
                entry.world_sizes[run_dir] = world
    for entry in index.values():
        entry.interrupted.sort(key=lambda d: (d / CHECKPOINT_FILE).stat().st_mtime, reverse=True)
    return index


def find(out: str | Path, config_hash: str, seed: int) -> Existing:
    return scan(out).get((config_hash, seed), Existing())


def lock_path(out: str | Path, config_hash: str, seed: int) -> Path:
    return Path(out) / LOCK_DIR / f"{config_hash}-seed{seed}.lock"


@contextlib.contextmanager
def point_lock(out: str | Path, config_hash: str, seed: int) -> Iterator[bool]:
    """Hold the point's lock while the block runs; yields False when another process holds it.

    The lock dies with its process (``flock``), so a killed worker never
    leaves a stale lock behind.
    """
    try:
        import fcntl
    except ImportError:  # no flock on this platform: no protection against a second sweep process
        yield True
        return
    path = lock_path(out, config_hash, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def is_running(out: str | Path, config_hash: str, seed: int) -> bool:
    if not lock_path(out, config_hash, seed).exists():
        return False
    with point_lock(out, config_hash, seed) as free:
        return not free
