"""The Slurm launcher, through submitit: one job per point, submitted as one job array.

Jobs are ``submitit.helpers.Checkpointable``: when Slurm preempts a job or
its time runs out, submitit calls ``checkpoint`` (the default resubmits the
same callable with the same task) and requeues it; the requeued job runs
``run_point`` again, which finds the point's interrupted run directory and
continues it from its last checkpoint (``train.checkpoint_every`` steps at
most are lost).  submitit requeues a timed-out job at most 3 times.

The command waits for the array and shows one progress display; Ctrl-C
stops the waiting, not the jobs.  Job scripts and logs go to
``OUT/submitit/``, which must be on a filesystem the nodes share, and the
nodes must have the same Python environment (submitit pickles the task).
``cluster="local"`` runs the same code through submitit's local executor:
the test suite does that.

A point with ``gpus_per_node`` (or ``tasks_per_node``) above 1, or
``nodes`` above 1, is one job of ``nodes x tasks_per_node`` tasks, one per
GPU: each task exports the allocation as torch's env:// variables
(``submitit.helpers.TorchDistributedEnvironment``) and joins one process
group, then trains exactly as under ``torchrun`` (``qbench.sweeps.worker``).
On preemption submitit requeues every task of the job together, so the
resumed run has the same world size.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from qbench.errors import ConfigError

try:
    import submitit
except ImportError:  # this module is imported only for --launcher slurm
    raise ConfigError("--launcher slurm needs submitit: pip install 'qbench[slurm]'") from None

from qbench.sweeps.progress import SweepProgress
from qbench.sweeps.worker import PointResult, PointTask, run_point

DEFAULT_TIME_MIN = 120
POLL_S = 30.0
# sweep-file / CLI key -> submitit AutoExecutor parameter
PARAMETERS = {
    "partition": "slurm_partition",
    "account": "slurm_account",
    "qos": "slurm_qos",
    "constraint": "slurm_constraint",
    "array_parallelism": "slurm_array_parallelism",
    "time": "timeout_min",
    "gpus_per_node": "gpus_per_node",
    "nodes": "nodes",
    "tasks_per_node": "tasks_per_node",
    "cpus_per_task": "cpus_per_task",
    "mem_gb": "mem_gb",
}


class PointJob(submitit.helpers.Checkpointable):
    """One point as a submitit job; on preemption or time-out, requeued with the same task and resumed.

    ``checkpoint`` is submitit's default (resubmit ``self`` with the same
    arguments): the state worth keeping is the run's own checkpoint on disk.
    """

    def __call__(self, task: dict[str, Any]) -> dict[str, Any]:
        if submitit.JobEnvironment().num_tasks > 1:
            # MASTER_ADDR/PORT, RANK, WORLD_SIZE, LOCAL_RANK from the allocation; each rank picks
            # its GPU by LOCAL_RANK (qbench.engine.distributed.local_device), so CUDA_VISIBLE_DEVICES stays
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
        return asdict(run_point(PointTask(**task)))


def executor_parameters(options: dict[str, Any], name: str) -> dict[str, Any]:
    params = {"name": f"qbench-{name}", "timeout_min": DEFAULT_TIME_MIN}
    params.update({PARAMETERS[k]: v for k, v in options.items() if v is not None})
    if "tasks_per_node" not in params and options.get("gpus_per_node"):
        params["tasks_per_node"] = options["gpus_per_node"]  # one rank per GPU
    return params


def run_slurm(tasks: list[PointTask], options: dict[str, Any], name: str, out: str | Path,
              progress: SweepProgress, *, cluster: str | None = "slurm", poll_s: float = POLL_S) -> list[PointResult]:
    """Submit ``tasks`` as one array and wait for them; results in task order."""
    if cluster == "slurm" and shutil.which("sbatch") is None:
        raise ConfigError("--launcher slurm: no sbatch on PATH; run the command on a Slurm login node")
    executor = submitit.AutoExecutor(folder=Path(out) / "submitit" / "%j", cluster=cluster)
    executor.update_parameters(**executor_parameters(options, name))
    jobs = executor.map_array(PointJob(), [asdict(t) for t in tasks])
    for task, job in zip(tasks, jobs):
        progress.started(task.index, task.label, f" (job {job.job_id})")
    results: dict[int, PointResult] = {}
    pending = dict(zip((t.index for t in tasks), zip(tasks, jobs)))
    started = time.perf_counter()
    try:
        while pending:
            for index, (task, job) in list(pending.items()):
                if not job.done():
                    continue
                del pending[index]
                try:
                    result = PointResult.from_dict(job.results()[0])  # rank 0's result; the others match
                except Exception as exc:  # noqa: BLE001  the job itself failed (killed, out of memory, ...)
                    reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
                    result = PointResult(index, "failed", f"job {job.job_id}: {reason}",
                                         seconds=round(time.perf_counter() - started, 1))
                results[index] = result
                progress.finished(index, task.label, result.status, result.seconds,
                                  result.reason if result.status != "ok" else result.run_dir)
            if pending:
                progress.tick()
                time.sleep(poll_s)
    except KeyboardInterrupt:
        progress.close()
        print(f"stopped waiting; the jobs keep running (logs: {Path(out) / 'submitit'})")
        raise
    progress.close()
    return [results[t.index] for t in tasks]
