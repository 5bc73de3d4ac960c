"""A fused dot-product + max nearest-code kernel for CPU (see qbench.codebook.nearest_code).

``torch.compile`` turns the broadcast form max_c (x . c + b_c) into one loop
that never writes the (rows x V) score matrix, which at small d is what the
eager matmul + argmax spends its time on.  Shapes are fixed per block (the last
block of rows is padded) so a process compiles at most a few kernels.  If
compiling fails (no C++ compiler, an unsupported platform) the caller falls
back to the eager search, after one warning.
"""

from __future__ import annotations

import warnings

import torch

ROW_BLOCK = 1024
CODE_BLOCK = 2**16

_compiled = None
_failed = False


def _block_best(rows: torch.Tensor, codes: torch.Tensor, bias: torch.Tensor):
    scores = (rows[:, None, :] * codes[None, :, :]).sum(dim=-1) + bias
    return scores.max(dim=-1)


def _kernel():
    global _compiled
    if _compiled is None:
        _compiled = torch.compile(_block_best, dynamic=False)
    return _compiled


def fused_nearest(x: torch.Tensor, codes: torch.Tensor, bias: torch.Tensor) -> torch.Tensor | None:
    """Nearest codes of float32 ``x`` (N, d), or None when the kernel is unavailable."""
    global _failed
    if _failed:
        return None
    try:
        return _search(_kernel(), x, codes, bias)
    except Exception as exc:  # compiler missing or broken: the eager path still works
        _failed = True
        warnings.warn(f"fused nearest-code kernel unavailable ({type(exc).__name__}: {exc}); using matmul + argmax")
        return None


def _search(kernel, x, codes, bias):
    n, v = x.shape[0], codes.shape[0]
    out = torch.empty(n, dtype=torch.long)
    for r0 in range(0, n, ROW_BLOCK):
        rows = x[r0 : r0 + ROW_BLOCK]
        real = rows.shape[0]
        if real < ROW_BLOCK:  # pad so every call has the same shape (one compile)
            rows = torch.cat([rows, rows.new_zeros(ROW_BLOCK - real, rows.shape[1])])
        best_val = best_idx = None
        for c0 in range(0, v, CODE_BLOCK):
            val, idx = kernel(rows, codes[c0 : c0 + CODE_BLOCK], bias[c0 : c0 + CODE_BLOCK])
            if best_val is None:
                best_val, best_idx = val, idx.clone()
            else:
                better = val > best_val
                best_val = torch.where(better, val, best_val)
                best_idx = torch.where(better, idx + c0, best_idx)
        out[r0 : r0 + real] = best_idx[:real]
    return out
