"""The unquantized ceiling: the latent passes to the decoder unchanged.

A continuous bottleneck of the same latent width is the standard upper bound
in learned-compression and tokenizer ablations: it separates "the quantizer
loses information" from "the backbone is undertrained".  Trained under the
same recipe as the quantizers, its reconstruction quality is what the
backbone can do at this budget; the gap from it to a quantizer is what that
quantizer costs.

There are no codes (zero tokens per position), no quantizer loss and no
rate: ``continuous`` is true, ``bits_per_position`` is infinite, and reports
show the run as a ceiling row and a horizontal reference line, never on a
rate axis, in a BD comparison or in a paired test.
"""

from __future__ import annotations

import math

import torch

from qbench import ConfigError, QuantizerOutput
from qbench.quantizer import Quantizer, require_int


class IdentityQuantizer(Quantizer):
    continuous = True

    def __init__(self, dim: int):
        super().__init__()
        self.dim = require_int("dim", dim, 1)
        self.codebook_size = 0
        self.tokens_per_position = 0
        self.codebook_shared = True

    @property
    def bits_per_position(self) -> float:
        return math.inf

    def extra_repr(self) -> str:
        return f"dim={self.dim}, continuous"

    def _no_codes(self, z: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = z.shape
        return torch.zeros(batch, height, width, 0, dtype=torch.int64, device=z.device)

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        self.check_input(z)
        return QuantizerOutput(z, self._no_codes(z), torch.zeros((), device=z.device), {})

    @torch.no_grad()
    def encode(self, z: torch.Tensor) -> torch.Tensor:
        self.check_input(z)
        return self._no_codes(z)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        raise ConfigError("identity: the latent is continuous, there are no codes to decode")
