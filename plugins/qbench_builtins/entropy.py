"""The entropy penalty of LFQ (MAGVIT-v2, arXiv 2310.05737, Eq. 5), shared by LFQ, BSQ and IBQ.

Given soft code assignments p(k | x) = softmax(logits(x))_k for every token x
of a batch, the penalty is

    H_sample   = mean over tokens of H(p(. | x))       (low: confident assignments)
    H_codebook = H(mean over tokens of p(. | x))       (high: every code used)
    penalty    = H_sample - gamma * H_codebook

in nats.  H_sample sums over the codes of one distribution and averages over
the tokens; H_codebook is the entropy of the batch-mean distribution over
*all* tokens of the batch.  This is the corrected form of vector-quantize-pytorch
PR #89 (the author of MAGVIT-v2, in its issue #78): before it, the entropies
were elementwise and the codebook distribution per item.

Logits come in groups, shape (N, G, K): G independent distributions over K
codes each, for BSQ's factorised entropy (arXiv 2406.07548, section 3.2).  Both
terms sum over the groups.  With G = 1 this is the plain form above.

Numerics.  Everything is float32 without autocast (in bf16 the entropies of
peaked distributions are mostly rounding error).  H_sample uses log_softmax,
so it is exact however small a probability gets; the reference implementations
clamp probabilities at 1e-5 (vector-quantize-pytorch, SEED-Voken's codebook
term), which underestimates an entropy by at most K * 1e-5 / e nats.
H_codebook clamps only at 1e-30, so that a code no token touches adds 0 and a
finite gradient.

Under ``torch.distributed`` the batch-mean distribution is averaged over the
ranks with a differentiable all-reduce, so H_codebook is the entropy of the
global batch, as vector-quantize-pytorch does; after DDP's gradient averaging
each parameter gets exactly the gradient of the global-batch penalty.
"""

from __future__ import annotations

import torch

from qbench.quantizer import float32_lookup

PROBABILITY_FLOOR = 1e-30


def _global_mean(avg: torch.Tensor) -> torch.Tensor:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        from torch.distributed.nn.functional import all_reduce

        return all_reduce(avg) / dist.get_world_size()
    return avg


def entropy_terms(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(H_sample, H_codebook) of soft assignments with logits (N, G, K); see the module docstring."""
    if logits.dim() != 3:
        raise ValueError(f"entropy_terms needs logits (N, G, K), got {tuple(logits.shape)}")
    with float32_lookup():
        log_p = torch.log_softmax(logits.float(), dim=-1)
        p = log_p.exp()
        sample = -(p * log_p).sum(dim=-1).sum(dim=-1).mean()
        avg = _global_mean(p.mean(dim=0))
        codebook = -(avg * avg.clamp_min(PROBABILITY_FLOOR).log()).sum()
    return sample, codebook


def entropy_penalty(logits: torch.Tensor, gamma: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """H_sample - gamma * H_codebook, and both terms as detached stats."""
    sample, codebook = entropy_terms(logits)
    stats = {"entropy/sample": sample.detach(), "entropy/codebook": codebook.detach()}
    return sample - gamma * codebook, stats
