"""Training data: a deterministic, resumable, sharded stream of batches.

The n-th training sample of a run is fixed by (seed, n) alone: sample n is
item ``perm_e[n mod N]`` of a permutation ``perm_e`` seeded by (seed, epoch
e = n div N).  Step s on rank r of W ranks takes samples
``[(s*W + r)*B, (s*W + r + 1)*B)``.  So a resumed run sees exactly the
batches an uninterrupted one would, and ranks never share a sample, with no
sampler state to checkpoint.  (The same idea as the "stateless" samplers of
large-scale trainers; see also torch's DistributedSampler.)
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from qbench.platform.plugins import Registries, given_or_built
from qbench.recipe.config import Recipe


def build_dataset(recipe: Recipe, split: str, regs: Registries | None = None, seed: int | None = None) -> Dataset:
    """The recipe's dataset for ``split`` ("train" or "val"), from the dataset registry."""
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
    """Endless batches of indices for one rank, from ``start_step`` on (see module doc)."""

    def __init__(self, dataset_len: int, batch_size: int, *, seed: int, start_step: int = 0,
                 rank: int = 0, world_size: int = 1):
        self.n, self.batch_size, self.seed = dataset_len, batch_size, seed
        self.start_step, self.rank, self.world_size = start_step, rank, world_size
        self._epoch, self._perm = -1, None

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(self.seed * 7919 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=gen)
        return self._perm

    def indices(self, step: int) -> list[int]:
        first = (step * self.world_size + self.rank) * self.batch_size
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
    """Endless uint8 batches (B, 3, H, W) for this rank, starting at ``start_step``."""
    sampler = StepBatchSampler(len(dataset), batch_size, seed=seed, start_step=start_step,
                               rank=rank, world_size=world_size)
    if num_workers <= 0:
        return (_stack([dataset[i] for i in batch]) for batch in sampler)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers, collate_fn=_stack,
                        persistent_workers=False)
    return iter(loader)


def to_model_input(batch: torch.Tensor, device: torch.device, channels_last: bool = False) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1] on ``device``."""
    x = batch.to(device, non_blocking=True).float().div_(127.5).sub_(1.0)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x
