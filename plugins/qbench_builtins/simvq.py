"""SimVQ ("Addressing Representation Collapse in Vector Quantized Models with One
Linear Layer", arXiv 2411.02038), after its official code.

The codebook is reparameterised: a frozen random basis C (V x D, a buffer,
drawn N(0, 1/D)) is mapped by one learned linear layer W, and the codes are
the rows of C W^T + b.  Because every code moves with W, codes no token picks
still follow the data, which is what keeps the codebook from collapsing.  The
encoder output z is not transformed.  Lookup: the Euclidean nearest code,
k = argmin |z - (C W^T + b)_k|^2, through qbench's bounded-memory
``nearest_code`` (float32 even under autocast); q = W C_k + b; output
z + sg(q - z); loss mean((q - sg(z))^2) + beta * mean((sg(q) - z)^2),
beta = 0.25.  Only W (and b) learn; C never changes.

Where the references differ:

- The official code's linear layer has a bias (``projection_bias``, default
  true); vector-quantize-pytorch's ``SimVQ`` has none.  Both draw the frozen
  basis N(0, 1/D) and use the same loss.
- vector-quantize-pytorch turns the rotation trick (arXiv 2410.06424) on by
  default; the paper and qbench use the plain straight-through estimator.
- qbench computes q as W C_k + b rather than indexing the transformed
  codebook: the same value (up to float rounding), and the backward pass
  touches only the chosen rows.
"""

from __future__ import annotations

import torch
from torch import nn

from qbench import ConfigError, QuantizerOutput
from qbench.lookup import nearest_code
from qbench.quantizer import (
    Quantizer,
    codebook_loss,
    float32_lookup,
    from_rows,
    require_float,
    require_int,
    straight_through,
)


class SimVQ(Quantizer):
    name = "simvq"  # what its errors call it

    def __init__(self, dim: int, codebook_size: int = 1024, beta: float = 0.25, projection_bias: bool = True):
        super().__init__()
        require_int("dim", dim, 1)
        require_int("codebook_size", codebook_size, 2)
        self.beta = require_float("beta", beta, 0.0)
        if not isinstance(projection_bias, bool):
            raise ConfigError(f"projection_bias must be true or false, got {projection_bias!r}")
        self.dim = dim
        self.codebook_size = codebook_size
        self.tokens_per_position = 1
        self.codebook_shared = True
        self.register_buffer("frozen_codebook", torch.randn(codebook_size, dim) * dim**-0.5)
        self.codebook_transform = nn.Linear(dim, dim, bias=projection_bias)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, codebook_size={self.codebook_size}, beta={self.beta}"

    @property
    def codebook(self) -> torch.Tensor:
        """The effective codes C W^T + b, (V, D)."""
        return self.codebook_transform(self.frozen_codebook)

    def _lookup(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return nearest_code(x, self.codebook)

    def _codes_to_rows(self, codes: torch.Tensor) -> torch.Tensor:
        return self.codebook_transform(self.frozen_codebook[codes])

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        batch, _, height, width = z.shape
        with float32_lookup():
            x = self.input_rows(z)
            codes = self._lookup(x)
            q = self._codes_to_rows(codes)
            loss = codebook_loss(x, q, self.beta)
            out = straight_through(x, q)
        z_q = from_rows(out, batch, height, width).to(z.dtype)
        codes = codes.view(batch, height, width, 1)
        return QuantizerOutput(z_q, codes, loss, self.code_stats(codes))

    @torch.no_grad()
    def encode(self, z: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = z.shape
        with float32_lookup():
            codes = self._lookup(self.input_rows(z))
        return codes.view(batch, height, width, 1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        batch, height, width = self.check_codes(codes)
        with float32_lookup():
            rows = self._codes_to_rows(codes.reshape(-1).long())
        return from_rows(rows, batch, height, width)
