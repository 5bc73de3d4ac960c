"""The Slurm launcher, through submitit: one job per point, submitted as one job array.

Before anything is submitted, Slurm is asked whether it would run the job
(``qbench.sweeps.slurm_request``: accounting for ``sacct``, and ``sbatch
--test-only`` on the very script submitit would submit); a refusal is one
line, exit 2.

Jobs are ``submitit.helpers.Checkpointable``.  The training loop writes a
checkpoint when the cluster signals (``qbench.engine.preemption``): on
SIGTERM (Slurm preempts, kills after the grace time, requeues) and goes on;
on submitit's USR2 (before the time limit) and stops, after which submitit's
handler requeues the job.  The requeued job runs ``run_point`` again, which
finds the point's interrupted run directory and continues it in place.
submitit requeues a timed-out job at most 3 times.

The command waits for the array (a requeued job included, which the display
announces, from squeue's restart count) and shows one progress display;
Ctrl-C stops the waiting, not the jobs.  Job scripts and logs go to
``OUT/submitit/``, which must be on a filesystem the nodes share, and the
nodes must have the same Python environment (submitit pickles the task).
``cluster="local"`` runs the same code through submitit's local executor:
the test suite does that, and ``tests/test_slurm_cluster.py`` runs it on a
real one-node Slurm.

A point with ``gpus_per_node`` (or ``tasks_per_node``) above 1, or
``nodes`` above 1, is one job of ``nodes x tasks_per_node`` tasks, one per
GPU: each task exports the allocation as torch's env:// variables
(``submitit.helpers.TorchDistributedEnvironment``) and joins one process
group, then trains exactly as under ``torchrun`` (``qbench.sweeps.worker``).
On preemption submitit requeues every task of the job together, so the
resumed run has the same world size.  A failed job of several tasks is
reported with the failing rank's own error (``failure_reason``).
"""
from __future__ import annotations

import shutil
import signal
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from qbench.engine import preemption
from qbench.errors import ConfigError

try:
    import submitit
except ImportError:  # this module is imported only for --launcher slurm
    raise ConfigError("--launcher slurm needs submitit: pip install 'qbench[slurm]'") from None

from qbench.sweeps import slurm_request
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
    arguments): the state worth keeping is the run's own checkpoint on disk,
    which the training loop writes when a preemption signal comes
    (``qbench.engine.preemption``): SIGTERM (Slurm preempts after a grace
    time) gets a checkpoint and training goes on until Slurm kills and
    requeues the job; submitit's signal (before the time limit) gets a
    checkpoint and a stop, then submitit's handler requeues the job.
    """

    def __call__(self, task: dict[str, Any]) -> dict[str, Any]:
        env = submitit.JobEnvironment()
        if env.num_tasks > 1:
            # MASTER_ADDR/PORT, RANK, WORLD_SIZE, LOCAL_RANK from the allocation; each rank picks
            # its GPU by LOCAL_RANK (qbench.engine.distributed.local_device), so CUDA_VISIBLE_DEVICES stays
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
        stop_signal = getattr(signal, "SIG" + submitit.JobEnvironment.USR_SIG)
        requeue = preemption.install(stop_signal)  # submitit's handler: checkpoint the submission, requeue, exit
        try:
            return asdict(run_point(PointTask(**task)))
        except preemption.Preempted:
            if env.global_rank == 0 and callable(requeue):
                requeue(stop_signal, None)  # exits the process once the job is requeued
            # the checkpoint is on disk (every rank passed its barrier): leave without a result, which would
            # end the job, and with status 0, which no KillOnBadExit turns into killing rank 0 mid-requeue
            raise SystemExit(0) from None


def executor_parameters(options: dict[str, Any], name: str) -> dict[str, Any]:
    params = {"name": f"qbench-{name}", "timeout_min": DEFAULT_TIME_MIN}
    params.update({PARAMETERS[k]: v for k, v in options.items() if v is not None})
    if "tasks_per_node" not in params and options.get("gpus_per_node"):
        params["tasks_per_node"] = options["gpus_per_node"]  # one rank per GPU
    return params


def _submit(executor, tasks: list[PointTask], cluster: str | None) -> list:
    """The array of jobs, after Slurm said it would run them (``qbench.sweeps.slurm_request``)."""
    if cluster == "slurm":
        from submitit.slurm.slurm import _make_sbatch_string  # the script submitit itself would submit

        parameters = executor._executor.parameters
        slurm_request.check_accounting()
        slurm_request.check_request(parameters, _make_sbatch_string(command="true", folder=executor.folder,
                                                                    **parameters))
    try:
        return executor.map_array(PointJob(), [asdict(t) for t in tasks])
    except Exception as exc:  # noqa: BLE001  sbatch refused what --test-only accepted (a limit changed meanwhile)
        said = " ".join(str(getattr(exc, "stderr", None) or exc).split())
        raise ConfigError(f"--launcher slurm: sbatch refused the jobs: {said[:400]}") from None


def _last_line(text: str | None) -> str:
    """The telling line of a traceback or a log: its last line that is not submitit's own logging."""
    lines = [line.strip() for line in (text or "").splitlines()
             if line.strip() and not line.startswith(("submitit ", "----", "srun: Job step aborted"))]
    return lines[-1] if lines else ""


