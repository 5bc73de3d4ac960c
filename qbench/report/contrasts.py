"""The comparisons a declared family names, computed from the runs (kinds: docs/statistics.md).

Every comparison pairs runs by seed: ``test - reference`` per seed, its mean,
95% t interval and two-sided p (against 0, or against the family's margin
``against``).  A run is placed by its coordinates: the values of its sweep
point, its nominal rate (the ladder's rung, else its bits per position
rounded), its quantizer options, then any recipe key (``train.steps``) from
its own record (qbench.report.runinfo); the key ``sweep`` is the study a run
belongs to, so a ``between`` family along it pairs each quantizer of one
study with the same quantizer of another (the tuning gain).  A family whose keys do not single
out one configuration per place is a declaration error, said in one line.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from qbench.errors import ConfigError
from qbench.report import runinfo
from qbench.report.baseline import per_seed, shared_seeds
from qbench.report.columns import Column
from qbench.report.curves import curves, seed_values, short_key
from qbench.report.stats import one_sample, paired_difference
from qbench.report.studies import Family


@dataclass(frozen=True)
class Contrast:
    key: str  # the last part of its claim id
    text: str  # what it compares, in words
    n: int
    estimate: float
    low: float
    high: float
    p: float
    seeds: tuple
    test_runs: tuple[str, ...]
    reference_runs: tuple[str, ...]
    test_mean: float = math.nan  # the two sides' own means over the paired seeds
    reference_mean: float = math.nan


def show(value: Any) -> str:
    """64.0 -> "64": coordinates as a reader writes them."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return ",".join(map(show, value)) if isinstance(value, (list, tuple)) else str(value)


def normal(value: Any) -> Any:
    """A comparable form: numbers as floats, lists as tuples."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return float(value)
    return tuple(normal(v) for v in value) if isinstance(value, list) else value


def name(key: str) -> str:
    """How a key reads in a claim: its last part (``model.latent_dim`` -> ``latent_dim``)."""
    return key.rsplit(".", 1)[-1]


def coordinate(run: pd.Series, key: str) -> Any:
    """The run's value of ``key``: its study, sweep point, nominal rate, quantizer option or recipe value."""
    if key == "sweep":
        return run.get("sweep") or None
    point = json.loads(run["point"]) if run.get("sweep") else {}
    for k, v in point.items():
        if key in (k, short_key(k)):
            return normal(v)
    bits = run.get("bits")
    if key == "rate":  # no ladder: the nominal rung (FSQ's 9.97 bits is the 10-bit rung)
        return None if bits is None or pd.isna(bits) else float(round(float(bits)))
    options = json.loads(run["options"])
    if key.startswith("quantizers."):
        parts = key.split(".", 2)
        return normal(options.get(parts[2])) if len(parts) == 3 and parts[1] == run["quantizer"] else None
    if key in options:
        return normal(options[key])
    return normal(runinfo.recipe_value(run["run_dir"], key)) if "." in key else None


def select(runs: pd.DataFrame, family: Family) -> pd.DataFrame:
    """The family's runs: its quantizers, seeds and ``at`` values."""
    keep = pd.Series(True, index=runs.index)
    if family.quantizers:
        keep &= runs["quantizer"].isin(family.quantizers)
    if family.seeds:
        keep &= runs["seed"].isin(family.seeds)
    for key, value in family.at.items():
        keep &= pd.Series([coordinate(run, key) == normal(value) for _, run in runs.iterrows()], index=runs.index,
                          dtype=bool)
    return runs[keep]


def _places(runs: pd.DataFrame, keys: list[str]) -> dict[tuple, dict[Any, str]]:
    """(quantizer, *by values) -> {along value: group}; raises where a place holds two configurations."""
    *line_keys, along = keys
    found: dict[tuple, dict[Any, str]] = {}
    for _, run in runs.drop_duplicates("group").iterrows():
        line = (run["quantizer"], *(coordinate(run, k) for k in line_keys))
        value = coordinate(run, along) if along else None
        groups = found.setdefault(line, {})
        if groups.get(value, run["group"]) != run["group"]:
            where = ", ".join(f"{k}={show(v)}" for k, v in zip(["quantizer", *line_keys, along], [*line, value]) if k)
            raise ConfigError(f"two configurations of {run['quantizer']} sit at {where} ({run['label']} and another); "
                              "narrow the family with at, by or quantizers")
        groups[value] = run["group"]
    return dict(sorted(found.items(), key=lambda item: tuple(_order(v) for v in item[0])))


def _order(value: Any) -> tuple:
    return (0, value, "") if isinstance(value, float) else (1, 0.0, str(value))


def _runs_of(runs: pd.DataFrame, group: str, seeds: tuple) -> tuple[str, ...]:
    rows = runs[(runs["group"] == group) & runs["seed"].isin(seeds)].sort_values("seed")
    return tuple(rows["run_dir"])


