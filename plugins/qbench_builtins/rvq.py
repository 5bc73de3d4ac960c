"""Residual vector quantization (SoundStream, arXiv 2107.03312), gradient-learned codebooks.

S stages, each with its own V x D codebook (initialised U(-1/V, 1/V) like the VQ
baseline).  Stage s quantises the residual r_s left by the stages before it:
r_0 = z, k_s = argmin |r_s - c|^2 over codebook s, q_s = C_s[k_s],
r_{s+1} = r_s - sg(q_s).  The output is z + sg(sum_s q_s - z) and the loss the
sum over stages of each stage's codebook + beta * commitment loss against its
own residual, mean((q_s - sg(r_s))^2) + beta * mean((sg(q_s) - r_s)^2) (the GSQ
reference code compares every stage with the full z, which its digest flags as
a bug; we follow SoundStream).  T = S tokens per position, one per stage, each
indexing its own codebook, so ``codebook_shared`` is False and the rate is
S * log2 V bits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from qbench import QuantizerOutput
from qbench.lookup import nearest_code
from qbench.quantizer import (
    Quantizer,
    codebook_loss,
    float32_lookup,
    from_rows,
    require_float,
    require_int,
    straight_through,
    to_rows,
)


class ResidualVectorQuantizer(Quantizer):
    name = "rvq"  # what its errors call it

    def __init__(self, dim: int, stages: int = 2, codebook_size: int = 32, beta: float = 0.25):
        super().__init__()
        require_int("dim", dim, 1)
        require_int("stages", stages, 1)
        require_int("codebook_size", codebook_size, 2)
        self.beta = require_float("beta", beta, 0.0)
        self.dim = dim
        self.stages = stages
        self.codebook_size = codebook_size
        self.tokens_per_position = stages
        self.codebook_shared = False
        bound = 1.0 / codebook_size
        self.codebooks = torch.nn.Parameter(torch.empty(stages, codebook_size, dim).uniform_(-bound, bound))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, stages={self.stages}, codebook_size={self.codebook_size}, beta={self.beta}"

    def _quantize(self, x: torch.Tensor):
        """Rows (N, D) -> codes (N, S), summed stage outputs (N, D), summed losses."""
        residual = x
        total = torch.zeros_like(x)
        loss = x.new_zeros(())
        codes = []
        for stage in range(self.stages):
            book = self.codebooks[stage]
            k = nearest_code(residual, book)
            q = F.embedding(k, book)
            loss = loss + codebook_loss(residual, q, self.beta)
            total = total + q
            residual = residual - q.detach()
            codes.append(k)
        return torch.stack(codes, dim=1), total, loss

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        batch, _, height, width = z.shape
        with float32_lookup():
            self.check_input(z)
            x = to_rows(z).float()
            codes, total, loss = self._quantize(x)
            out = straight_through(x, total)
        z_q = from_rows(out, batch, height, width).to(z.dtype)
        codes = codes.view(batch, height, width, self.stages)
        return QuantizerOutput(z_q, codes, loss, self.code_stats(codes))

    @torch.no_grad()
    def encode(self, z: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = z.shape
        with float32_lookup():
            self.check_input(z)
            codes, _, _ = self._quantize(to_rows(z).float())
        return codes.view(batch, height, width, self.stages)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        batch, height, width = self.check_codes(codes)
        flat = codes.reshape(-1, self.tokens_per_position).long()
        total = sum(F.embedding(flat[:, s], self.codebooks[s]) for s in range(self.stages))
        return from_rows(total, batch, height, width)
