"""Lookup-free quantization (LFQ, MAGVIT-v2: "Language Model Beats Diffusion", arXiv 2310.05737).

Each of L channels is quantised to one bit, q_i = sign(x_i) in {-1, +1}
(0 -> -1), so a position carries one token of L bits, V = 2^L codes, and the
codebook is implicit: nothing is looked up and nothing in it is learned.
When ``bits`` L differs from the latent width D, a linear map (a 1x1
convolution) projects D -> L before quantisation and L -> D after, as
vector-quantize-pytorch's ``LFQ`` does (``has_projections``); these two maps
are the only parameters.  The output is x + sg(q - x).

Loss, with x the projected latent:

    loss = entropy_weight * (H_sample - diversity_gamma * H_codebook)
           + commitment_weight * mean((x - sg(q))^2)

where the entropies (``entropy.py``) are those of the soft assignment
p(c | x) = softmax_c(2 * inv_temperature * x . c) over the 2^L codes c (equal
to softmax(-inv_temperature * |x - c|^2), every code having the same norm).
H_sample is summed over codes and meaned over tokens; H_codebook is the entropy
of the batch-mean distribution over all tokens of the batch.  The penalty can
be negative; it is computed in float32 even under autocast.

Defaults and where the references differ:

- ``entropy_weight`` 0.1, ``commitment_weight`` 0.25, ``diversity_gamma`` 1,
  ``inv_temperature`` 100: the recipe of MAGVIT-v2's author in
  vector-quantize-pytorch #88 / PR #89 (which also corrected the entropy terms
  to the form above).  vector-quantize-pytorch 1.32.0 now defaults to
  commitment 0 (its #165); τ = 100 equals Open-MAGVIT2's logits / 0.01.  The
  author also anneals the entropy weight for large vocabularies; qbench keeps
  it constant.
- Bit order: channel i is bit i of the index, index = sum_i 2^i [x_i > 0]
  (least significant first), as in the paper (Index = sum_i 2^(i-1) 1{z_i > 0})
  and Open-MAGVIT2.  vector-quantize-pytorch and the BSQ code put channel 0 in
  the most significant bit; their index is qbench's with the L bits reversed.
  Usage and perplexity do not depend on the order.
- ``entropy_group_size`` g (optional, default all L bits): H_codebook as the
  sum of the codebook entropies of L / g groups of g bits, BSQ's factorised
  approximation (see ``bsq.py``).  The exact term keeps tokens x 2^L floats
  (2 GiB for 2048 tokens at L = 18); a group of g bits keeps tokens x L/g x 2^g.
  H_sample is exact either way: the soft assignment factorises over bits.
- Entropies use exact logarithms where the references clamp probabilities at
  1e-5 (at most V * 1e-5 / e nats apart; ``entropy.py``).
- The loss is also computed in eval mode (vector-quantize-pytorch returns 0
  there), like every qbench quantizer.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from qbench import ConfigError, QuantizerOutput
from qbench.quantizer import Quantizer, float32_lookup, from_rows, require_float, require_int, to_rows

from .entropy import bit_patterns, penalty_from_bits

MAX_BITS = 62  # indices are int64


def resolve_bits(name: str, dim: int, bits, codebook_size) -> int:
    """L from ``bits`` or ``codebook_size`` (a power of 2); neither: L = dim."""
    if codebook_size is not None:
        require_int("codebook_size", codebook_size, 2)
        if codebook_size & (codebook_size - 1):
            raise ConfigError(
                f"{name}: codebook_size must be a power of 2 (codes are bit patterns), got {codebook_size}; "
                f"nearest: {2 ** math.floor(math.log2(codebook_size))} or {2 ** math.ceil(math.log2(codebook_size))}"
            )
        from_size = codebook_size.bit_length() - 1
        if bits is not None and bits != from_size:
            raise ConfigError(f"{name}: bits={bits} and codebook_size={codebook_size} disagree (2^{bits} != {codebook_size})")
        bits = from_size
    bits = dim if bits is None else bits
    require_int("bits", bits, 1)
    if bits > MAX_BITS:
        raise ConfigError(f"{name}: bits must be <= {MAX_BITS} (int64 indices), got {bits}")
    return bits


def check_group_size(name: str, bits: int, group_size) -> int:
    if group_size is None:
        return bits
    require_int("entropy_group_size", group_size, 1)
    if bits % group_size:
        raise ConfigError(
            f"{name}: entropy_group_size {group_size} does not divide bits {bits}; pick one of "
            f"{[g for g in range(1, bits + 1) if bits % g == 0]}"
        )
    return group_size


class LookupFreeQuantizer(Quantizer):
    name = "lfq"
    spherical = False  # BSQ: l2-normalise before the sign, codes +-1/sqrt(L)

    def __init__(
        self,
        dim: int,
        bits: int | None = None,
        codebook_size: int | None = None,
        entropy_weight: float = 0.1,
        diversity_gamma: float = 1.0,
        commitment_weight: float = 0.25,
        inv_temperature: float = 100.0,
        entropy_group_size: int | None = None,
    ):
        super().__init__()
        name = self.name
        require_int("dim", dim, 1)
        self.bits = resolve_bits(name, dim, bits, codebook_size)
        self.entropy_weight = require_float("entropy_weight", entropy_weight, 0.0)
        self.diversity_gamma = require_float("diversity_gamma", diversity_gamma, 0.0)
        self.commitment_weight = require_float("commitment_weight", commitment_weight, 0.0)
        self.inv_temperature = require_float("inv_temperature", inv_temperature, 0.0)
        if self.inv_temperature <= 0:
            raise ConfigError(f"inv_temperature must be > 0, got {inv_temperature!r}")
        self.entropy_group_size = check_group_size(name, self.bits, entropy_group_size)

        self.dim = dim
        self.codebook_size = 2**self.bits
        self.tokens_per_position = 1
        self.codebook_shared = True
        self.code_magnitude = 1.0 / math.sqrt(self.bits) if self.spherical else 1.0
        self.register_buffer("_powers", 2 ** torch.arange(self.bits, dtype=torch.long), persistent=False)
        self.register_buffer("_patterns", bit_patterns(self.entropy_group_size), persistent=False)
        projections = dim != self.bits
        self.project_in = nn.Linear(dim, self.bits) if projections else nn.Identity()
        self.project_out = nn.Linear(self.bits, dim) if projections else nn.Identity()

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, bits={self.bits}, entropy_weight={self.entropy_weight}, "
            f"diversity_gamma={self.diversity_gamma}, commitment_weight={self.commitment_weight}, "
            f"inv_temperature={self.inv_temperature}, entropy_group_size={self.entropy_group_size}"
        )

    def _project(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D, h, w) -> float32 (N, L): the values whose signs are the bits."""
        self.check_input(z)
        x = self.project_in(to_rows(z).float())
        return nn.functional.normalize(x, dim=-1) if self.spherical else x

    def _indices(self, x: torch.Tensor) -> torch.Tensor:
        return ((x > 0).long() * self._powers).sum(dim=-1)

    def _values_of(self, indices: torch.Tensor) -> torch.Tensor:
        bits = (indices.unsqueeze(-1) & self._powers) != 0
        return (bits.float() * 2 - 1) * self.code_magnitude

    def _bit_logits(self, x: torch.Tensor) -> torch.Tensor:
        """softmax(2 tau x . c) over codes c = +-s makes bit i one with logit 4 tau s x_i."""
        return 4 * self.inv_temperature * self.code_magnitude * x

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        batch, _, height, width = z.shape
        with float32_lookup():
            x = self._project(z)
            indices = self._indices(x)
            q = torch.where(x > 0, self.code_magnitude, -self.code_magnitude)
            penalty, stats = penalty_from_bits(self._bit_logits(x), self._patterns, self.diversity_gamma)
            commitment = nn.functional.mse_loss(x, q.detach())
            loss = self.entropy_weight * penalty + self.commitment_weight * commitment
            out = self.project_out(x + (q - x).detach())
        z_q = from_rows(out, batch, height, width).to(z.dtype)
        codes = indices.view(batch, height, width, 1)
        return QuantizerOutput(z_q, codes, loss, {**self.code_stats(codes), **stats})

    @torch.no_grad()
    def encode(self, z: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = z.shape
        with float32_lookup():
            indices = self._indices(self._project(z))
        return indices.view(batch, height, width, 1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        batch, height, width = self.check_codes(codes)
        with float32_lookup():
            values = self.project_out(self._values_of(codes.reshape(-1).long()))
        return from_rows(values, batch, height, width)
