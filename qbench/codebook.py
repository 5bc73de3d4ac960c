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


def _sparse_usage(keys: torch.Tensor, rows: int, codebook_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """usage and perplexity per row of the histogram of ``keys`` (row * V + code), from the
    codes that occur only: O(N log N) instead of O(rows * V), the same values."""
    present, counts = torch.unique(keys, return_counts=True)
    row = present // codebook_size
    hit = torch.bincount(row, minlength=rows).to(torch.float64)
    total = torch.bincount(row, weights=counts.to(torch.float64), minlength=rows)
    p = counts.to(torch.float64) / total[row].clamp_min(1)
    entropy = torch.bincount(row, weights=-(p * torch.log(p)), minlength=rows)
    return hit / codebook_size * 100.0, torch.where(total > 0, entropy.exp(), torch.zeros_like(entropy))


def _usage_and_perplexity(codes: torch.Tensor, codebook_size: int, shared: bool):
    """(usage, perplexity) per histogram row; dense histograms unless the codebook dwarfs the batch."""
    flat = codes.reshape(-1, codes.shape[-1]).long()
    if flat.numel() * 4 >= codebook_size:  # a (T, V) histogram is cheap next to the batch
        hist = code_histogram(codes, codebook_size, shared=shared)
        return usage(hist), perplexity(hist)
    if shared:
        return _sparse_usage(flat.reshape(-1), 1, codebook_size)
    tokens = flat.shape[1]
    offsets = torch.arange(tokens, device=flat.device) * codebook_size
    return _sparse_usage((flat + offsets).reshape(-1), tokens, codebook_size)


def usage_stats(codes: torch.Tensor, codebook_size: int, shared: bool = True) -> dict[str, torch.Tensor]:
    """The usage and perplexity entries of ``QuantizerOutput.stats`` (see module docstring).

    Exact at any V: for a codebook much larger than the batch (V = 2^18 with a
    few thousand positions) they come from the codes that occur, not from a
    dense (T, V) histogram, so a step does not pay O(T * V) for them."""
    codes = codes.detach()
    per_usage, per_ppl = _usage_and_perplexity(codes, codebook_size, shared=False)
    if shared:
        pooled_usage, pooled_ppl = _usage_and_perplexity(codes, codebook_size, shared=True)
    else:
        pooled_usage, pooled_ppl = per_usage, per_ppl
    stats = {
        "usage": pooled_usage.mean().float(),
        "perplexity": pooled_ppl.mean().float(),
    }
    if per_usage.shape[0] > 1:
        for t, (u, p) in enumerate(zip(per_usage, per_ppl)):
            stats[f"usage/{t}"] = u.float()
            stats[f"perplexity/{t}"] = p.float()
    return stats
