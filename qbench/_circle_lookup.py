"""Exact nearest-code search on the unit circle (d = 2) and the unit line (d = 1).

With l2-normalised lookups (GSQ, arXiv 2412.02632, Eq. 5) a 2-d code is an
angle and a 1-d code a sign, so the nearest code needs no scan of all V codes:

- d = 1: every normalised value is +1, -1 or 0, and every score (x.c) is
  exactly +-1 or 0.  The brute-force answer follows from three indices: the
  first +1 code, the first -1 code and the first zero code.
- d = 2: codes sorted by angle, one binary search per query.  The brute-force
  search compares float32 dot products, which near the maximum are flat
  (cos(t) = 1 - t^2 / 2: at V = 2^18 a dozen neighbours can round to the same
  score), so "nearest angle" alone differs from it on near-ties.  Each query
  therefore takes every code whose cosine is within ``MARGIN`` of the nearest
  angle's (a margin above the rounding of the normalisation and of the dot
  product together), scores those candidates with the brute-force kernel's
  own rounding, fma(u1, c1, u0 * c0) (one float32 rounding of a fused
  multiply-add, as the compiled kernel and BLAS's gemm compute a 2-term dot),
  and keeps the first index of the maximum: the brute-force codes exactly,
  ties and near-ties included.

The candidate scan runs in the compiled kernel (qbench/_nearest_kernel.cpp)
for large searches, and as tensor operations otherwise (or without a
compiler): O((N + V) log V) work plus about 200 scores per query at V = 2^18.
Anything outside the preconditions
(non-finite values, a code or query whose norm is neither 0 nor 1 to within
``NORM_TOLERANCE``) returns None or is handed to the brute-force search.
"""

from __future__ import annotations

import math

import torch

from qbench._fused_kernel import compiled

NORM_TOLERANCE = 5e-7  # F.normalize leaves norms within ~2e-7 of 1
MARGIN = 3e-6  # in cosine: > 2 x (2 x NORM_TOLERANCE + 2^-23, the rounding of a 2-term dot)
ROW_BLOCK = 4096
MAX_SCORES = 2**21  # candidate scores per block: memory stays bounded (about 100 MiB of temporaries)


def _unit_or_zero(norms: torch.Tensor) -> torch.Tensor:
    return (norms == 0) | ((norms - 1).abs() <= NORM_TOLERANCE)


def sign_nearest(u: torch.Tensor, codes: torch.Tensor) -> torch.Tensor | None:
    """d = 1: ``u`` (N, 1), ``codes`` (V, 1), both already normalised (values +-1 or 0)."""
    c = codes[:, 0]
    if not bool(((c == 1) | (c == -1) | (c == 0)).all()) or not bool(torch.isfinite(u).all()):
        return None

    def first(mask: torch.Tensor) -> int | None:
        at = int(torch.argmax(mask.to(torch.uint8)))  # the first maximum: the first hit, if any
        return at if bool(mask[at]) else None

    plus, minus, zero = first(c == 1), first(c == -1), first(c == 0)
    # a positive query scores +1 on a +1 code, 0 on a zero code, -1 on a -1 code; all equal -> index 0
    for_pos = plus if plus is not None else zero if zero is not None else 0
    for_neg = minus if minus is not None else zero if zero is not None else 0
    q = u[:, 0]
    out = torch.zeros(q.shape[0], dtype=torch.long)  # zero queries score 0 everywhere: index 0
    out[q > 0] = for_pos
    out[q < 0] = for_neg
    return out


