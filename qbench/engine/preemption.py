"""Preemption: a checkpoint when the cluster asks for one, and a clean stop when it asks for that.

A cluster takes a job back in two ways, and both reach every process of the
job, loader workers included:

- **SIGTERM**: Slurm preempts a job (``PreemptMode=REQUEUE``) by sending it
  SIGTERM, waiting the partition's grace time, then killing and requeueing
  it.  A job that exits on its own during the grace time is *not* requeued,
  so the answer is: write a checkpoint at the next step and keep training
  until killed (a spurious SIGTERM then costs one checkpoint).
- **the stop signal** (submitit's ``USR2``, sent some time before the time
  limit, or by ``submitit``'s own preemption test): write a checkpoint at the
  next step, then stop; the launcher requeues the job (``Preempted``).

``install`` (the Slurm launcher calls it in each job process) routes both
signals here while a training loop listens (``listening``); between steps the
loop reads ``requests`` (all ranks agree through one all-reduce with the
non-finite-loss check), saves, and raises ``Preempted`` for a stop.  Outside
the loop (start-up, evaluation) a signal goes to the handler that was there
before (submitit's: requeue now; the checkpoint on disk is the newest).

Loader workers ignore these signals (``ignore_in_worker``, their
``worker_init_fn``): a worker killed by SIGTERM fails the run ("DataLoader
worker is killed by signal"), and a worker that ran submitit's handler would
requeue the job itself.  Workers end with their loader, or with their
parent (torch's watchdog), or with the job's SIGKILL.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager

CHECKPOINT, STOP = "checkpoint", "stop"
WORKER_IGNORED = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)

_state: dict = {"pid": None, "listening": False, "requests": set(), "previous": {}, "signals": {}}


class Preempted(BaseException):
    """The run stopped on the stop signal after writing a checkpoint at ``step``; its job is to be requeued.

    A ``BaseException``, like ``KeyboardInterrupt``: no ``except Exception`` on the way up may
    record the run as failed.
    """

    def __init__(self, step: int):
        super().__init__(f"preempted: checkpoint written at step {step}; the job is to be requeued")
        self.step = step


def _handler(signum: int, frame) -> None:
    if os.getpid() != _state["pid"]:  # a forked child (a loader worker before its worker_init_fn): not ours
        return
    what = _state["signals"].get(signum)
    if _state["listening"] and what is not None:
        _state["requests"].add(what)
        return
    previous = _state["previous"].get(signum)
    if callable(previous):
        previous(signum, frame)


def install(stop_signal: int = signal.SIGUSR2) -> Callable | None:
    """Route SIGTERM (checkpoint) and ``stop_signal`` (checkpoint, then stop) to the training loop.

    Returns the handler ``stop_signal`` had before (e.g. submitit's requeue), for the caller to
    run once the loop has stopped.  Call from the main thread of the job process.
    """
    _state["pid"] = os.getpid()
    _state["signals"] = {signal.SIGTERM: CHECKPOINT, stop_signal: STOP}
    _state["requests"] = set()
    for signum in _state["signals"]:
        _state["previous"][signum] = signal.getsignal(signum)
        signal.signal(signum, _handler)
    return _state["previous"][stop_signal]


@contextmanager
def listening() -> Iterator[None]:
    """While the block runs, signals become requests that ``requests`` hands to the loop."""
    was = _state["listening"]
    _state["listening"] = True
    try:
        yield
    finally:
        _state["listening"] = was


def requests() -> tuple[bool, bool]:
    """(checkpoint asked, stop asked) in this process; a stop implies a checkpoint."""
    asked = _state["requests"]
    return (CHECKPOINT in asked or STOP in asked), STOP in asked


def served(stop: bool) -> None:
    """The checkpoint was written: forget the checkpoint request (and the stop, if it was one)."""
    _state["requests"].discard(CHECKPOINT)
    if stop:
        _state["requests"].discard(STOP)


def ignore_in_worker(worker_id: int) -> None:
    """``worker_init_fn`` of the training loaders: preemption signals are for the training process."""
    for signum in WORKER_IGNORED:
        signal.signal(signum, signal.SIG_IGN)
