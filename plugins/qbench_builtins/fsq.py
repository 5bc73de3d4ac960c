"""Finite Scalar Quantization (Mentzer et al., arXiv 2309.15505, appendix A.1).

Channel i of the (projected) latent is bounded with tanh to about (L_i - 1) / 2
levels either side of zero, with a half-step offset for even L_i so that it
rounds to exactly L_i integers, rounded with a straight-through gradient and
divided by floor(L_i / 2), so values lie in [-1, 1].  The codebook is implicit:
the L_1 * ... * L_n grid, one token per position, index
sum_i (level_i) * prod_{j<i} L_j, rate sum_i log2 L_i bits.  No loss.

Bounding, rounding and indexing follow the paper's reference code (and
vector-quantize-pytorch's ``FSQ``) to the digit, including its
eps = 1e-3 widening of the tanh range, and run in float32 even under autocast
(bf16 rounding halves the usage).  When ``dim`` differs from the number of
levels, per-position linear maps (1x1 convolutions) project dim -> n levels
before and n -> dim after quantisation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from qbench import ConfigError, QuantizerOutput
from qbench.quantizer import Quantizer, float32_lookup, from_rows, require_int, to_rows

TANH_EPS = 1e-3


def _check_levels(levels) -> list[int]:
    if isinstance(levels, (str, bytes)) or not isinstance(levels, Sequence) or len(levels) == 0:
        raise ConfigError(f"fsq: levels must be a non-empty list of integers >= 2, got {levels!r}")
    for level in levels:
        if isinstance(level, bool) or not isinstance(level, int) or level < 2:
            raise ConfigError(f"fsq: every level must be an integer >= 2, got {list(levels)!r}")
    return list(levels)


class FiniteScalarQuantizer(Quantizer):
    name = "fsq"  # what its errors call it

    def __init__(self, dim: int, levels: Sequence[int] = (8, 5, 5, 5)):
        super().__init__()
        require_int("dim", dim, 1)
        levels = _check_levels(levels)
        self.dim = dim
        self.levels = levels
        self.codebook_size = math.prod(levels)
        self.tokens_per_position = 1
        self.codebook_shared = True
        n = len(levels)
        basis = [math.prod(levels[:i]) for i in range(n)]
        self.register_buffer("_levels", torch.tensor(levels, dtype=torch.float32), persistent=False)
        self.register_buffer("_basis", torch.tensor(basis, dtype=torch.long), persistent=False)
        self.project_in = nn.Linear(dim, n) if dim != n else nn.Identity()
        self.project_out = nn.Linear(n, dim) if dim != n else nn.Identity()

    @property
    def bits_per_position(self) -> float:
        return float(sum(math.log2(level) for level in self.levels))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, levels={self.levels}"

    def _bound(self, x: torch.Tensor) -> torch.Tensor:
        half_l = (self._levels - 1) * (1 + TANH_EPS) / 2
        offset = torch.where(self._levels % 2 == 0, 0.5, 0.0)
        shift = torch.atanh(offset / half_l)
        return torch.tanh(x + shift) * half_l - offset

    def _quantize(self, z: torch.Tensor):
        """(B, D, h, w) -> float32 rows of values in [-1, 1] (N, n) and int64 indices (N,)."""
        self.check_input(z)
        x = self.project_in(to_rows(z))
        with float32_lookup():
            bounded = self._bound(x.float())
            rounded = bounded + (bounded.round() - bounded).detach()
            half_width = torch.floor(self._levels / 2)
            values = rounded / half_width
            level_index = (rounded.detach() + half_width).round().long()
            indices = (level_index * self._basis).sum(dim=-1)
        return values, indices

    def _values_of(self, indices: torch.Tensor) -> torch.Tensor:
        half_width = torch.floor(self._levels / 2)
        level_index = (indices.unsqueeze(-1) // self._basis) % self._levels.long()
        return (level_index.float() - half_width) / half_width

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        batch, _, height, width = z.shape
        values, indices = self._quantize(z)
        z_q = from_rows(self.project_out(values.to(z.dtype)), batch, height, width)
        codes = indices.view(batch, height, width, 1)
        loss = torch.zeros((), device=z.device)
        return QuantizerOutput(z_q, codes, loss, self.code_stats(codes))

    @torch.no_grad()
    def encode(self, z: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = z.shape
        return self._quantize(z)[1].view(batch, height, width, 1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        batch, height, width = self.check_codes(codes)
        values = self._values_of(codes.reshape(-1).long())
        return from_rows(self.project_out(values), batch, height, width)