def circle_nearest(u: torch.Tensor, codes: torch.Tensor, brute, use_compiled: bool = False) -> torch.Tensor | None:
    """d = 2: ``u`` (N, 2) and ``codes`` (V, 2) already l2-normalised, float32 on CPU.

    ``brute(rows)`` is the brute-force search for rows outside the preconditions.
    None when the codes themselves break them.  ``use_compiled``: scan the
    candidates in the compiled kernel (same rule, same rounding, about 100x
    faster; compiled once per machine) instead of with tensor operations."""
    if not (bool(torch.isfinite(u).all()) and bool(torch.isfinite(codes).all())):
        return None
    code_norm = codes.double().norm(dim=1)
    if not bool(_unit_or_zero(code_norm).all()):
        return None
    nonzero = (code_norm > 0).nonzero().squeeze(1)
    if nonzero.numel() == 0:
        return None
    zero_codes = (code_norm == 0).nonzero().squeeze(1)
    first_zero = int(zero_codes[0]) if zero_codes.numel() else None

    cd = codes[nonzero].double()
    angle = torch.atan2(cd[:, 1], cd[:, 0])
    angle, order = torch.sort(angle, stable=True)  # ties keep index order
    index = nonzero[order]
    n = u.shape[0]
    out = torch.zeros(n, dtype=torch.long)
    q_norm = u.double().norm(dim=1)
    regular = _unit_or_zero(q_norm)
    live = regular & (q_norm > 0)  # zero queries score 0 on every code: index 0, as brute force
    module = compiled() if use_compiled else None
    if module is not None:
        rows = live.nonzero().squeeze(1)
        found = module.circle(u[rows].contiguous(), angle.contiguous(), codes[index, 0].contiguous(),
                              codes[index, 1].contiguous(), index.contiguous(),
                              -1 if first_zero is None else first_zero, MARGIN)
        out[rows] = found
        rest = (~regular) | (out < 0)
        if bool(rest.any()):
            out[rest] = brute(u[rest])
        return out

    m = angle.shape[0]
    # three turns, so every window [a - w, a + w] with w < pi is one contiguous run
    ext_angle = torch.cat([angle - 2 * math.pi, angle, angle + 2 * math.pi])
    ext_index = index.repeat(3)
    ext_c0, ext_c1 = codes[ext_index, 0].contiguous(), codes[ext_index, 1].contiguous()

    qa = torch.atan2(u[:, 1].double(), u[:, 0].double())

    # nearest angle among the sorted codes: the neighbours on either side
    pos = torch.searchsorted(ext_angle, qa).clamp(1, 3 * m - 1)
    gap = torch.minimum((qa - ext_angle[pos - 1]).abs(), (ext_angle[pos] - qa).abs())
    floor = torch.cos(gap) - MARGIN
    wide = floor <= -1 + 1e-9  # the window would take the whole circle: scan instead
    half = torch.acos(floor.clamp(-1.0, 1.0)) + 1e-9
    lo = torch.searchsorted(ext_angle, qa - half)
    hi = torch.searchsorted(ext_angle, qa + half, right=True)

    todo = (live & ~wide).nonzero().squeeze(1)
    for r0 in range(0, todo.shape[0], ROW_BLOCK):
        block = todo[r0 : r0 + ROW_BLOCK]
        _search_block(u, block, lo[block], hi[block], ext_c0, ext_c1, ext_index, first_zero, out)

    rest = (~regular) | (live & wide)
    if bool(rest.any()):
        out[rest] = brute(u[rest])
    return out


def fma_score(u0: torch.Tensor, u1: torch.Tensor, c0: torch.Tensor, c1: torch.Tensor) -> torch.Tensor:
    """float32 fma(u1, c1, u0 * c0), rounded once, as the fused kernel and BLAS compute a 2-term dot.

    The product u1 * c1 is exact in float64; the float64 sum is corrected
    (two-sum) wherever it lands exactly on a float32 rounding midpoint, the
    one case where rounding twice differs from rounding once."""
    p = u1.double() * c1.double()
    q = (u0 * c0).double()
    s = p + q
    t = s - p
    err = (p - (s - t)) + (q - t)
    r = s.float()
    rd = r.double()
    toward = torch.where(s > rd, torch.tensor(float("inf")), torch.tensor(float("-inf")))
    other = torch.nextafter(r, toward)
    midpoint = (err != 0) & (s != rd) & ((rd + other.double()) * 0.5 == s)
    up = torch.maximum(r, other)
    down = torch.minimum(r, other)
    fixed = torch.where(err > 0, up, down)
    return torch.where(midpoint, fixed, r)


def _search_block(u, block, lo, hi, ext_c0, ext_c1, ext_index, first_zero, out):
    width = int((hi - lo).max())
    if width * block.shape[0] > MAX_SCORES and block.shape[0] > 1:  # keep memory bounded
        half = block.shape[0] // 2
        _search_block(u, block[:half], lo[:half], hi[:half], ext_c0, ext_c1, ext_index, first_zero, out)
        _search_block(u, block[half:], lo[half:], hi[half:], ext_c0, ext_c1, ext_index, first_zero, out)
        return
    pos = lo[:, None] + torch.arange(width)[None, :]
    inside = pos < hi[:, None]
    pos = pos.clamp(max=ext_index.shape[0] - 1)
    rows = u[block]
    scores = fma_score(rows[:, 0:1], rows[:, 1:2], ext_c0[pos], ext_c1[pos]).masked_fill_(~inside, float("-inf"))
    index = ext_index[pos]
    if first_zero is not None:  # a zero code scores exactly 0 and can win when every code is >= 90 degrees away
        scores = torch.cat([scores, scores.new_zeros(scores.shape[0], 1)], dim=1)
        index = torch.cat([index, index.new_full((index.shape[0], 1), first_zero)], dim=1)
    best = scores.max(dim=1, keepdim=True).values
    tied = torch.where(scores == best, index, torch.iinfo(torch.long).max)
    out[block] = tied.min(dim=1).values
