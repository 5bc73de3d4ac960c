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

The host computes these from the codes and ``codebook_size`` for every
quantizer (``host_code_stats``): in the training log and at evaluation, so
every plugin's numbers are computed one way, whatever its own ``stats`` say.
Implicit codebooks can be far too large for a dense histogram (FSQ with
levels [1024]*4 has 2^40 codes, BSQ at 36 bits 2^36): above
``DENSE_LIMIT`` bins the counts are kept sparsely (``torch.unique``), which
gives the same usage and perplexity, since only non-zero counts enter either.

The nearest-code search itself is in :mod:`qbench.lookup`.
"""

from __future__ import annotations

import math

import torch

DENSE_LIMIT = 1 << 22  # histogram bins (32 MiB of int64) above which codes are counted sparsely


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


def nonzero_counts(codes: torch.Tensor, codebook_size: int, shared: bool = True,
                   dense_limit: int = DENSE_LIMIT) -> list[torch.Tensor]:
    """The non-zero code counts of each histogram row: one row pooled when ``shared``, else one per token.

    A dense ``bincount`` while the histogram has at most ``dense_limit`` bins
    and the codebook does not dwarf the codes, else ``torch.unique`` over the
    codes (time and memory grow with the codes seen, not with the codebook);
    both give the same counts.
    """
    flat = codes.detach().reshape(-1, codes.shape[-1]).long()
    rows = 1 if shared else flat.shape[1]
    keys = flat if shared else flat + torch.arange(rows, device=flat.device) * codebook_size
    keys = keys.reshape(-1)
    # dense while the histogram is small and not much larger than the batch (V = 2^18 against a few
    # thousand positions per step would make every training step pay O(T * V) for its statistics)
    if rows * codebook_size <= dense_limit and keys.numel() * 4 >= codebook_size:
        hist = torch.bincount(keys, minlength=rows * codebook_size).view(rows, codebook_size)
        return [row[row > 0] for row in hist]
    found, counts = torch.unique(keys, return_counts=True)
    row_of = torch.div(found, codebook_size, rounding_mode="floor")
    return [counts[row_of == r] for r in range(rows)]


def counts_usage(counts: torch.Tensor, codebook_size: int) -> float:
    """Percentage of the ``codebook_size`` codes among the non-zero ``counts``."""
    return 100.0 * int(counts.numel()) / codebook_size


def counts_perplexity(counts: torch.Tensor) -> float:
    """exp(entropy) of the distribution the non-zero ``counts`` describe; 0 when there are none."""
    if counts.numel() == 0:
        return 0.0
    p = counts.to(torch.float64) / counts.sum().to(torch.float64)
    return float(torch.exp(-(p * torch.log(p)).sum()))


def usage_stats(codes: torch.Tensor, codebook_size: int, shared: bool = True,
                dense_limit: int = DENSE_LIMIT) -> dict[str, torch.Tensor]:
    """The usage and perplexity entries of ``QuantizerOutput.stats`` (see module docstring).

    Empty for a quantizer without tokens (``codes`` of shape (..., 0)) or codebook.
    """
    if not codebook_size or codes.shape[-1] == 0:
        return {}
    per_token = nonzero_counts(codes, codebook_size, shared=False, dense_limit=dense_limit)
    pooled = nonzero_counts(codes, codebook_size, shared=True, dense_limit=dense_limit) if shared else per_token

    def scalar(value: float) -> torch.Tensor:
        return torch.tensor(value, dtype=torch.float32)

    stats = {
        "usage": scalar(math.fsum(counts_usage(c, codebook_size) for c in pooled) / len(pooled)),
        "perplexity": scalar(math.fsum(counts_perplexity(c) for c in pooled) / len(pooled)),
    }
    if len(per_token) > 1:
        for t, counts in enumerate(per_token):
            stats[f"usage/{t}"] = scalar(counts_usage(counts, codebook_size))
            stats[f"perplexity/{t}"] = scalar(counts_perplexity(counts))
    return stats


def host_code_stats(quantizer, codes: torch.Tensor) -> dict[str, float]:
    """Usage and perplexity of ``codes``, computed from ``quantizer.codebook_size`` and
    ``codebook_shared`` alone: what the training log records for every quantizer.

    Empty when the quantizer has no codebook (no ``codebook_size``, or zero
    tokens per position): usage is then simply absent.
    """
    size = getattr(quantizer, "codebook_size", None)
    if codes is None or not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        return {}
    shared = bool(getattr(quantizer, "codebook_shared", True))
    return {k: float(v) for k, v in usage_stats(codes, size, shared=shared).items()}
