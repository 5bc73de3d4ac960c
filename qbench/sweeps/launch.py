"""From a plan to running points: every point checked as ``qbench run`` checks it, tasks built, handed to a launcher."""

from __future__ import annotations

import json
from typing import Any

from qbench.comparison.preflight import check_run
from qbench.comparison.runner import world_size_refusal
from qbench.errors import ConfigError
from qbench.platform.plugins import Registries
from qbench.recipe.checks import MAX_SEED, batch_problem
from qbench.sweeps.local import run_local, threads_per_point
from qbench.sweeps.plan import Plan
from qbench.sweeps.progress import SweepProgress
from qbench.sweeps.worker import PointResult, PointTask

LAUNCHERS = ("local", "slurm")


def check_points(plan: Plan, regs: Registries, *, local: bool = True, ranks: int = 1) -> None:
    """Every pending point's final recipe through ``qbench run``'s own validation pass
    (``qbench.comparison.preflight.check_run``): seed range, device, image size, options, metrics, data,
    output folder.  Every problem of every point is one line, raised together before any point trains.

    Points that differ only in a valid seed pass or fail alike, so each such group is checked once;
    the datasets, metrics and device are checked once for all points (``memo``).  ``local=False``
    (Slurm): the device is left to each job, whose node is not this one; ``ranks``: each point's world size.
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
                check_run([p.identity.quantizer], recipe, regs, out_root=plan.out, memo=memo, device_here=local,
                          world_size=ranks)
                checked[key] = []
            except ConfigError as exc:
                checked[key] = str(exc).splitlines()
        lines += [str(plan.spec.error(f"point {p.index} ({p.label}): {line}")) for line in checked[key]]
    if lines:
        raise ConfigError("\n".join(dict.fromkeys(lines)))


def ranks_per_point(options: dict[str, Any]) -> int:
    """How many ranks (Slurm tasks) each point trains on: nodes x tasks per node (one per GPU)."""
    per_node = options.get("tasks_per_node") or options.get("gpus_per_node") or 1
    return int(options.get("nodes") or 1) * int(per_node)


def check_ranks(plan: Plan, options: dict[str, Any], cluster: str) -> int:
    """The ranks per point, or a ``ConfigError`` for a request that cannot run, before anything is submitted."""
    ranks = ranks_per_point(options)
    tasks, gpus = options.get("tasks_per_node"), options.get("gpus_per_node")
    if tasks and gpus and tasks != gpus:
        raise plan.spec.error(f"tasks_per_node {tasks} and gpus_per_node {gpus} differ: each rank needs "
                              "its own GPU (give gpus_per_node alone)")
    if cluster == "local" and int(options.get("nodes") or 1) > 1:
        raise plan.spec.error("nodes > 1 needs a Slurm cluster; submitit's local executor has one node")
    for p in plan.pending():
        recipe = p.identity.recipe
        problem = batch_problem(recipe.data.batch_size, ranks)
        if problem:
            raise plan.spec.error(f"point {p.index} ({p.label}): {problem}")
        if ranks > 1 and gpus and recipe.train.device == "cpu":
            raise plan.spec.error(f"point {p.index} ({p.label}): train.device is cpu but each job reserves "
                                  f"{gpus} GPUs per node; set train.device=auto or drop gpus_per_node")
    return ranks


def check_resumable(plan: Plan, ranks: int) -> None:
    """Every point to resume was trained on ``ranks`` ranks, else one line per point (``ConfigError``).

    A run continues only with the world size that started it (docs/scale.md); the sweep never trains
    such a point afresh behind the user's back.
    """
    lines = [str(plan.spec.error(f"point {p.index} ({p.label}): {world_size_refusal(p.found.interrupted[0], w, ranks)}"))
             for p in plan.pending() if (w := p.found.resume_world_size()) is not None and w != ranks]
    if lines:
        raise ConfigError("\n".join(lines))


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
