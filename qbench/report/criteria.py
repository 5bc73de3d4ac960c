"""A study's criteria, evaluated on its families' Holm-adjusted verdicts (rules: docs/statistics.md).

- ``at_least``: at least ``count`` comparisons of the family have ``verdict``;
- ``all``: every comparison of the family (or of its listed ``contrasts``) has ``verdict``;
- ``same_sign``: every comparison that either family establishes (above or
  below its reference after Holm) has an estimate on the same side in the
  other family: budget doubling does not reorder what either budget shows;
- ``same_verdicts``, ``spearman``, ``kendall``: verdict flips between two
  families and rank agreement of a between family's two sides
  (qbench.report.agreement).

The verdict is the first of the criterion's two words when the rule holds
(``met`` by default), the second otherwise; with no comparison to judge it is
``untested``.  The detail names the numbers it was decided on.
"""

from __future__ import annotations

import math

from qbench.report.agreement import rank_agreement, same_verdicts
from qbench.report.claim import Claim
from qbench.report.columns import fmt
from qbench.report.multiplicity import ABOVE, BELOW, UNTESTED
from qbench.report.studies import Criterion, Family, Study


def signed(value: float) -> str:
    return f"+{fmt(value)}" if value > 0 else fmt(value)


def pvalue(value: float) -> str:
    return f"{value:.2g}" if math.isfinite(value) else "—"


def _describe(claim: Claim) -> str:
    return f"{claim.key} {signed(claim.estimate)} (Holm p {pvalue(claim.p_holm)})"


def _rows(criterion: Criterion, family_id: str, by_family: list[tuple[Family, list[Claim]]]) -> list[Claim]:
    """The comparisons of a declared family, over every family it expanded into (``each``)."""
    rows = [c for family, claims in by_family if family.id == family_id or family.id.startswith(f"{family_id}@")
            for c in claims]
    if criterion.contrasts and family_id == criterion.family:
        rows = [c for c in rows if c.key in criterion.contrasts]
    return rows


def _at_least(criterion: Criterion, rows: list[Claim]) -> tuple[bool | None, str]:
    hits = [c for c in rows if c.verdict == criterion.verdict]
    rest = [c for c in rows if c.verdict != criterion.verdict]
    detail = (f"{len(hits)} of {len(rows)} {criterion.verdict} after Holm (needs {criterion.count})"
              + (f": {'; '.join(map(_describe, hits))}" if hits else "")
              + (f"; not {criterion.verdict}: {'; '.join(map(_describe, rest))}" if rest else ""))
    return len(hits) >= criterion.count, detail


def _all(criterion: Criterion, rows: list[Claim]) -> tuple[bool | None, str]:
    hits = [c for c in rows if c.verdict == criterion.verdict]
    rest = [c for c in rows if c.verdict != criterion.verdict]
    detail = f"{len(hits)} of {len(rows)} {criterion.verdict} after Holm" + (
        f"; not {criterion.verdict}: {'; '.join(f'{_describe(c)}: {c.verdict}' for c in rest)}" if rest else "")
    return not rest, detail


def _same_sign(rows: list[Claim], versus: list[Claim]) -> tuple[bool | None, str]:
    other = {c.key: c for c in versus}
    settled, flipped, drifted = [], [], []
    for claim in rows:
        twin = other.get(claim.key)
        if twin is None:
            continue
        same = (claim.estimate - claim.against) * (twin.estimate - twin.against) > 0
        established = {claim.verdict, twin.verdict} & {ABOVE, BELOW}
        pair = f"{claim.key} {signed(claim.estimate)} ({claim.verdict}) against {signed(twin.estimate)} ({twin.verdict})"
        if established:
            (settled if same else flipped).append(pair)
        elif not same:
            drifted.append(pair)
    detail = (f"{len(settled) + len(flipped)} comparisons established at either budget, {len(flipped)} change sign"
              + (f": {'; '.join(flipped)}" if flipped else "")
              + (f"; same sign: {'; '.join(settled)}" if settled else "")
              + (f"; estimates that change sign, established at neither: {'; '.join(drifted)}" if drifted else ""))
    return (not flipped) if settled or flipped else None, detail  # nothing established: nothing to keep


def evaluate(study: Study, criterion: Criterion, by_family: list[tuple[Family, list[Claim]]]) -> list[Claim]:
    """The criterion's claims: one, or one per family an ``each`` expanded into for the rank rules."""
    rows = _rows(criterion, criterion.family, by_family)
    if criterion.rule == "same_verdicts":
        return same_verdicts(study, criterion, rows, _rows(criterion, criterion.versus, by_family))
    if criterion.rule in ("spearman", "kendall"):
        return rank_agreement(study, criterion, rows)
    return [_evaluate(study, criterion, rows, by_family)]


def _evaluate(study: Study, criterion: Criterion, rows: list[Claim], by_family) -> Claim:
    m = None
    if not rows or any(c.verdict == UNTESTED for c in rows):
        verdict, detail = UNTESTED, f"{len(rows)} comparisons, {sum(c.verdict == UNTESTED for c in rows)} untested"
        count = math.nan
    else:
        if criterion.rule == "at_least":
            holds, detail = _at_least(criterion, rows)
        elif criterion.rule == "all":
            holds, detail = _all(criterion, rows)
        else:
            holds, detail = _same_sign(rows, _rows(criterion, criterion.versus, by_family))
        verdict = UNTESTED if holds is None else criterion.words[0] if holds else criterion.words[1]
        count = float(sum(c.verdict == criterion.verdict for c in rows)) if criterion.rule != "same_sign" else math.nan
        m = len(rows)
    if criterion.note:
        detail = f"{detail}. {criterion.note}"
    return Claim(id=f"{study.name}/{criterion.id}", study=study.name, family=criterion.family, kind="criterion",
                 method=criterion.rule, contrast=criterion.title, verdict=verdict, title=criterion.title, n=len(rows), estimate=count,
                 m=m, detail=detail, metric=rows[0].metric if rows else "")
