"""``qbench tune`` end to end: plan, open the studies, run the workers, write the best configurations.

``tune`` is what the command calls.  Exit status: 0 when every study ends with its planned
finished trials, 1 when a study stopped at its failure cap (its failures are
in the storage and the report), 2 for a user error (``ConfigError``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import optuna

from qbench.platform.plugins import Registries
from qbench.tuning.best import write_best
from qbench.tuning.claim import state_of
from qbench.tuning.plan import TunePlan
from qbench.tuning.progress import TuneProgress
from qbench.tuning.slots import run_slots
from qbench.tuning.studies import open_studies


@dataclass
class TuneResult:
    plan: TunePlan
    handles: dict[str, optuna.Study]
    short: list[str] = field(default_factory=list)  # studies that stopped before their planned trials
    written: list[Path] = field(default_factory=list)


def short_studies(plan: TunePlan, handles) -> list[str]:
    lines = []
    for study in plan.studies:
        state = state_of(study, handles[study.name])
        if state.finished < plan.tune.trials:
            lines.append(f"{study.label}: {state.finished}/{plan.tune.trials} finished, {state.failures} failed "
                         f"(max_failures {plan.tune.failure_cap}); see the report's failure reasons")
    return lines


def tune(plan: TunePlan, regs: Registries, *, jobs: int, threads: int, launcher: str = "local",
         slurm_options: dict | None = None, show_progress: bool = True, cluster: str = "slurm",
         overrides: list[str] | None = None) -> TuneResult:
    plan.out.mkdir(parents=True, exist_ok=True)
    handles = open_studies(plan, regs)
    progress = TuneProgress(plan, handles, enabled=show_progress)
    try:
        if launcher == "local":
            run_slots(plan, handles, regs, jobs=jobs, threads=threads, progress=progress)
        else:
            # deferred: loads submitit only when this runs
            from qbench.tuning.slurm import run_slurm_workers

            run_slurm_workers(plan, handles, slurm_options or {}, workers=jobs, progress=progress, cluster=cluster,
                              overrides=overrides)
    finally:
        progress.close()
    return TuneResult(plan, handles, short_studies(plan, handles), write_best(plan, handles))
