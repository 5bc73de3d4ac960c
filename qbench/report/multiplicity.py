"""One multiplicity rule for every verdict: Holm's step-down within a declared family.

A family is the set of comparisons a claim is drawn from ("each quantizer
against GSQ at 10 bits", "the 6 -> 12 bit gain of each quantizer"); the
study declares it (qbench.report.studies).  Holm (1979) controls the chance
of any false claim in the family at ``ALPHA`` under any dependence between
the tests: sort the m p-values, p_(1) <= ... <= p_(m), and take

    adjusted p_(i) = max over j <= i of min(1, (m - j + 1) p_(j)).

A comparison is then *above* or *below* its reference value (0, or a
declared margin) when its adjusted p is under ``ALPHA``, on the side its
estimate lies, and *ties* otherwise: the data do not separate it from the
reference.  A comparison without a p-value (fewer than 2 pairs) is not
tested and does not count in m.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

ALPHA = 0.05
ABOVE, BELOW, TIES, UNTESTED = "above", "below", "ties", "untested"


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values in the order given; NaN stays NaN and is not counted in m."""
    tested = sorted((p, i) for i, p in enumerate(pvalues) if p is not None and math.isfinite(p))
    m = len(tested)
    adjusted = [math.nan] * len(pvalues)
    running = 0.0
    for rank, (p, index) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[index] = running
    return adjusted


def direction(estimate: float, adjusted_p: float, against: float = 0.0, alpha: float = ALPHA) -> str:
    """The verdict word of one comparison from its Holm-adjusted p."""
    if adjusted_p is None or not math.isfinite(adjusted_p):
        return UNTESTED
    if adjusted_p >= alpha:
        return TIES
    return ABOVE if estimate > against else BELOW
