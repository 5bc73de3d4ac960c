"""Codebook helpers shared by quantizers and metrics: histograms, usage, perplexity.

Usage is the fraction of codebook entries hit at least once; perplexity is
exp(H) of the empirical code distribution (natural log).  For quantizers
whose T tokens per position index one shared codebook (GSQ) the *pooled*
histogram counts every token against the same V bins; for separate codebooks
(RVQ stages, per-group GSQ codebooks) each token position has its own.
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
    """Fraction of bins with a non-zero count, per row of ``hist`` (shape (..., V))."""
    return (hist > 0).to(torch.float64).mean(dim=-1)


def perplexity(hist: torch.Tensor) -> torch.Tensor:
    """exp(entropy) of each row of ``hist``; 0 for an empty row."""
    hist = hist.to(torch.float64)
    total = hist.sum(dim=-1, keepdim=True)
    p = hist / total.clamp_min(1)
    entropy = -(p * torch.log(p.clamp_min(1e-300))).sum(dim=-1)
    return torch.where(total.squeeze(-1) > 0, entropy.exp(), torch.zeros_like(entropy))
