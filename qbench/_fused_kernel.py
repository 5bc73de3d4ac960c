"""A fused nearest-code kernel for CPU (see qbench.lookup.nearest_code).

At small d the eager matmul + argmax spends its time writing and re-reading the
(rows x V) score matrix.  ``torch.compile`` turns the broadcast form below
into loops that never store a score: one pass finds each row's best score
(a vectorised max), a second recomputes the scores with the same expression and
takes the lowest index that reaches it (a vectorised min over float indices,
exact below 2^24).  That is the same code, ties included, as the first index of
the maximum.  Should the second pass ever miss the maximum (it cannot when both
passes run the same instructions, but a compiler is free to differ), those
rows are redone by the eager search.

Shapes are fixed per block (the last blocks are padded: rows with zeros, codes
with a -inf bias), so a process compiles one kernel per (d, block) shape.  If
compiling fails (no C++ compiler, an unsupported platform) the caller falls
back to the eager search after one warning.
"""

from __future__ import annotations

import warnings

import torch

ROW_BLOCK = 1024
CODE_BLOCK = 2**16  # float indices are exact far beyond this

_compiled = None
_failed = False


def _best_in_block(rows_t, codes_t, bias, index):
    # rows_t (d, R), codes_t (d, C): contiguous along R and C so loads vectorise
    scores = bias[None, :] + rows_t[0][:, None] * codes_t[0][None, :]
    for j in range(1, rows_t.shape[0]):
        scores = scores + rows_t[j][:, None] * codes_t[j][None, :]
    best = scores.amax(dim=-1, keepdim=True)
    first = torch.where(scores == best, index[None, :], float("inf")).amin(dim=-1)
    return best.squeeze(1), first


def _kernel():
    global _compiled
    if _compiled is None:
        _compiled = torch.compile(_best_in_block, dynamic=False)
    return _compiled


def fused_nearest(x: torch.Tensor, codes: torch.Tensor, bias: torch.Tensor, *, fallback) -> torch.Tensor | None:
    """Nearest codes of float32 ``x`` (N, d) among ``codes`` (V, d) with per-code
    ``bias`` (score = x.c + bias), or None when the kernel is unavailable.

    ``fallback(rows, codes, bias, max_chunk_bytes)`` is the eager search, used
    for any row the kernel's second pass misses."""
    global _failed
    if _failed:
        return None
    try:
        return _search(_kernel(), x, codes, bias, fallback)
    except Exception as exc:  # compiler missing or broken: the eager path still works
        _failed = True
        warnings.warn(f"fused nearest-code kernel unavailable ({type(exc).__name__}: {exc}); using matmul + argmax",
                      stacklevel=2)
        return None


def _pad_columns(t: torch.Tensor, size: int, value: float) -> torch.Tensor:
    if t.shape[-1] == size:
        return t.contiguous()
    pad = t.new_full((*t.shape[:-1], size - t.shape[-1]), value)
    return torch.cat([t, pad], dim=-1)


def _search(kernel, x, codes, bias, fallback):
    n, v = x.shape[0], codes.shape[0]
    code_block = min(v, CODE_BLOCK)
    blocks = []
    for c0 in range(0, v, code_block):
        index = torch.arange(c0, c0 + code_block, dtype=torch.float32)
        blocks.append((
            _pad_columns(codes[c0 : c0 + code_block].t(), code_block, 0.0),
            _pad_columns(bias[c0 : c0 + code_block], code_block, float("-inf")),
            index,
        ))
    out = torch.empty(n, dtype=torch.long)
    for r0 in range(0, n, ROW_BLOCK):
        rows_t = _pad_columns(x[r0 : r0 + ROW_BLOCK].t(), ROW_BLOCK, 0.0)
        real = min(ROW_BLOCK, n - r0)
        best_val = best_idx = None
        for codes_t, block_bias, index in blocks:
            val, idx = kernel(rows_t, codes_t, block_bias, index)
            if best_val is None:
                best_val, best_idx = val, idx
            else:
                better = val > best_val  # strict: ties keep the lower index
                best_val = torch.where(better, val, best_val)
                best_idx = torch.where(better, idx, best_idx)
        missed = torch.isinf(best_idx[:real])
        if missed.any():
            rows = x[r0 : r0 + real][missed]
            best_idx[:real][missed] = fallback(rows, codes, bias, 2**24).float()
        out[r0 : r0 + real] = best_idx[:real].long()
    return out
