"""Whether two readings of the same quantizers agree: verdicts that flip, and rank correlation.

Criteria over families already computed (qbench.report.criteria), for the
default-against-tuned comparison of docs/tuning.md:

- ``same_verdicts``: the comparisons of ``family`` whose verdict differs from
  the same comparison of ``versus`` (GSQ's paired verdicts with hand-set
  options against those with tuned options: ``lfq: above -> ties``).  Met
  when none flips; its estimate is the number that flip.
- ``spearman`` / ``kendall``: the rank correlation (scipy.stats) between the
  two sides of a ``between`` family over its quantizers: the ``from`` side's
  means against the ``to`` side's, each over the seeds its comparison paired.
  Met when the two orders are the same (coefficient 1); the estimate is the
  coefficient, ``p`` scipy's test of no association.  One claim per family
  an ``each`` expanded into (one ranking per rate).

Comparisons pair by the values an ``each`` expanded them at and their own
name, so ``vs-gsq@rate=10/lfq`` meets ``default-vs-gsq@rate=10/lfq``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from scipy import stats

from qbench.report.claim import Claim
from qbench.report.columns import fmt
from qbench.report.multiplicity import UNTESTED
from qbench.report.studies import Criterion, Study

MIN_RANKED = 3  # below three quantizers an order has no correlation worth a p


def _place(claim: Claim) -> str:
    """Where an ``each`` put the comparison (``rate=10``), "" for a family declared whole."""
    return claim.family.partition("@")[2]


def _named(place: str, key: str) -> str:
    return f"{key}@{place}" if place else key


def same_verdicts(study: Study, criterion: Criterion, rows: list[Claim], versus: list[Claim]) -> list[Claim]:
    other = {(_place(c), c.key): c for c in versus}
    flipped, kept, unpaired = [], [], []
    for claim in rows:
        twin = other.pop((_place(claim), claim.key), None)
        if twin is None:
            unpaired.append(_named(_place(claim), claim.key))
            continue
        pair = f"{_named(_place(claim), claim.key)} {twin.verdict} -> {claim.verdict}"
        (kept if twin.verdict == claim.verdict else flipped).append(pair)
    unpaired += [_named(*place_key) for place_key in other]
    compared = len(flipped) + len(kept)
    untested = any(c.verdict == UNTESTED for c in (*rows, *versus))
    if not compared or untested:
        verdict, count = UNTESTED, math.nan
        detail = f"{compared} comparisons in both families" + (", some untested" if untested else "")
    else:
        verdict, count = criterion.words[0] if not flipped else criterion.words[1], float(len(flipped))
        detail = (f"{len(flipped)} of {compared} verdicts differ ({criterion.versus} -> {criterion.family})"
                  + (f": {'; '.join(flipped)}" if flipped else "") + (f"; the same: {'; '.join(kept)}" if kept else ""))
    if unpaired:
        detail += f"; in one family only: {', '.join(unpaired)}"
    return [_claim(study, criterion, criterion.id, verdict, detail, n=compared, estimate=count, rows=rows)]


def _order(means: dict[str, float]) -> str:
    return " > ".join(f"{q} {fmt(v)}" for q, v in sorted(means.items(), key=lambda item: -item[1]))


def rank_agreement(study: Study, criterion: Criterion, rows: list[Claim]) -> list[Claim]:
    correlate: Callable = stats.spearmanr if criterion.rule == "spearman" else stats.kendalltau
    symbol = "Spearman rho" if criterion.rule == "spearman" else "Kendall tau-b"
    places: dict[str, list[Claim]] = {}
    for claim in rows:
        places.setdefault(_place(claim), []).append(claim)
    found = []
    for place, claims in places.items():
        usable = [c for c in claims if math.isfinite(c.reference_mean) and math.isfinite(c.test_mean)]
        quantizers = [c.key.split(".", 1)[0] for c in usable]
        before = dict(zip(quantizers, (c.reference_mean for c in usable)))
        after = dict(zip(quantizers, (c.test_mean for c in usable)))
        cid = _named(place, criterion.id)
        if len(usable) < MIN_RANKED:
            found.append(_claim(study, criterion, cid, UNTESTED, f"{len(usable)} quantizers ranked (needs {MIN_RANKED})",
                                n=len(usable), rows=claims))
            continue
        result = correlate(list(before.values()), list(after.values()))
        coefficient, p = float(result.statistic), float(result.pvalue)
        same = [q for q, _ in sorted(before.items(), key=lambda i: -i[1])] == \
               [q for q, _ in sorted(after.items(), key=lambda i: -i[1])]
        detail = (f"{symbol} {fmt(coefficient)} (p {p:.2g}) over {len(usable)} quantizers; "
                  f"{criterion.family} from: {_order(before)}; to: {_order(after)}")
        found.append(_claim(study, criterion, cid, criterion.words[0] if same else criterion.words[1], detail,
                            n=len(usable), estimate=coefficient, p=p, rows=claims))
    return found or [_claim(study, criterion, criterion.id, UNTESTED, "no comparison of the family in these runs",
                            n=0, rows=[])]


def _claim(study: Study, criterion: Criterion, cid: str, verdict: str, detail: str, *, n: int,
           rows: list[Claim], estimate: float = math.nan, p: float = math.nan) -> Claim:
    if criterion.note:
        detail = f"{detail}. {criterion.note}"
    return Claim(id=f"{study.name}/{cid}", study=study.name, family=criterion.family, kind="criterion",
                 method=criterion.rule, contrast=criterion.title, verdict=verdict, title=criterion.title, n=n,
                 estimate=estimate, p=p, m=n, detail=detail, metric=rows[0].metric if rows else "")