def failure_reason(job) -> str:
    """One line for a job that ended without a usable result: the failing rank's own error.

    A rank that only saw its peers disappear (``qbench.engine.distributed.is_peer_failure``) is not the
    one that failed, so a rank with its own error is named first.
    """
    # deferred: loads torch only when this runs (peer failures are told apart by their words)
    from qbench.engine.distributed import PEER_FAILURE_WORDS

    ranks = [job.task(i) for i in range(job.num_tasks)] if job.num_tasks > 1 else [job]
    found = []
    for rank, sub in enumerate(ranks):
        try:
            if not sub.paths.result_pickle.exists():  # the job is over: a result would be there by now
                raise FileNotFoundError(sub.paths.result_pickle)
            outcome, value = sub._get_outcome_and_result()
        except Exception:  # noqa: BLE001  no result at all: killed, out of memory, node failure
            state = sub.state
            logged = _last_line(sub.stderr())
            found.append((rank, f"ended without a result (Slurm state {state})" + (f": {logged}" if logged else "")))
            continue
        if outcome == "error":
            found.append((rank, _last_line(value)))
        elif isinstance(value, dict) and value.get("status") == "failed":
            found.append((rank, value.get("reason", "")))
    if not found:
        return "the job ended without a result"
    own = [f for f in found if not any(w in f[1] for w in PEER_FAILURE_WORDS)] or found
    rank, reason = own[0]
    return (f"rank {rank}: {reason}" if len(ranks) > 1 else reason)[:500]


def run_slurm(tasks: list[PointTask], options: dict[str, Any], name: str, out: str | Path,
              progress: SweepProgress, *, cluster: str | None = "slurm", poll_s: float = POLL_S) -> list[PointResult]:
    """Submit ``tasks`` as one array and wait for them; results in task order.

    A requeued job (preempted, or out of time) is waited for: the point resumes in the requeued job,
    and the display says so.
    """
    if cluster == "slurm" and shutil.which("sbatch") is None:
        raise ConfigError("--launcher slurm: no sbatch on PATH; run the command on a Slurm login node")
    executor = submitit.AutoExecutor(folder=Path(out) / "submitit" / "%j", cluster=cluster)
    executor.update_parameters(**executor_parameters(options, name))
    jobs = _submit(executor, tasks, cluster)
    for task, job in zip(tasks, jobs):
        progress.started(task.index, task.label, f" (job {job.job_id})")
    results: dict[int, PointResult] = {}
    pending = dict(zip((t.index for t in tasks), zip(tasks, jobs)))
    restarted: dict[str, int] = {}
    started = time.perf_counter()
    try:
        while pending:
            now = slurm_request.restarts(jobs[0].job_id.split("_")[0]) if cluster == "slurm" and jobs else {}
            for index, (task, job) in list(pending.items()):
                if now.get(job.job_id, 0) > restarted.get(job.job_id, 0):
                    restarted[job.job_id] = now[job.job_id]
                    progress.note(f"requeued {task.label} (job {job.job_id}, restart {now[job.job_id]}): "
                                  "preempted or near its time limit; it resumes from its last checkpoint")
                if not job.done():
                    continue
                del pending[index]
                try:
                    rank0 = job.task(0) if job.num_tasks > 1 else job  # rank 0's result; the others match
                    result = PointResult.from_dict(rank0.results()[0])
                    if result.status == "failed" and job.num_tasks > 1:
                        result.reason = failure_reason(job)
                except Exception:  # noqa: BLE001  the job itself failed (killed, out of memory, ...)
                    result = PointResult(index, "failed", f"job {job.job_id}: {failure_reason(job)}",
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
