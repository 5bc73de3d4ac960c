"""From a plan to running points: every point checked as ``qbench run`` checks it, tasks built, handed to a launcher."""

from __future__ import annotations

import json
from typing import Any

from qbench.comparison.preflight import check_run
from qbench.errors import ConfigError
from qbench.platform.plugins import Registries
from qbench.recipe.checks import MAX_SEED
from qbench.sweeps.local import run_local, threads_per_point
from qbench.sweeps.plan import Plan
from qbench.sweeps.progress import SweepProgress
from qbench.sweeps.worker import PointResult, PointTask

LAUNCHERS = ("local", "slurm")


def check_points(plan: Plan, regs: Registries, *, local: bool = True) -> None:
    """Every pending point's final recipe through ``qbench run``'s own validation pass
    (``qbench.comparison.preflight.check_run``): seed range, device, image size, options, metrics, data,
    output folder.  Every problem of every point is one line, raised together before any point trains.

    Points that differ only in a valid seed pass or fail alike, so each such group is checked once;
    the datasets, metrics and device are checked once for all points (``memo``).  ``local=False``
    (Slurm): the device is left to each job, whose node is not this one.
    """
    lines: list[str] = []
    memo: dict = {}
    checked: dict[str, list[str]] = {}
    for p in plan.pending():
        recipe = p.identity.recipe
        seed_ok = 0 <= recipe.seed <= MAX_SEED
        key = json.dumps([p.identity.quantizer, {**recipe.to_dict(), "seed": recipe.seed if not seed_ok else None}],
                         sort_keys=True, default=str)
        if key not in checked:
            try:
                check_run([p.identity.quantizer], recipe, regs, out_root=plan.out, memo=memo, device_here=local)
                checked[key] = []
            except ConfigError as exc:
                checked[key] = str(exc).splitlines()
        lines += [str(plan.spec.error(f"point {p.index} ({p.label}): {line}")) for line in checked[key]]
    if lines:
        raise ConfigError("\n".join(dict.fromkeys(lines)))


def tasks_for(plan: Plan, threads: int) -> list[PointTask]:
    return [
        PointTask(index=p.index, label=p.label, quantizer=p.identity.quantizer, recipe=p.identity.recipe.to_dict(),
                  config_hash=p.identity.config_hash, seed=p.identity.seed, out=str(plan.out),
                  sweep=p.block(plan.spec), threads=threads)
        for p in plan.pending()
    ]


def launch(plan: Plan, *, launcher: str, jobs: int, slurm_options: dict[str, Any], show_progress: bool,
           cluster: str = "slurm", poll_s: float | None = None) -> list[PointResult]:
    """Run the plan's pending points; one ``PointResult`` each (failed points included)."""
    if launcher == "local":
        tasks = tasks_for(plan, threads_per_point(jobs))
        parallel = jobs
    else:
        tasks = tasks_for(plan, int(slurm_options.get("cpus_per_task") or 0))
        parallel = int(slurm_options.get("array_parallelism") or len(tasks))
    done = len(plan.points) - len(tasks)
    progress = SweepProgress(len(plan.points), done, parallel, {t.index: p.estimate_s for t, p in
                                                                zip(tasks, plan.pending())}, enabled=show_progress)
    if launcher == "local":
        return run_local(tasks, jobs, progress)
    from qbench.sweeps.slurm import POLL_S, run_slurm  # imports submitit

    if poll_s is None:  # sacct is not to be hammered; a local test cluster answers at once
        poll_s = POLL_S if cluster == "slurm" else 1.0
    return run_slurm(tasks, slurm_options, plan.spec.name, plan.out, progress, cluster=cluster, poll_s=poll_s)
