"""``qbench report --baseline NAME``: every configuration against a baseline.

Two views per table:

- paired differences: test − baseline per metric, over the seeds both ran,
  within one cell (the same sweep point and rate rung, see qbench.report.curves):
  mean, 95% t interval, two-sided p of ``scipy.stats.ttest_rel``, and the
  Holm-adjusted p over the rows of one cell and metric;
- Bjøntegaard deltas of each quantizer's rate-distortion curve against the
  baseline's curve at the same recipe point (qbench.report.bd), with a t interval
  over the per-seed BD values, and the BD-metric's p, raw and Holm-adjusted.

These tables print no verdict words: verdicts come from the families a study
declares (qbench.report.claims).

NAME is a quantizer name (every configuration of it is a baseline) or one
configuration's label as the tables print it.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from qbench.errors import ConfigError, suggest
from qbench.report import bd
from qbench.report.columns import Column, fmt
from qbench.report.curves import (
    RD_METRICS,
    Curve,
    cell,
    coordinates,
    curve_points,
    curves,
    is_option,
    quantized,
    seed_values,
    short_key,
)
from qbench.report.multiplicity import holm
from qbench.report.rows import row_labels
from qbench.report.sections import Section
from qbench.report.stats import one_sample, paired_difference


def _is_baseline(run: pd.Series, name: str) -> bool:
    return name in (run["quantizer"], run["config"], run["label"])


def check_baseline(runs: pd.DataFrame, name: str) -> None:
    known = sorted(set(runs["quantizer"]) | set(runs["config"]) | set(runs["label"]))
    if not any(_is_baseline(run, name) for _, run in runs.iterrows()):
        hint = suggest(name, known)
        raise ConfigError(f"unknown --baseline {name!r}{hint}; the runs hold: {', '.join(sorted(set(runs['quantizer'])))}")


def _interval(low: float, high: float, spec: str = "") -> str:
    return f"[{fmt(low, spec)}, {fmt(high, spec)}]" if math.isfinite(low) else "—"


def _pvalue(p: float) -> str:
    return f"{p:.2g}" if math.isfinite(p) else "—"


def _describe_cell(text: str) -> str:
    return ", ".join(f"{k}={v}" for k, v in json.loads(text).items())


def _option_keys(runs: pd.DataFrame, quantizer: str) -> set[str]:
    keys = set()
    for _, run in runs[runs["quantizer"] == quantizer].iterrows():
        if run["sweep"]:
            keys |= {short_key(k) for k in coordinates(run) if is_option(k)}
    return keys


def paired_table(runs: pd.DataFrame, metrics: list[Column], name: str) -> pd.DataFrame:
    ok = quantized(runs[runs["status"] == "ok"])  # a continuous ceiling is in no paired test or BD
    firsts = ok.drop_duplicates("group")
    anchors = firsts[[_is_baseline(r, name) for _, r in firsts.iterrows()]]
    labels = row_labels(runs)
    by_metric = {c.key: seed_values(ok, c.key) for c in metrics if not c.descriptive}
    rows = []
    for _, test in firsts.iterrows():
        if _is_baseline(test, name):
            continue
        shared = set()
        for quantizer in set(anchors["quantizer"]):
            shared |= _option_keys(ok, test["quantizer"]) & _option_keys(ok, quantizer)
        where = cell(test, shared)
        for _, anchor in anchors.iterrows():
            if cell(anchor, shared) != where:
                continue
            for column in metrics:
                if column.descriptive:
                    continue
                values = by_metric[column.key]
                diff = paired_difference(values.get(test["group"], {}), values.get(anchor["group"], {}))
                if diff is None:
                    continue
                rows.append({
                    "quantizer": labels[test["group"]], "at": _describe_cell(where), "vs": labels[anchor["group"]],
                    "metric": column.title, "Δ mean": fmt(diff.mean, column.format),
                    "95% CI": _interval(diff.low, diff.high, column.format), "p": diff.pvalue, "Holm p": math.nan,
                    "pairs": diff.n,
                })
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    # the table's own families: every configuration against the baseline in one cell, for one metric
    for _, family in frame.groupby(["at", "metric"], sort=False):
        frame.loc[family.index, "Holm p"] = holm(family["p"].tolist())
    frame["p"], frame["Holm p"] = frame["p"].map(_pvalue), frame["Holm p"].map(_pvalue)
    if not frame["at"].any():
        frame = frame.drop(columns="at")
    return frame


def shared_seeds(values: dict[str, dict], anchor: Curve, test: Curve) -> set:
    """The seeds both curves have at every rate: a rung with extra seeds must not tilt a curve."""
    return set.intersection(*(set(values.get(g, {})) for g in anchor.groups + test.groups))


def per_seed(values: dict[str, dict], bits: dict[str, float], anchor: Curve, test: Curve, column: Column,
              method: str, seeds: set) -> tuple[list[float], list[float]]:
    """BD-rate and BD-metric per seed, from ``{group: {seed: value}}`` (qbench.report.curves.seed_values)."""
    rates, metric = [], []
    for seed in sorted(seeds):
        ra, ma = [bits[g] for g in anchor.groups], [values[g][seed] for g in anchor.groups]
        rt, mt = [bits[g] for g in test.groups], [values[g][seed] for g in test.groups]
        rates.append(bd.bd_rate(ra, ma, rt, mt, method=method, higher_is_better=column.higher_is_better is not False).value)
        metric.append(bd.bd_metric(ra, ma, rt, mt, method=method).value)
    return rates, metric


def bd_table(runs: pd.DataFrame, metrics: list[Column], name: str, method: str) -> tuple[pd.DataFrame, list[str]]:
    """BD rows of every curve against the baseline's, and the configurations measured at one rate only."""
    ok = quantized(runs[runs["status"] == "ok"])  # a continuous ceiling is in no paired test or BD
    labels = ok.drop_duplicates("group").set_index("group")
    all_curves = curves(ok)
    anchors = [c for c in all_curves if all(_is_baseline(labels.loc[g], name) for g in c.groups)]
    columns = [c for c in metrics if c.key in RD_METRICS]
    values = {c.key: seed_values(ok, c.key) for c in columns}
    bits = ok.groupby("group")["bits"].mean().to_dict()
    rows, single_rate = [], []
    for test in all_curves:
        if test in anchors:
            continue
        for anchor in (a for a in anchors if a.recipe_fixed == test.recipe_fixed):
            if len(test.groups) < 2:
                if len(anchor.groups) >= 2:
                    single_rate.append(test.label)
                continue  # a single rate is a paired comparison, not a curve
            for column in columns:
                seeds = shared_seeds(values[column.key], anchor, test)
                shared = ok[ok["seed"].isin(seeds)]
                pa, pt = curve_points(shared, anchor, column.key), curve_points(shared, test, column.key)
                if not len(pa["bits"]) or not len(pt["bits"]):
                    continue
                hib = column.higher_is_better is not False
                rate = bd.bd_rate(pa["bits"], pa["mean"], pt["bits"], pt["mean"], method=method, higher_is_better=hib)
                metric = bd.bd_metric(pa["bits"], pa["mean"], pt["bits"], pt["mean"], method=method)
                seed_rates, seed_metric = per_seed(values[column.key], bits, anchor, test, column, method, seeds)
                rate_ci, _ = one_sample(seed_rates)
                metric_ci, metric_p = one_sample(seed_metric)
                notes = list(dict.fromkeys(rate.notes + metric.notes))
                for what, ci in (("BD-rate", rate_ci), ("BD-metric", metric_ci)):
                    defined = ci.n if ci else 0
                    if defined < len(seeds):
                        notes.append(f"{what} is defined for {defined} of the {len(seeds)} seeds")
                rows.append({
                    "quantizer": test.label, "vs": anchor.label, "metric": column.title,
                    # two estimates, each labelled: the BD of the seed-mean curves, and the mean of the
                    # per-seed BD values with its interval (the interval belongs to the second, never the first)
                    "BD-rate (%), mean curves": fmt(rate.value, "+.2f"),
                    "BD-rate (%), per seed": fmt(rate_ci.mean, "+.2f") if rate_ci else "—",
                    "BD-rate 95% CI": _interval(rate_ci.low, rate_ci.high, "+.2f") if rate_ci else "—",
                    "BD-metric, mean curves": fmt(metric.value, "+.3g"),
                    "BD-metric, per seed": fmt(metric_ci.mean, "+.3g") if metric_ci else "—",
                    "BD-metric 95% CI": _interval(metric_ci.low, metric_ci.high, "+.3g") if metric_ci else "—",
                    "BD-metric p": metric_p, "Holm p": math.nan,
                    "points": f"{len(pt['bits'])} vs {len(pa['bits'])}",
                    "overlap": f"{rate.overlap:.0%} / {metric.overlap:.0%}" if math.isfinite(rate.overlap) and math.isfinite(metric.overlap) else "—",
                    "seeds": len(seeds),
                    "notes": "; ".join(notes) or "",
                })
    frame = pd.DataFrame(rows)
    if not frame.empty:  # one family per metric: every curve's BD-metric against the baseline's
        for _, family in frame.groupby("metric", sort=False):
            frame.loc[family.index, "Holm p"] = holm(family["BD-metric p"].tolist())
        frame["BD-metric p"], frame["Holm p"] = frame["BD-metric p"].map(_pvalue), frame["Holm p"].map(_pvalue)
    return frame, sorted(set(single_rate))


