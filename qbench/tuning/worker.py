"""A tuning worker on its own: the loop of ``qbench tune`` for one trial at a time, as a Slurm job runs it.

``work`` re-reads the tune file and re-plans (so a job checks what it runs),
opens the same storage and runs ``qbench.tuning.slots.run_slots`` with one
slot until every study is settled.  Any number of workers, on any machines
that see the storage and the output folder, share the studies: the claim
lock and the storage keep the finished-trial count exact.
"""

from __future__ import annotations

from qbench.platform.plugins import registries
from qbench.tuning.plan import build_plan
from qbench.tuning.progress import TuneProgress
from qbench.tuning.slots import run_slots
from qbench.tuning.spec import load_tune, with_overrides
from qbench.tuning.studies import open_studies


def work(tune_path: str, out: str, storage: str, overrides: list[str], threads: int = 0) -> int:
    """Run trials until every study is settled; the number of trials this worker ran."""
    regs = registries()
    plan = build_plan(with_overrides(load_tune(tune_path), overrides), out, regs, storage)
    handles = open_studies(plan, regs)
    progress = TuneProgress(plan, handles)
    try:
        return len(run_slots(plan, handles, regs, jobs=1, threads=threads, progress=progress))
    finally:
        progress.close()
