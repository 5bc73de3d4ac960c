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
  if it was trained on another number of ranks (``ResumeRefused``), the
  point fails with that reason and the run is left as it is (the sweep
  refuses such a point before launching, ``launch.check_resumable``);
- otherwise ``runner.run_comparison`` trains it in a new run directory with
  the point's sweep record.

Whatever happens, the result is a ``PointResult``; an exception becomes a
failed result with its one-line reason, never a crash of the sweep.

A point of several ranks (a multi-task Slurm job, whose tasks were given
torch's env:// variables by ``qbench.sweeps.slurm``) runs this on every
rank: the ranks join one process group first, rank 0 alone takes the lock
and looks at the output folder, and its decision is broadcast, so every
rank resumes the same run directory or trains the same new one.  The ranks
leave the group before returning.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from qbench.comparison import runner
from qbench.errors import ConfigError, ResumeRefused
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
    world_size: int = 1  # ranks the point trained on

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PointResult:
        return cls(**data)


def set_threads(threads: int) -> None:
    if threads > 0:
        # deferred: loads torch only when this runs
        import torch

        torch.set_num_threads(threads)


def _run(task: PointTask, found: existing.Existing) -> PointResult:
    if found.done is not None:
        return PointResult(task.index, "skipped", run_dir=str(found.done))
    regs = registries()
    outcome, resumed, restarted = None, False, ""
    for run_dir in found.interrupted[:1]:
        try:
            outcome, resumed = runner.resume_run(run_dir, progress=False, regs=regs), True
        except ResumeRefused as exc:  # another world size: the run is fine, this request is not; never retrain
            return PointResult(task.index, "failed", " ".join(str(exc).split()), str(run_dir))
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


def env_world_size() -> int:
    """Ranks of this point as torch's env:// variables give them (1 outside a multi-task job)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def _run_ranked(task: PointTask) -> PointResult:
    """One point on every rank of a process group (see the module docstring)."""
    # deferred: loads torch only when this runs
    from qbench.engine import distributed

    recipe = recipe_from_dict(dict(task.recipe))
    distributed.init(distributed.local_device(recipe.train.device))
    clean = False
    try:
        with contextlib.ExitStack() as stack:
            held = found = None
            if distributed.is_main_process():
                held = stack.enter_context(existing.point_lock(task.out, task.config_hash, task.seed))
                found = existing.find(task.out, task.config_hash, task.seed) if held else None
            held, found = distributed.broadcast_object((held, found))
            if not held:
                result = PointResult(task.index, "busy", "another process is running this point")
            else:
                result = _run(task, found)
            result.world_size = distributed.world_size()
        clean = True
        return result
    finally:
        distributed.shutdown(wait_for_others=clean)  # after a failure the peers may be gone: no barrier


def run_point(task: PointTask) -> PointResult:
    """Run (or resume, or skip) one point; never raises for a failing run."""
    started = time.perf_counter()
    set_threads(task.threads)
    try:
        if env_world_size() > 1:
            result = _run_ranked(task)
        else:
            with existing.point_lock(task.out, task.config_hash, task.seed) as held:
                if not held:
                    return PointResult(task.index, "busy", "another process is running this point")
                result = _run(task, existing.find(task.out, task.config_hash, task.seed))
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