def baseline_sections(report: Any, name: str, method: str) -> list[Section]:
    if method not in bd.METHODS:
        raise ConfigError(f"--bd-method must be one of {', '.join(bd.METHODS)}, got {method!r}")
    check_baseline(report.runs, name)
    sections = []
    for table in report.tables:
        paired = paired_table(table.runs, report.metrics, name)
        if not paired.empty:
            sections.append(Section(
                title=f"against {name}: paired differences, {table.title}", key=f"{table.key}-paired",
                frame=paired,
                notes=["Δ = configuration − baseline over the seeds both ran; 95% Student t interval; "
                       "p: two-sided paired t test (scipy.stats.ttest_rel); Holm p: adjusted over the rows of one "
                       "cell and metric (this table's family). Verdicts are only drawn from the families a study "
                       "declares (the claims sections)."],
            ))
        bd_frame, single_rate = bd_table(table.runs, report.metrics, name, method)
        if not bd_frame.empty:
            sections.append(Section(
                title=f"against {name}: Bjøntegaard deltas ({method}), {table.title}", key=f"{table.key}-bd",
                frame=bd_frame,
                notes=["BD-rate: % bits for the same quality (negative = fewer bits); BD-metric: mean "
                       "difference in the metric's unit over the common rate range (its arrow says which "
                       "sign is better). 'mean curves': BD between the seed-mean curves; 'per seed': the mean "
                       "of the per-seed BD values, and its 95% t interval (the two can differ: BD is not "
                       "linear in the curves); overlap: metric / rate range. BD-metric p: one-sample t test of "
                       "the per-seed values against 0; Holm p: adjusted over this table's rows of one metric.",
                       *([f"measured at one rate only, so no curve (the paired table compares them there): "
                          f"{', '.join(single_rate)}"] if single_rate else [])],
            ))
    return sections
