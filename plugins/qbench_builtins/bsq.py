"""Binary spherical quantization (BSQ, "Image and Video Tokenization with Binary
Spherical Quantization", arXiv 2406.07548), after its official code (BSQ-ViT).

The latent is projected to L = ``bits`` channels (a 1x1 convolution, only when
L differs from the latent width D; back to D after), l2-normalised,
u = x / |x|, and each channel quantised to q_i = sign(u_i) / sqrt(L) (0 -> -),
so every code lies on the unit sphere; output u + sg(q - u).  Codes, bit order
(channel i is bit i, least significant first: the official code is most
significant first) and the implicit 2^L codebook are LFQ's (``lfq.py``).

Loss:

    loss = entropy_weight * (H_sample - diversity_gamma * H_codebook)
           + commitment_weight * mean((u - sg(q))^2)

with the entropies of the soft assignment p(c | u) = softmax(2 tau u . c) over
codes c in {+-1/sqrt(L)}^L, tau = ``inv_temperature``; per bit this is
p(u_i > 0) = sigmoid(4 tau u_i / sqrt(L)) as in the paper's code.  H_sample is
exact (the assignment factorises over bits).  H_codebook is:

- default (``entropy_group_size`` unset): the exact entropy of the batch-mean
  distribution over all 2^L codes, which is also vector-quantize-pytorch's
  ``LFQ(spherical=True)`` and the official code with one group of all L bits;
  it keeps tokens x 2^L floats, cheap at the ~10 bits qbench's CPU recipes use;
- ``entropy_group_size`` = g: the official code's factorised approximation,
  the sum over L / g groups of the entropies of each group's batch-mean
  distribution over its 2^g sub-codes (an upper bound of the exact term that
  ignores the dependence between groups; tokens x L/g x 2^g floats).  The
  official configurations use g = 9 or 1 at 18 bits; use it at L >= 16.

Defaults follow the official configuration: tau = 1, commitment 0 (its beta),
gamma0 = gamma = zeta = 1, and a quantizer-loss weight of 0.1 in its training
config, which here is ``entropy_weight`` = 0.1 (the official loss divides the
penalty by tau: at another tau set entropy_weight = 0.1 / tau to match it).
vector-quantize-pytorch differs: tau = 100 and the full 2^L softmax; the
reference test compares the two at its settings.  The official commitment
term sums over channels where qbench means, a factor L (0 by default anyway).
"""

from __future__ import annotations

from .lfq import LookupFreeQuantizer


class BinarySphericalQuantizer(LookupFreeQuantizer):
    name = "bsq"
    spherical = True

    def __init__(
        self,
        dim: int,
        bits: int | None = None,
        codebook_size: int | None = None,
        entropy_weight: float = 0.1,
        diversity_gamma: float = 1.0,
        commitment_weight: float = 0.0,
        inv_temperature: float = 1.0,
        entropy_group_size: int | None = None,
    ):
        super().__init__(
            dim,
            bits=bits,
            codebook_size=codebook_size,
            entropy_weight=entropy_weight,
            diversity_gamma=diversity_gamma,
            commitment_weight=commitment_weight,
            inv_temperature=inv_temperature,
            entropy_group_size=entropy_group_size,
        )