def _pair(runs, values, test: str, reference: str, family: Family, key: str, text: str) -> Contrast | None:
    diff = paired_difference(values.get(test, {}), values.get(reference, {}))
    if diff is None:
        return None
    p = diff.pvalue
    if family.against and diff.n >= 2:  # a margin: test the mean difference against it, not against 0
        deltas = [values[test][s] - values[reference][s] - family.against for s in diff.seeds]
        p = one_sample(deltas)[1]
    return Contrast(key, text, diff.n, diff.mean, diff.low, diff.high, p, diff.seeds,
                    _runs_of(runs, test, diff.seeds), _runs_of(runs, reference, diff.seeds),
                    _mean(values[test], diff.seeds), _mean(values[reference], diff.seeds))


def _mean(by_seed: dict, seeds: tuple) -> float:
    return sum(by_seed[s] for s in seeds) / len(seeds)


def _where(by: tuple[str, ...], line: tuple) -> tuple[str, str]:
    """(id part, words) of the by-values of a line."""
    pairs = [(name(k), show(v)) for k, v in zip(by, line)]
    return "".join(f".{k}={v}" for k, v in pairs), "".join(f", {k}={v}" for k, v in pairs)


def _baseline(runs, values, family: Family) -> list[Contrast]:
    found = []
    lines: dict[tuple, dict[str, str]] = {}
    for (quantizer, *by), groups in _places(runs, [*family.by, ""]).items():
        lines.setdefault(tuple(by), {})[quantizer] = groups[None]
    for by, groups in lines.items():
        anchor = groups.get(family.baseline)
        if anchor is None:
            continue
        part, words = _where(family.by, by)
        for quantizer in sorted(set(groups) - {family.baseline}):
            text = f"{quantizer} − {family.baseline}{words}"
            found.append(_pair(runs, values, groups[quantizer], anchor, family, f"{quantizer}{part}", text))
    return found


def _along(runs, values, family: Family) -> list[Contrast]:
    found = []
    along = name(family.along)
    for (quantizer, *by), groups in _places(runs, [*family.by, family.along]).items():
        part, words = _where(family.by, tuple(by))
        if family.kind == "between":
            steps = [(normal(family.start), normal(family.end))]
        else:
            ordered = sorted(v for v in groups if v is not None)
            pairs = zip(ordered, ordered[1:]) if family.kind == "steps" else itertools.combinations(ordered, 2)
            steps = [(b, a) if family.descending else (a, b) for a, b in pairs]
        for start, end in steps:
            if start in groups and end in groups:
                key = f"{quantizer}{part}" + (f".{show(end)}-vs-{show(start)}" if family.kind != "between" else "")
                text = f"{quantizer}: {along}={show(end)} − {along}={show(start)}{words}"
                found.append(_pair(runs, values, groups[end], groups[start], family, key, text))
    return found


def _bd(runs, values, family: Family, column: Column) -> list[Contrast]:
    found = []
    everything = curves(runs)
    bits = runs.groupby("group")["bits"].mean().to_dict()
    anchors = [c for c in everything if c.quantizer == family.baseline and len(c.groups) > 1]
    for test in everything:
        if test.quantizer == family.baseline or len(test.groups) < 2:
            continue
        for anchor in (a for a in anchors if a.recipe_fixed == test.recipe_fixed):
            seeds = sorted(shared_seeds(values, anchor, test))
            _, metric = per_seed(values, bits, anchor, test, column, "cubic", set(seeds))
            kept = tuple(s for s, v in zip(seeds, metric) if math.isfinite(v))
            ci, p = one_sample([v - family.against for v in metric])
            if ci is None:
                continue
            key = test.quantizer if test.label == test.quantizer else f"{test.quantizer}.{test.label}"
            text = f"BD-{column.heading} of {test.label} against {anchor.label}"
            found.append(Contrast(key.replace(" ", ""), text, ci.n, ci.mean + family.against, ci.low + family.against,
                                  ci.high + family.against, p, kept,
                                  tuple(d for g in test.groups for d in _runs_of(runs, g, kept)),
                                  tuple(d for g in anchor.groups for d in _runs_of(runs, g, kept))))
    return found


def contrasts(runs: pd.DataFrame, family: Family, column: Column) -> list[Contrast]:
    """The comparisons of ``family`` among ``runs`` (successful, quantized, each seed once)."""
    chosen = select(runs[runs[f"{column.key}_status"] == "ok"], family)
    if chosen.empty:
        return []
    values = seed_values(chosen, column.key)
    try:
        if family.kind == "baseline":
            found = _baseline(chosen, values, family)
        elif family.kind == "bd":
            found = _bd(chosen, values, family, column)
        else:
            found = _along(chosen, values, family)
    except ConfigError as exc:
        raise ConfigError(f"family {family.id}: {exc}") from None
    return [c for c in found if c is not None]
