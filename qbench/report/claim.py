"""One claim of a report: a row of ``claims.csv`` and the source of every verdict word on the page.

A claim is one comparison of a declared family, one criterion evaluated on a
family's adjusted results, or one statement about a law fit.  Numbers are
kept unrounded; ``claims.csv`` writes them with ``repr`` so that a check
recomputing them from the runs compares like with like.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass

COLUMNS = ("id", "study", "family", "kind", "method", "posthoc", "metric", "contrast", "n", "estimate", "ci_low", "ci_high",
           "against", "p", "p_holm", "m", "verdict", "detail", "seeds", "test_runs", "reference_runs", "family_title",
           "test_mean", "reference_mean")


@dataclass(frozen=True)
class Claim:
    id: str
    study: str
    family: str
    kind: str  # "comparison", "criterion" or "fit"
    contrast: str
    verdict: str
    title: str = ""  # the family's or criterion's title
    method: str = ""  # the family's kind (baseline, between, steps, pairs, bd), the criterion's rule, or "law"
    metric: str = ""
    n: int | None = None
    estimate: float = math.nan
    low: float = math.nan
    high: float = math.nan
    against: float = 0.0
    p: float = math.nan
    p_holm: float = math.nan
    m: int | None = None
    posthoc: bool = False
    detail: str = ""
    seeds: tuple = ()
    test_runs: tuple[str, ...] = ()
    reference_runs: tuple[str, ...] = ()
    test_mean: float = math.nan  # a comparison's two sides over its paired seeds (the tuned and default result)
    reference_mean: float = math.nan

    @property
    def key(self) -> str:
        """The part of the id after its family: the contrast's own name."""
        return self.id.rsplit("/", 1)[-1]


def _number(value: float | None) -> str:
    """The shortest text that reads back as the same float ("" for none): numpy scalars included."""
    if value is None or not math.isfinite(float(value)):
        return ""
    return repr(float(value))


def to_csv(claims: list[Claim]) -> str:
    """``claims.csv``: unrounded numbers (repr), lists joined by ';'."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for c in claims:
        writer.writerow([c.id, c.study, c.family, c.kind, c.method, "yes" if c.posthoc else "no", c.metric, c.contrast,
                         "" if c.n is None else c.n, _number(c.estimate), _number(c.low), _number(c.high),
                         _number(c.against), _number(c.p), _number(c.p_holm), "" if c.m is None else c.m,
                         c.verdict, c.detail, ";".join(map(str, c.seeds)), ";".join(c.test_runs),
                         ";".join(c.reference_runs), c.title, _number(c.test_mean), _number(c.reference_mean)])
    return buffer.getvalue()
