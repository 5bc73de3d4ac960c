"""``qbench tune --launcher slurm``: N worker jobs through submitit, sharing one storage.

Each job runs ``qbench.tuning.worker.work`` (one trial at a time, each trial a
training process on the job's cores).  The jobs are
``submitit.helpers.Checkpointable``: a preempted or timed-out job is requeued
and its worker starts over; the trial it was running goes stale (no
heartbeat for ``qbench.tuning.claim.GRACE_S``), is failed with the reason
and resumed from its checkpoint by whichever worker claims next.  The
``qbench tune`` process waits, shows progress from the storage and writes
the best configurations at the end; Ctrl-C stops the waiting, not the jobs.
Use a storage every node can reach: a journal file on the shared file system
(``--storage OUT/study.log``) or a database server; SQLite is not safe on
NFS.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from qbench.errors import ConfigError

try:
    import submitit
except ImportError:  # this module is imported only for --launcher slurm
    raise ConfigError("--launcher slurm needs submitit: pip install 'qbench[slurm]'") from None

from qbench.sweeps.slurm import executor_parameters
from qbench.tuning.plan import TunePlan
from qbench.tuning.worker import work

POLL_S = 30.0


class WorkerJob(submitit.helpers.Checkpointable):
    """One tuning worker as a submitit job; requeued as it is on preemption."""

    def __call__(self, tune_path: str, out: str, storage: str, overrides: list[str], threads: int) -> int:
        return work(tune_path, out, storage, overrides, threads)


def run_slurm_workers(plan: TunePlan, handles, options: dict[str, Any], *, workers: int, progress,
                      cluster: str = "slurm", poll_s: float | None = None, overrides: list[str] | None = None) -> None:
    if cluster == "slurm" and shutil.which("sbatch") is None:
        raise ConfigError("--launcher slurm: no sbatch on PATH; run the command on a Slurm login node")
    if plan.storage.startswith("sqlite") and cluster == "slurm":
        progress.note("note: SQLite is not safe on a network file system; prefer --storage OUT/study.log")
    executor = submitit.AutoExecutor(folder=Path(plan.out) / "submitit" / "%j", cluster=cluster)
    executor.update_parameters(**executor_parameters(options, f"tune-{plan.tune.name}"))
    threads = int(options.get("cpus_per_task") or 0)
    jobs = [executor.submit(WorkerJob(), plan.tune.path, str(plan.out), plan.storage, list(overrides or []), threads)
            for _ in range(max(1, workers))]
    progress.note(f"submitted {len(jobs)} tuning workers: {', '.join(j.job_id for j in jobs)}")
    poll_s = poll_s if poll_s is not None else (POLL_S if cluster == "slurm" else 1.0)
    try:
        while not all(job.done() for job in jobs):
            progress.tick()
            time.sleep(poll_s)
    except KeyboardInterrupt:
        print(f"stopped waiting; the workers keep running (logs: {Path(plan.out) / 'submitit'})")
        raise
    for job in jobs:
        try:
            job.result()
        except Exception as exc:  # noqa: BLE001  a worker that died: its trials go stale and resume
            progress.note(f"worker job {job.job_id} failed: {' '.join(str(exc).split())[:300]}")
