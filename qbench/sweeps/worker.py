"""Running one sweep point, in whatever process a launcher gives it.

Both launchers call ``run_point``: the local one in a subprocess
(``python -m qbench.sweeps.worker TASK.json RESULT.json``), the Slurm one in a
submitit job.  The point decides *here*, under its lock, what to do, so a
requeued or repeated job does the right thing:

- a done run of its identity exists: nothing (``skipped``);
- an interrupted run with a checkpoint exists: ``runner.resume_run`` continues
  it (its checkpoint holds the point's sweep record); if that checkpoint
  cannot be loaded, the point starts afresh, the result says so
  (``restarted``) and the old folder gets a ``restarted.txt`` saying why;
- otherwise ``runner.run_comparison`` trains it in a new run directory with
  the point's sweep record.

Whatever happens, the result is a ``PointResult``; an exception becomes a
failed result with its one-line reason, never a crash of the sweep.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from qbench.comparison import runner
from qbench.errors import ConfigError
from qbench.platform.plugins import registries
from qbench.recipe.config import recipe_from_dict
from qbench.rundir.directory import mark_restarted
from qbench.sweeps import existing


@dataclass(frozen=True)
class PointTask:
    """Plain data: everything a process needs to run one point."""

    index: int
    label: str
    quantizer: str
    recipe: dict[str, Any]  # the resolved recipe, seed included (Recipe.to_dict)
    config_hash: str
    seed: int
    out: str
    sweep: dict[str, Any]  # the run record's sweep block: name, file, point
    threads: int = 0  # torch threads; 0: torch's default

    def to_json(self) -> str:
        return json.dumps(asdict(self))


@dataclass
class PointResult:
    index: int
    status: str  # ok | failed | skipped (already done) | busy (another process runs it)
    reason: str = ""
    run_dir: str = ""
    seconds: float = 0.0
    resumed: bool = False
    restarted: str = ""  # the run folder that could not be resumed, and why: this point trained afresh

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PointResult:
        return cls(**data)


def set_threads(threads: int) -> None:
    if threads > 0:
        # deferred: loads torch only when this runs
        import torch

        torch.set_num_threads(threads)


def _run(task: PointTask) -> PointResult:
    found = existing.find(task.out, task.config_hash, task.seed)
    if found.done is not None:
        return PointResult(task.index, "skipped", run_dir=str(found.done))
    regs = registries()
    outcome, resumed, restarted = None, False, ""
    for run_dir in found.interrupted[:1]:
        try:
            outcome, resumed = runner.resume_run(run_dir, progress=False, regs=regs), True
        except ConfigError as exc:  # unreadable or foreign checkpoint: start afresh below
            restarted = f"{run_dir}: {' '.join(str(exc).split())}"
            print(f"cannot resume {run_dir} ({exc}); starting afresh", file=sys.stderr)
    if outcome is None:
        recipe = recipe_from_dict(dict(task.recipe))
        [outcome] = runner.run_comparison([task.quantizer], recipe, out_root=task.out, progress=False,
                                          regs=regs, sweep=task.sweep)
    if restarted:  # the old folder says so, so that reports stop listing it as unfinished
        mark_restarted(restarted.split(": ", 1)[0], f"could not be resumed ({restarted.split(': ', 1)[1]}); "
                       f"trained afresh in {outcome.run_dir}")
    got = (outcome.record.get("run") or {}).get("config_hash")
    if got and got != task.config_hash:
        return PointResult(task.index, "failed", f"ran as config {got}, planned as {task.config_hash} "
                           "(plugins changed while the sweep ran?)", str(outcome.run_dir), resumed=resumed,
                           restarted=restarted)
    return PointResult(task.index, outcome.status, outcome.reason, str(outcome.run_dir or ""), resumed=resumed,
                       restarted=restarted)


def run_point(task: PointTask) -> PointResult:
    """Run (or resume, or skip) one point; never raises for a failing run."""
    started = time.perf_counter()
    set_threads(task.threads)
    try:
        with existing.point_lock(task.out, task.config_hash, task.seed) as held:
            if not held:
                return PointResult(task.index, "busy", "another process is running this point")
            result = _run(task)
    except Exception as exc:  # noqa: BLE001  a point that cannot even start fails alone
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())
        result = PointResult(task.index, "failed", reason)
    result.seconds = round(time.perf_counter() - started, 1)
    return result


def main(argv: list[str]) -> int:
    """``python -m qbench.sweeps.worker TASK.json RESULT.json``: the local launcher's subprocess."""
    task = PointTask(**json.loads(Path(argv[0]).read_text()))
    result = run_point(task)
    tmp = Path(argv[1] + ".tmp")
    tmp.write_text(json.dumps(asdict(result)))
    os.replace(tmp, argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
