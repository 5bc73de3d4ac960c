"""Verdicts computed, not written: every claim of a report, one row each, and ``claims.csv``.

A claim is one comparison of a declared family (qbench.report.studies), with
its raw and Holm-adjusted p and its verdict word (qbench.report.multiplicity),
one criterion evaluated on those adjusted results (qbench.report.criteria),
or one statement of a law fit (qbench.report.lawcheck).  The page prints
verdict words only from these rows, and ``claims.csv`` holds the same rows
with the runs each was computed from, so anyone can recompute it.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any

import pandas as pd

from qbench.errors import ConfigError
from qbench.report.claim import Claim
from qbench.report.columns import fmt
from qbench.report.contrasts import Contrast, contrasts, coordinate, name, select, show
from qbench.report.criteria import evaluate, pvalue, signed
from qbench.report.curves import quantized
from qbench.report.multiplicity import direction, holm
from qbench.report.rows import counted
from qbench.report.sections import Section
from qbench.report.studies import Family, Study


def _expand(runs: pd.DataFrame, family: Family) -> list[Family]:
    """A family declared with ``each`` is one family per value of those keys (its own Holm correction)."""
    if not family.each:
        return [family]
    chosen = select(runs, family)
    combos = sorted({tuple(coordinate(r, k) for k in family.each) for _, r in chosen.iterrows()},
                    key=lambda t: tuple((v is None, str(type(v)), v) for v in t))
    expanded = []
    for combo in combos:
        if None in combo:
            continue
        words = ", ".join(f"{name(k)}={show(v)}" for k, v in zip(family.each, combo))
        expanded.append(dataclasses.replace(
            family, id=f"{family.id}@{words.replace(', ', ',')}", title=f"{family.title} ({words})",
            at={**family.at, **dict(zip(family.each, combo))}, each=()))
    return expanded


def _family_claims(study: Study, family: Family, found: list[Contrast]) -> list[Claim]:
    adjusted = holm([c.p for c in found])
    m = sum(1 for p in adjusted if math.isfinite(p))
    return [Claim(
        id=f"{study.name}/{family.id}/{c.key}", study=study.name, family=family.id, kind="comparison",
        contrast=c.text, verdict=direction(c.estimate, q, family.against), title=family.title, method=family.kind,
        metric=family.metric,
        n=c.n, estimate=c.estimate, low=c.low, high=c.high, against=family.against, p=c.p, p_holm=q, m=m,
        posthoc=family.posthoc, detail=family.note, seeds=c.seeds, test_runs=c.test_runs,
        reference_runs=c.reference_runs, test_mean=c.test_mean, reference_mean=c.reference_mean,
    ) for c, q in zip(found, adjusted)]


def study_runs(report: Any, names: list[str]) -> pd.DataFrame:
    """The successful quantized runs of these sweeps, each (configuration, seed) once."""
    runs = report.runs[report.runs["sweep"].isin(names)]
    return quantized(counted(runs))


def study_claims(report: Any, study: Study) -> tuple[list[Claim], list[tuple[Family, list[Claim]]]]:
    """Every claim of ``study`` over the report's runs, and each family with its comparisons."""
    columns = {c.key: c for c in report.metrics}
    by_family: list[tuple[Family, list[Claim]]] = []
    for declared in study.families:
        column = columns.get(declared.metric)
        if column is None:
            raise ConfigError(f"study {study.name}: family {declared.id}: these runs record no metric "
                              f"{declared.metric!r}; they hold: {', '.join(columns) or '(none)'}")
        runs = study_runs(report, [study.name, *study.joins, *declared.sweeps])
        for family in _expand(runs, declared):
            by_family.append((family, _family_claims(study, family, contrasts(runs, family, column))))
    claims = list(itertools.chain.from_iterable(rows for _, rows in by_family))
    criteria = [claim for criterion in study.criteria for claim in evaluate(study, criterion, by_family)]
    return claims + criteria, by_family


def _estimate(claim: Claim) -> str:
    if not math.isfinite(claim.estimate):
        return "—"
    interval = f" [{signed(claim.low)}, {signed(claim.high)}]" if math.isfinite(claim.low) else ""
    return signed(claim.estimate) + interval


def family_section(study: str, family: Family, claims: list[Claim], key: str) -> Section:
    frame = pd.DataFrame([{
        "claim": f"`{c.id}`", "contrast": c.contrast, "n": c.n, "estimate [95% CI]": _estimate(c),
        "p": pvalue(c.p), "Holm p": pvalue(c.p_holm), "verdict": c.verdict,
    } for c in claims])
    m = claims[0].m if claims else 0
    against = f"{fmt(family.against)}" if family.against else "0"
    notes = [f"{family.metric}, paired by seed (test − reference); the verdict is above or below {against} when the "
             f"Holm-adjusted p over the {m} comparisons of this family is under 0.05, ties otherwise"]
    if family.posthoc:
        notes.append("post-hoc: this family was chosen after the data were seen; read it as exploratory")
    if family.note:
        notes.append(family.note)
    if not claims:
        notes.append("no comparison of this family is in these runs yet")
    prefix = "post-hoc " if family.posthoc else ""
    return Section(title=f"{prefix}family {study}/{family.id}: {family.title}", key=key, frame=frame, notes=notes)


def criteria_section(study: str, claims: list[Claim], key: str) -> Section:
    frame = pd.DataFrame([{"claim": f"`{c.id}`", "criterion": c.contrast, "verdict": c.verdict, "decided on": c.detail}
                          for c in claims])
    return Section(title=f"criteria of {study}", key=key, frame=frame,
                   notes=["each criterion is evaluated by code on its families' Holm-adjusted verdicts "
                          "(docs/statistics.md)"])


def claims_sections(report: Any, studies: dict[str, Study]) -> tuple[list[Claim], list[Section]]:
    """The claims of every declared study that has a table in ``report``, and their sections."""
    claims, sections = [], []
    for table in report.tables:
        study = studies.get(table.sweep) if table.sweep else None
        if study is None:
            continue
        found, by_family = study_claims(report, study)
        claims += found
        for family, rows in by_family:
            sections.append(family_section(study.name, family, rows, f"{table.key}-claims-{family.id}"))
        criteria = [c for c in found if c.kind == "criterion"]
        if criteria:
            sections.append(criteria_section(study.name, criteria, f"{table.key}-criteria"))
    return claims, sections
