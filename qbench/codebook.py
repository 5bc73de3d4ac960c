"""Codebook helpers shared by quantizers and metrics: histograms, usage, perplexity.

Usage is the percentage of codebook entries hit at least once; perplexity is
exp(H) of the empirical code distribution (natural log).  For quantizers
whose T tokens per position index one shared codebook (GSQ) the *pooled*
histogram counts every token against the same V bins; for separate codebooks
(RVQ stages, per-group GSQ codebooks) each token position has its own.

``usage_stats`` names what every quantizer's ``forward`` reports in
``QuantizerOutput.stats`` (0-d detached float tensors):

- ``usage``, ``perplexity``: pooled.  With a shared codebook, over the one
  histogram that counts all T tokens against the same V codes (the GSQ paper's
  "usage" and "PPL").  With separate codebooks, the mean over the T per-token
  values (so ``usage`` is the percentage of all T * V entries that were hit).
- ``usage/<t>``, ``perplexity/<t>`` for t = 0 .. T-1 when T > 1: per group
  (GSQ) or per stage (RVQ), each against its own histogram.

The nearest-code search itself is in :mod:`qbench.lookup`.
"""

from __future__ import annotations

import torch


def code_histogram(codes: torch.Tensor, codebook_size: int, shared: bool = True) -> torch.Tensor:
    """Counts of each code, shape (T, V) per token, or (1, V) pooled when ``shared``.

    ``codes``: int64 (..., T) with values in [0, codebook_size).
    """
    flat = codes.reshape(-1, codes.shape[-1]).long()
    if shared:
        return torch.bincount(flat.reshape(-1), minlength=codebook_size).unsqueeze(0)
    tokens = flat.shape[1]
    offsets = torch.arange(tokens, device=flat.device) * codebook_size
    counts = torch.bincount((flat + offsets).reshape(-1), minlength=tokens * codebook_size)
    return counts.view(tokens, codebook_size)


def usage(hist: torch.Tensor) -> torch.Tensor:
    """Percentage (0-100) of bins with a non-zero count, per row of ``hist`` (shape (..., V))."""
    return (hist > 0).to(torch.float64).mean(dim=-1) * 100.0


def perplexity(hist: torch.Tensor) -> torch.Tensor:
    """exp(entropy) of each row of ``hist``; 0 for an empty row."""
    hist = hist.to(torch.float64)
    total = hist.sum(dim=-1, keepdim=True)
    p = hist / total.clamp_min(1)
    entropy = -(p * torch.log(p.clamp_min(1e-300))).sum(dim=-1)
    return torch.where(total.squeeze(-1) > 0, entropy.exp(), torch.zeros_like(entropy))


def usage_stats(codes: torch.Tensor, codebook_size: int, shared: bool = True) -> dict[str, torch.Tensor]:
    """The usage and perplexity entries of ``QuantizerOutput.stats`` (see module docstring)."""
    codes = codes.detach()
    per_token = code_histogram(codes, codebook_size, shared=False)
    pooled = code_histogram(codes, codebook_size, shared=True) if shared else per_token
    stats = {
        "usage": usage(pooled).mean().float(),
        "perplexity": perplexity(pooled).mean().float(),
    }
    if per_token.shape[0] > 1:
        for t, (u, p) in enumerate(zip(usage(per_token), perplexity(per_token))):
            stats[f"usage/{t}"] = u.float()
            stats[f"perplexity/{t}"] = p.float()
    return stats
