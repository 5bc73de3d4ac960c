"""Training data: a deterministic, resumable, sharded stream of batches.

The n-th training sample of a run is fixed by (seed, n) alone: sample n is
item ``perm_e[n mod N]`` of a permutation ``perm_e`` seeded by (seed, epoch
e = n div N).  The recipe's batch B is the *global* batch: step s takes
samples ``[s*B, (s+1)*B)`` whatever the number of ranks, and rank r of W
takes the contiguous slice ``[s*B + r*B/W, s*B + (r+1)*B/W)`` of them (B must
be divisible by W).  So a resumed run sees exactly the batches an
uninterrupted one would, ranks never share a sample, the samples of a step
do not depend on the world size, and there is no sampler state to checkpoint.  (The same idea as the "stateless" samplers of
large-scale trainers; see also torch's DistributedSampler.)
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from qbench.engine import preemption
from qbench.errors import ConfigError
from qbench.platform.plugins import Registries, given_or_built
from qbench.recipe.checks import batch_problem
from qbench.recipe.config import Recipe


def build_dataset(recipe: Recipe, split: str, regs: Registries | None = None, seed: int | None = None) -> Dataset:
    """The recipe's dataset for ``split`` ("train", "val" or "test"), from the dataset registry."""
    regs = given_or_built(regs)
    data = recipe.data
    return regs.datasets.create(
        data.dataset,
        split=split,
        image_size=data.image_size,
        root=data.root,
        seed=recipe.seed if seed is None else seed,
        **data.options,
    )


class StepBatchSampler(Sampler[list[int]]):
    """Endless batches of indices for one rank, from ``start_step`` on (see module doc).

    ``batch_size`` is the global batch; each rank yields its ``batch_size / world_size`` slice.
    """

    def __init__(self, dataset_len: int, batch_size: int, *, seed: int, start_step: int = 0,
                 rank: int = 0, world_size: int = 1):
        problem = batch_problem(batch_size, world_size)
        if problem:
            raise ConfigError(problem)
        self.n, self.global_batch, self.seed = dataset_len, batch_size, seed
        self.batch_size = batch_size // world_size
        self.start_step, self.rank, self.world_size = start_step, rank, world_size
        self._epoch, self._perm = -1, None

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(self.seed * 7919 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=gen)
        return self._perm

    def indices(self, step: int) -> list[int]:
        first = step * self.global_batch + self.rank * self.batch_size
        out = []
        for sample in range(first, first + self.batch_size):
            out.append(int(self._permutation(sample // self.n)[sample % self.n]))
        return out

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start_step
        while True:
            yield self.indices(step)
            step += 1


def _stack(items):
    return torch.stack([item if isinstance(item, torch.Tensor) else item[0] for item in items])


def train_batches(dataset: Dataset, batch_size: int, *, seed: int, start_step: int = 0, rank: int = 0,
                  world_size: int = 1, num_workers: int = 0) -> Iterator[torch.Tensor]:
    """Endless uint8 batches (B/W, 3, H, W) for this rank of a global batch B, from ``start_step`` on."""
    if hasattr(dataset, "stream"):  # a streaming dataset (shards): it splits itself per rank and worker
        problem = batch_problem(batch_size, world_size)
        if problem:
            raise ConfigError(problem)
        stream = dataset.stream(rank=rank, world_size=world_size, batch_size=batch_size // world_size,
                                start_step=start_step, num_workers=num_workers)
        return iter(DataLoader(stream, batch_size=batch_size // world_size, num_workers=num_workers,
                               collate_fn=_stack, **loader_options(num_workers)))
    sampler = StepBatchSampler(len(dataset), batch_size, seed=seed, start_step=start_step,
                               rank=rank, world_size=world_size)
    if num_workers <= 0:
        return (_stack([dataset[i] for i in batch]) for batch in sampler)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers, collate_fn=_stack,
                        **loader_options(num_workers))
    return iter(loader)


def check_stream_layout(dataset: Dataset, batch_size: int, world_size: int, num_workers: int) -> None:
    """A streaming dataset's refusal (``ConfigError``) of ``world_size`` ranks x ``num_workers``, before training."""
    if hasattr(dataset, "stream"):
        dataset.stream(rank=0, world_size=world_size, batch_size=batch_size // world_size, start_step=0,
                       num_workers=num_workers)


def loader_options(num_workers: int) -> dict:
    """DataLoader settings for the training stream.

    Pinned host memory lets ``to_model_input`` copy to the GPU without
    blocking (only when a GPU is there); workers stay alive for the whole run
    (the stream is endless, so there is one epoch of the loader and
    ``persistent_workers`` would change nothing); each worker keeps 4 batches
    ready (twice torch's default) so that a slow image does not stall a step.
    Workers ignore the cluster's preemption signals, which are for the
    training process (``qbench.engine.preemption``).
    """
    if num_workers <= 0:
        return {"pin_memory": torch.cuda.is_available()}
    return {"pin_memory": torch.cuda.is_available(), "prefetch_factor": 4, "persistent_workers": False,
            "worker_init_fn": preemption.ignore_in_worker}


def to_model_input(batch: torch.Tensor, device: torch.device, channels_last: bool = False) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1] on ``device``."""
    x = batch.to(device, non_blocking=True).float().div_(127.5).sub_(1.0)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x
