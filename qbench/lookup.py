"""Nearest-code search for the VQ family: bounded memory, float32, eager or fused.

Every lookup-based quantizer (VQ-VAE, arXiv 1711.00937; GSQ, arXiv
2412.02632; residual VQ, SimVQ, ...) asks one question: which codebook row is
nearest to each input row.  ``nearest_code`` answers it for codebooks of any
size without materialising the full (N x V) distance matrix.
"""

from __future__ import annotations

import os

import torch

from qbench._circle_lookup import circle_nearest, sign_nearest
from qbench._fused_kernel import fused_nearest
from qbench._grid_lookup import MAX_D as GRID_MAX_D
from qbench._grid_lookup import grid_nearest

# Nearest-neighbour search ------------------------------------------------------------
#
# The score of code c for a query x is x.c - |c|^2 / 2 (its argmax is the argmin
# of |x - c|^2; |x|^2 is the same for every code) or, with ``normalize``, x~.c~
# for l2-normalised x and c (argmax of cosine similarity = argmin of |x~ - c~|^2,
# GSQ's Eq. 5).  Scores are computed block by block: a block holds at most
# ``max_chunk_bytes`` of float32 scores, so the extra memory stays bounded however
# large the codebook is (V = 2^18 and more), and a running maximum carries the
# best code across blocks of codes when even one query row against all V codes
# would exceed the budget.
#
# At small d the cost is writing and re-reading the score block, not the
# arithmetic, and BLAS itself is memory-bound at an inner dimension of 16.  On
# CPU a fused dot-product + running-max kernel (qbench._fused_kernel, C++
# compiled once per machine) never writes the scores and runs at a large part of
# a square matmul's rate at every d (benchmarks/README.md).  It is used
# automatically for large searches and falls back to the eager path if
# compiling fails.  GPUs keep the plain matmul path.
#
# At d <= 2 the geometry allows exact search far below brute force: with
# ``normalize`` the sign at d = 1 and sorted angles at d = 2
# (qbench._circle_lookup); without, codes bucketed along one coordinate and a
# scan that stops once the rest are provably worse (qbench._strip_lookup).  All
# return exactly the fused brute-force kernel's codes, ties included (its fma
# rounding; BLAS rounds some block shapes differently, docs/design-notes.md).

DEFAULT_CHUNK_BYTES = 16 * 2**20
FUSED_MIN_SCORES = 2**27  # below ~1e8 scores the eager search takes under a second


def _use_fused(fused: bool | None, x: torch.Tensor, v: int) -> bool:
    if x.device.type != "cpu":  # GPU matmuls are fast; the kernel is CPU-only
        return False
    if fused is not None:
        return fused
    if os.environ.get("QBENCH_FUSED_LOOKUP", "1") == "0":
        return False
    return x.shape[0] * v >= FUSED_MIN_SCORES


def _structured(x: torch.Tensor, codes: torch.Tensor, max_chunk_bytes: int, fused: bool) -> torch.Tensor | None:
    """The d <= 2 exact search on normalised rows, or None where it does not apply."""
    if x.device.type != "cpu" or x.shape[1] > 2:
        return None
    if x.shape[1] == 1:
        return sign_nearest(x, codes)
    bias = torch.zeros(codes.shape[0])
    return circle_nearest(x, codes, lambda rows: _eager_nearest(rows, codes, bias, max_chunk_bytes), use_compiled=fused)


def nearest_code(
    x: torch.Tensor,
    codebook: torch.Tensor,
    *,
    normalize: bool = False,
    max_chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    fused: bool | None = None,
    structured: bool = True,
) -> torch.Tensor:
    """Index of the nearest codebook row for every row of ``x``: int64 (N,).

    ``x``: (N, d); ``codebook``: (V, d).  Euclidean distance, or the distance
    between l2-normalised vectors when ``normalize``.  Always computed in
    float32 without autograd, even under autocast (bf16 scores would collapse
    near-ties and halve codebook usage).  Extra memory: at most
    ``max_chunk_bytes`` of scores plus O(N + V * d).  ``fused``: True forces
    the compiled CPU kernel, False the eager one, None (default) picks the
    fused kernel on CPU for searches of at least ``FUSED_MIN_SCORES`` scores
    (environment ``QBENCH_FUSED_LOOKUP=0`` turns that off).  ``structured``:
    with ``normalize`` on CPU at d = 1 or 2, the exact sign / sorted-angle
    search, and without ``normalize`` at d <= 2 on a fused-size CPU search the
    grid search (both the fused brute force's codes exactly); False forces
    brute force.
    """
    if x.dim() != 2 or codebook.dim() != 2 or x.shape[1] != codebook.shape[1]:
        raise ValueError(
            f"nearest_code needs x (N, d) and codebook (V, d), got {tuple(x.shape)} and {tuple(codebook.shape)}"
        )
    with torch.no_grad(), torch.autocast(device_type=x.device.type, enabled=False):
        x = x.detach().float()
        codes = codebook.detach().float()
        if normalize:
            x = torch.nn.functional.normalize(x, dim=-1)
            codes = torch.nn.functional.normalize(codes, dim=-1)
            bias = torch.zeros(codes.shape[0], device=codes.device)
        else:
            bias = -0.5 * codes.pow(2).sum(dim=-1)
        if x.shape[0] == 0:
            return torch.empty(0, dtype=torch.long, device=x.device)
        use_fused = _use_fused(fused, x, codes.shape[0])
        if normalize and structured:
            found = _structured(x, codes, max_chunk_bytes, use_fused)
            if found is not None:
                return found
        if not normalize and structured and use_fused and x.shape[1] <= GRID_MAX_D:
            found = grid_nearest(x, codes, bias, lambda rows: _brute(rows, codes, bias, True, max_chunk_bytes))
            if found is not None:
                return found
        return _brute(x, codes, bias, use_fused, max_chunk_bytes)


def _brute(x: torch.Tensor, codes: torch.Tensor, bias: torch.Tensor, use_fused: bool, max_chunk_bytes: int):
    if use_fused:
        found = fused_nearest(x, codes, bias, fallback=_eager_nearest)
        if found is not None:
            return found
    return _eager_nearest(x, codes, bias, max_chunk_bytes)


def _eager_nearest(x: torch.Tensor, codes: torch.Tensor, bias: torch.Tensor, max_chunk_bytes: int) -> torch.Tensor:
    n, v = x.shape[0], codes.shape[0]
    budget = max(1, int(max_chunk_bytes) // 4)  # float32 scores per block
    code_block = min(v, budget)
    row_block = max(1, budget // code_block)
    out = torch.empty(n, dtype=torch.long, device=x.device)
    codes_t = codes.t()
    for r0 in range(0, n, row_block):
        rows = x[r0 : r0 + row_block]
        best_val = best_idx = None
        for c0 in range(0, v, code_block):
            scores = torch.addmm(bias[c0 : c0 + code_block], rows, codes_t[:, c0 : c0 + code_block])
            val, idx = scores.max(dim=1)
            if best_val is None:
                best_val, best_idx = val, idx
            else:
                better = val > best_val  # strict: ties keep the lower index
                best_val = torch.where(better, val, best_val)
                best_idx = torch.where(better, idx + c0, best_idx)
        out[r0 : r0 + row_block] = best_idx
    return out
