"""The local launcher: points in parallel subprocesses on this machine, cores divided between them.

``--jobs N`` runs N points at a time, each in its own process
(``python -m qbench.sweeps.worker``) with ``cores // N`` torch threads
(``OMP_NUM_THREADS`` too, so that nothing in the process oversubscribes).
A fresh process per point keeps points independent: a crash, a leak or a
kill takes one point down, and the sweep records it as failed and goes on.
Each point's output goes to ``OUT/logs/INDEX-LABEL.log``.  ``--jobs`` is
capped at the core count, with a note.  The launcher's scratch folder
(``TMPDIR/qbench-sweep-PID-*``) is removed when it ends; one left by a
launcher killed with -9 is removed by the next sweep.
On Ctrl-C the running points are stopped; their run directories keep their
last checkpoint and the next ``qbench sweep`` resumes them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from qbench.sweeps.progress import SweepProgress
from qbench.sweeps.worker import PointResult, PointTask

POLL_S = 0.5


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_per_point(jobs: int, cores: int | None = None) -> int:
    return max(1, (cores or available_cores()) // max(1, jobs))


SCRATCH_PREFIX = "qbench-sweep-"  # + the launcher's pid: a folder whose process is gone is stale


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    except OSError:
        return False
    return True


def remove_stale_scratch(root: str | Path | None = None) -> list[Path]:
    """Remove the scratch folders of sweeps whose launcher process is gone (killed with -9: no cleanup ran).

    Only folders named ``qbench-sweep-PID-*`` whose PID no longer runs; returns what was removed.
    """
    removed = []
    for folder in Path(root or tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*"):
        pid = folder.name[len(SCRATCH_PREFIX):].split("-", 1)[0]
        if folder.is_dir() and pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def capped_jobs(jobs: int, cores: int | None = None) -> tuple[int, str]:
    """``jobs`` at most the core count, and a note when it was capped (each point's process holds about 1 GB)."""
    cores = cores or available_cores()
    if jobs <= cores:
        return jobs, ""
    return cores, (f"--jobs {jobs} is more than the {cores} cores here; running {cores} points at a time "
                   "(each point is a process of about 1 GB that uses at least one core)")


def log_path(task: PointTask) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.=,-]+", "_", task.label).strip("_")
    return Path(task.out) / "logs" / f"{task.index:03d}-{slug}.log"


def _start(task: PointTask, scratch: Path) -> tuple[subprocess.Popen, Path]:
    task_file, result_file = scratch / f"{task.index}.task.json", scratch / f"{task.index}.result.json"
    task_file.write_text(task.to_json())
    log = log_path(task)
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if task.threads > 0:
        env.update(OMP_NUM_THREADS=str(task.threads), MKL_NUM_THREADS=str(task.threads))
    with open(log, "a") as fh:
        process = subprocess.Popen([sys.executable, "-m", "qbench.sweeps.worker", str(task_file), str(result_file)],
                                   stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    return process, result_file


def _collect(task: PointTask, process: subprocess.Popen, result_file: Path, seconds: float) -> PointResult:
    if result_file.exists():
        return PointResult.from_dict(json.loads(result_file.read_text()))
    code = process.returncode
    why = f"killed by signal {-code}" if code < 0 else f"exited with status {code}"
    return PointResult(task.index, "failed", f"worker {why} before finishing; see {log_path(task)}",
                       seconds=round(seconds, 1))


def run_local(tasks: list[PointTask], jobs: int, progress: SweepProgress) -> list[PointResult]:
    """Run ``tasks`` at most ``jobs`` at a time; results in task order."""
    queue = list(tasks)
    running: dict[int, tuple[PointTask, subprocess.Popen, Path, float]] = {}
    results: dict[int, PointResult] = {}
    remove_stale_scratch()
    with tempfile.TemporaryDirectory(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-") as scratch:
        try:
            while queue or running:
                while queue and len(running) < jobs:
                    task = queue.pop(0)
                    process, result_file = _start(task, Path(scratch))
                    running[task.index] = (task, process, result_file, time.perf_counter())
                    progress.started(task.index, task.label)
                for index, (task, process, result_file, t0) in list(running.items()):
                    if process.poll() is None:
                        continue
                    del running[index]
                    result = _collect(task, process, result_file, time.perf_counter() - t0)
                    results[index] = result
                    progress.finished(index, task.label, result.status, result.seconds,
                                      result.reason if result.status != "ok" else result.run_dir)
                progress.tick()
                time.sleep(POLL_S)
        finally:
            for _task, process, _, _ in running.values():  # Ctrl-C or an error here: stop our workers
                process.terminate()
            for _task, process, _, _ in running.values():
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
            progress.close()
    return [results[t.index] for t in tasks if t.index in results]


MAX_DEFAULT_JOBS = 8  # each point's process holds about 1 GB (torch and its compiler stack)


def default_jobs() -> int:
    """One point per core, one thread each (faster than one point on every core, docs/sweeps.md),
    at most ``MAX_DEFAULT_JOBS`` points: past that the cores are shared out as threads."""
    return min(available_cores(), MAX_DEFAULT_JOBS)
