"""Asking Slurm, before anything is submitted, whether a sweep's jobs can run there.

Before submitting, two questions, each answered in one line (``ConfigError``, exit 2) before a
point is counted as running:

- **Is there accounting?**  submitit learns how a job ended (requeued,
  failed, killed) from ``sacct``; on a cluster without Slurm accounting
  (slurmdbd) a job that dies before writing its result would be waited for
  for ever.
- **Would sbatch take this job, and could it ever run?**  The exact job
  script submitit would submit goes through ``sbatch --test-only``, which
  rejects a bad partition, account or QOS, more memory or nodes than the
  partition has, GPUs on a cluster without them, and so on, without
  submitting anything.  (Submitted, a job asking for more nodes than the
  partition has would pend for ever.)  When the partition's nodes are the
  reason, the line says what they offer.

While the jobs run, ``restarts`` says which were requeued, for the progress display.
``cluster="local"`` (submitit's local executor, the tests) asks nothing.
"""

from __future__ import annotations

import subprocess
from typing import Any

from qbench.errors import ConfigError

TIMEOUT_S = 60


def _slurm(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(list(args), input=stdin, capture_output=True, text=True, timeout=TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"--launcher slurm: {args[0]} did not answer ({type(exc).__name__}: {exc})") from None


def _said(result: subprocess.CompletedProcess) -> str:
    """Slurm's reason in one line: its ``error:`` lines, else its last line."""
    lines = [line.strip() for line in (result.stderr + "\n" + result.stdout).splitlines() if line.strip()]
    errors = [line.split("error:", 1)[1].strip() for line in lines if "error:" in line]
    return "; ".join(dict.fromkeys(errors)) if errors else (lines[-1] if lines else f"exit status {result.returncode}")


def check_accounting() -> None:
    result = _slurm("sacct", "--noheader", "--allocations", "--jobs", "1", "--format", "JobID")
    if result.returncode != 0:
        raise ConfigError(f"--launcher slurm needs Slurm accounting (slurmdbd): job states are read with sacct, "
                          f"which says: {_said(result)}")


def _wanted(parameters: dict[str, Any]) -> str:
    parts = [f"partition {parameters['partition']}" if parameters.get("partition") else "the default partition",
             f"{parameters.get('nodes', 1)} node(s) x {parameters.get('ntasks_per_node', 1)} task(s)"]
    if parameters.get("gpus_per_node"):
        parts.append(f"{parameters['gpus_per_node']} GPU(s) per node")
    if parameters.get("cpus_per_task"):
        parts.append(f"{parameters['cpus_per_task']} CPU(s) per task")
    if parameters.get("mem"):
        parts.append(f"{parameters['mem']} per node")
    return ", ".join(parts)


def _offered(partition: str | None) -> str:
    """What the partition's nodes offer, from sinfo ("" when it cannot tell)."""
    args = ["sinfo", "--noheader", "--format", "%P %D %c %m %G"] + (["--partition", partition] if partition else [])
    result = _slurm(*args)
    rows = [line.split() for line in result.stdout.splitlines() if len(line.split()) == 5]
    if partition is None:
        rows = [r for r in rows if r[0].endswith("*")] or rows[:1]  # sinfo marks the default partition with *
    if result.returncode != 0 or not rows:
        return ""
    name, nodes, cpus, memory, gres = rows[0]
    gpus = "no GPUs" if gres in ("(null)", "") else f"generic resources {gres}"
    return f"; partition {name.rstrip('*')} has {nodes} node(s) of {cpus} CPUs, {memory} MB, {gpus}"


def check_request(parameters: dict[str, Any], script: str) -> None:
    """``sbatch --test-only`` on ``script`` (the job script submitit would submit); one line if refused."""
    result = _slurm("sbatch", "--test-only", stdin=script)
    if result.returncode == 0:
        return
    reason = _said(result)
    offered = _offered(parameters.get("partition")) if "node configuration" in reason else ""
    raise ConfigError(f"--launcher slurm: Slurm refuses the request ({_wanted(parameters)}): {reason}{offered}")


def restarts(array_id: str) -> dict[str, int]:
    """How often Slurm restarted each job of the array (requeued: preempted, or by submitit before the time limit).

    From ``squeue`` (jobs still queued or running); ``{}`` when it does not answer.
    """
    try:
        result = subprocess.run(["squeue", "--noheader", "--array", "--jobs", array_id, "--Format",
                                 "JobArrayID:40,RestartCnt:10"], capture_output=True, text=True, timeout=TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    rows = [line.split() for line in result.stdout.splitlines()]
    return {row[0]: int(row[1]) for row in rows if len(row) == 2 and row[1].isdigit()}
