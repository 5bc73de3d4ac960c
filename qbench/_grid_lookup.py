"""Exact Euclidean nearest-code search at d = 1 and 2 on a grid of cells.

GSQ (arXiv 2412.02632, section 3.2) turns its l2 lookup off at d <= 2, so its
G = 8 and G = 16 rows at D = 16 search V = 2^18 codes by Euclidean distance,
where the sign and circle searches (qbench._circle_lookup) do not apply.  In
one or two dimensions the nearest code need not be found by brute force
either: count the codes into a grid of cells over their bounding box (about
four codes a cell, a counting sort: O(V)), scan the query's cell, then ring
after ring of cells around it, and stop once the gap to the next ring proves
every code beyond it worse.

"Worse" is judged on the brute-force kernel's own float32 scores
(bias + x.c, a chain of fused multiply-adds), not on exact distances, so the
result is the fused kernel's codes exactly, ties and near-ties included.  The
stopping rule leaves a margin ``KAPPA`` (|c|^2 + |x| |c|) for the rounding of
the bias and of the dot product, whose first-order bound is d 2^-24 (|c|^2 + |x| |c|).

At d = 2 a codebook whose codes mostly lie on one circle is searched by angle
instead, where the grid's empty inside would send every query in it to the
brute force.  That is GSQ's spherical init, and its codebooks later too: the
codes never picked keep their common norm (AdamW's weight decay scales them
alike).  Codes within 1e-5 (relative) of the median norm form the ring; the
others, at most V / 8, are searched for every query by the brute-force tile.
Ring codes are counted into buckets of angle and each query scans outwards
from its own angle until the angular gap proves the rest worse
(bias + x.c <= b_max + |x| r_max cos a).

The scans run in the compiled kernel (qbench/_nearest_kernel.cpp).  A query
inside the codes' cloud scores a few dozen codes.  Duplicated codes (GSQ's
spherical init at d = 1 is V codes of +-1) are kept once, at their first
index.  A query that would visit more than ``CAP`` cells and codes (far
outside the codes' cloud, inside a ring of codes, in a dense cluster) is
handed to the brute force, as is any input that is not finite or is huge;
and when more than an eighth of the first 64 queries are handed over, all of
them are.  So no input costs much more than the brute force.
"""

from __future__ import annotations

import torch

from qbench._fused_kernel import compiled

MAX_D = 2
KAPPA = 2.0**-20  # per unit of |c|^2 + |x| |c|: 8 x the rounding bound d 2^-24 at d = 2
LIMIT = 1e15  # values beyond it (products could overflow float32) go to the brute force
CAP = 2**12  # cells and codes one query may visit before it is handed to the brute force


def grid_nearest(x: torch.Tensor, codes: torch.Tensor, bias: torch.Tensor, brute) -> torch.Tensor | None:
    """Nearest codes of ``x`` (N, d) among ``codes`` (V, d) by bias + x.c, float32 on CPU, d <= MAX_D.

    ``brute(rows)`` is the brute-force search for rows the scan hands back.
    None when the kernel is unavailable or the inputs break the preconditions."""
    if x.shape[1] > MAX_D or x.shape[0] == 0 or codes.shape[0] == 0:
        return None
    module = compiled()
    if module is None:
        return None
    args = (x.contiguous(), codes.contiguous(), bias.contiguous(), KAPPA, CAP, LIMIT)
    # the kernels check finiteness and LIMIT themselves, in their one pass over the codes
    found = module.ring(*args) if x.shape[1] == 2 else x.new_empty(0)
    if found.shape[0] != x.shape[0]:  # not a ring of codes
        found = module.grid(*args)
    if found.shape[0] != x.shape[0]:  # a code or bias is not finite or exceeds LIMIT
        return None
    missed = found < 0
    if bool(missed.any()):
        found[missed] = brute(x[missed])
    return found
