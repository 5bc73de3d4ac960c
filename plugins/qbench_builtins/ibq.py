"""Index backpropagation quantization (IBQ, "Taming Scalable Visual Tokenizer for
Autoregressive Image Generation", arXiv 2412.02692), after its official code
(SEED-Voken).

A V x D codebook C, learned by gradient, initialised N(0, 1) (``nn.Embedding``'s
default, as in the official code; ``init="spherical"``: rows on the unit
sphere, see below).  For a latent z (one row of D channels):

    logits = z C^T                   (temperature 1)
    soft   = softmax(logits),  k = argmax(logits),  hard = onehot(k)
    I      = hard - sg(soft) + soft  (value: hard; gradient: soft's)
    z_q    = I C                     (value: C_k)

so the decoder's gradient reaches the logits, and through them *every* code
and the encoder, at every step: the whole codebook trains, which is IBQ's
answer to codebook collapse.  There is no straight-through from z to z_q:
z gets gradient only through the logits and the losses.  The double
quantization loss, with z^ = hard C (= C_k):

    mean((z_q - z)^2) + mean((sg(z^) - z)^2) + beta * mean((z^ - sg(z))^2),

beta = 0.25, plus the optional entropy penalty of the official ImageNet
configurations, entropy_weight * (H_sample - diversity_gamma * H_codebook) on
softmax(logits * inv_temperature) (``entropy.py``); defaults 0.05, 1 and 100
(temperature 0.01), the official weights relative to a quantizer weight of 1.
Set ``entropy_weight = 0`` to drop it.  The nearest-code here is the largest
dot product, not the smallest distance (codes differ in norm).

Only vertices of the convex hull of the codebook can win an argmax of dot
products.  At the paper's D = 256 that is nearly every code; at small D it is
not: of 1024 N(0, 1) codes in D = 4, about 74 are ever chosen, and training
from there collapsed in cpu-default (docs/quantizers.md).  ``init="spherical"``
(l2-normalised Gaussian rows, as GSQ starts) puts every code on the hull.

Choices: z_q is computed as C_k + (soft - sg(soft)) C, which equals I C in
value (exactly C_k, where I C may differ from it by rounding) and in every
gradient.  The loss is also computed in eval mode, as in the official code
(z_q = hard C there too, the same value).  The entropy's codebook term
uses an exact logarithm where the official code adds 1e-5 (``entropy.py``).
Memory: the logits are tokens x V floats (1 GiB for 1024 tokens at
V = 2^18), plus as much again for their gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from qbench import ConfigError, QuantizerOutput
from qbench.quantizer import (
    Quantizer,
    float32_lookup,
    from_rows,
    require_choice,
    require_float,
    require_int,
)

from .entropy import penalty_from_logits

INITS = ("normal", "spherical")


class IndexBackpropQuantizer(Quantizer):
    name = "ibq"  # what its errors call it

    def __init__(
        self,
        dim: int,
        codebook_size: int = 1024,
        beta: float = 0.25,
        entropy_weight: float = 0.05,
        diversity_gamma: float = 1.0,
        inv_temperature: float = 100.0,
        init: str = "normal",
    ):
        super().__init__()
        require_int("dim", dim, 1)
        require_int("codebook_size", codebook_size, 2)
        self.beta = require_float("beta", beta, 0.0)
        self.entropy_weight = require_float("entropy_weight", entropy_weight, 0.0)
        self.diversity_gamma = require_float("diversity_gamma", diversity_gamma, 0.0)
        self.inv_temperature = require_float("inv_temperature", inv_temperature, 0.0)
        if self.inv_temperature <= 0:
            raise ConfigError(f"inv_temperature must be > 0, got {inv_temperature!r}")
        self.dim = dim
        self.codebook_size = codebook_size
        self.tokens_per_position = 1
        self.codebook_shared = True
        self.init = require_choice("init", init, INITS)
        weight = torch.randn(codebook_size, dim)
        if init == "spherical":
            weight = F.normalize(weight, dim=1)
        self.codebook = torch.nn.Parameter(weight)

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, codebook_size={self.codebook_size}, beta={self.beta}, "
            f"entropy_weight={self.entropy_weight}, inv_temperature={self.inv_temperature}, init={self.init!r}"
        )

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        batch, _, height, width = z.shape
        with float32_lookup():
            x = self.input_rows(z)
            logits = x @ self.codebook.t()
            codes = logits.argmax(dim=1)
            soft = logits.softmax(dim=1)
            hard_rows = F.embedding(codes, self.codebook)  # z^ = hard C
            out = hard_rows + (soft - soft.detach()) @ self.codebook  # I C
            loss = (
                F.mse_loss(out, x)
                + F.mse_loss(x, hard_rows.detach())
                + self.beta * F.mse_loss(hard_rows, x.detach())
            )
            stats = {}
            if self.entropy_weight > 0:
                penalty, stats = penalty_from_logits(logits * self.inv_temperature, self.diversity_gamma)
                loss = loss + self.entropy_weight * penalty
        z_q = from_rows(out, batch, height, width).to(z.dtype)
        codes = codes.view(batch, height, width, 1)
        return QuantizerOutput(z_q, codes, loss, {**self.code_stats(codes), **stats})

    @torch.no_grad()
    def encode(self, z: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = z.shape
        with float32_lookup():
            logits = self.input_rows(z) @ self.codebook.t()
        return logits.argmax(dim=1).view(batch, height, width, 1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        batch, height, width = self.check_codes(codes)
        rows = F.embedding(codes.reshape(-1).long(), self.codebook)
        return from_rows(rows, batch, height, width)
