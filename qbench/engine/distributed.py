"""Data-parallel training under ``torchrun``: NCCL on GPU, gloo on CPU.

``torchrun --nproc_per_node N qbench run ...`` sets RANK / WORLD_SIZE /
LOCAL_RANK; ``init()`` joins the process group from them (a plain process is
a world of one and needs nothing).  Only rank 0 writes files.  Gradients are
averaged by DDP; buffers (EMA codebooks, dead-code counters) are broadcast
from rank 0 by DDP each step and quantizers all-reduce their own statistics.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_initialized() else int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the world size in the process group; ``(0, 1)`` outside one."""
    return (dist.get_rank(), dist.get_world_size()) if is_initialized() else (0, 1)


def is_main_process() -> bool:
    return rank() == 0


def init(device: torch.device) -> bool:
    """Join the process group when launched by torchrun; returns whether distributed."""
    if env_world_size() <= 1:
        return False
    if not is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
    return True


def shutdown(wait_for_others: bool = True) -> None:
    """Leave the process group after a barrier, so no rank exits while another still talks to it.

    Exiting with the group alive lets gloo's teardown abort the process
    ("terminate called without an active exception") when ranks finish at
    different times.  ``wait_for_others=False`` skips the barrier: after a
    failure the other ranks may be gone, and waiting for them would hang.
    """
    if is_initialized():
        if wait_for_others:
            dist.barrier()
        dist.destroy_process_group()


PEER_FAILURE_WORDS = ("closed by peer", "reset by peer", "remote worker")


def is_peer_failure(exc: BaseException) -> bool:
    """Whether ``exc`` says another rank is gone (its process or node died), not that this run is broken.

    gloo raises a plain ``RuntimeError`` ("Connection closed by peer ... caused
    by a remote worker crashing"); torch's own ``DistError`` family covers
    backend and network errors.
    """
    if isinstance(exc, getattr(dist, "DistError", ())):
        return True
    return isinstance(exc, RuntimeError) and any(w in str(exc) for w in PEER_FAILURE_WORDS)


def local_device(requested: str) -> torch.device:
    """``auto`` picks CUDA when present; under torchrun each rank takes its LOCAL_RANK GPU."""
    use_cuda = requested == "cuda" or (requested == "auto" and torch.cuda.is_available())
    if use_cuda:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def barrier() -> None:
    if is_initialized():
        dist.barrier()


def all_reduce_mean(value: float, device: torch.device | None = None) -> float:
    """Mean of a Python number over ranks (logging only)."""
    if not is_initialized():
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64, device=device or "cpu")
    dist.all_reduce(t)
    return float(t.item()) / world_size()


def any_rank(flag: bool, device: torch.device | None = None) -> bool:
    """True on every rank when ``flag`` is true on any rank (e.g. a non-finite loss)."""
    if not is_initialized():
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=device or "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def any_rank_each(flags: torch.Tensor) -> torch.Tensor:
    """Element-wise ``any_rank``: a flag is set on every rank where it is set on any (which metrics failed somewhere)."""
    if not is_initialized():
        return flags
    # nccl reduces CUDA tensors only; gloo CPU ones
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    wire = flags.clone().to(device)
    dist.all_reduce(wire, op=dist.ReduceOp.MAX)
    return wire.cpu()


def broadcast_object(obj, src: int = 0):
    if not is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]
