"""How the runs of one table form rate-distortion curves and comparable cells.

Every run has coordinates: the swept keys of its sweep point, or for a run
made outside a sweep its quantizer options (as ``quantizers.Q.OPTION``).
Its rung on the rate axis is the ladder's ``rate`` when the sweep has one,
else its bits per position.

A curve is one quantizer's configurations along the rate axis with
everything else held fixed.  Fixed are the recipe keys (``model.latent_dim``
...), and a quantizer option whose set of values is the same at every rung
(``groups`` swept across a whole ladder); an option whose values change
from rung to rung (the codebook size a ladder sets) moves along the curve.
Two configurations of one curve at one rung make it ambiguous; it is then
split into one curve per configuration.

A cell is what the ``--baseline`` comparison pairs within: the recipe keys
and the rung of a ladder (or, without a ladder, the recipe keys and the
options both quantizers were swept in).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from qbench.report.stats import mean_ci

# the metrics a rate-distortion comparison (curves, BD deltas) is drawn for
RD_METRICS = ("psnr", "ssim", "lpips", "rfid")

OPTION_PREFIX = "quantizers."


def short_key(key: str) -> str:
    """``quantizers.gsq.codebook_size`` -> ``codebook_size``: the row's quantizer says whose."""
    parts = key.split(".", 2)
    return parts[2] if key.startswith(OPTION_PREFIX) and len(parts) == 3 else key


def is_option(key: str) -> bool:
    return key.startswith(OPTION_PREFIX)


def coordinates(run: pd.Series) -> dict[str, Any]:
    point = json.loads(run["point"]) if run.get("sweep") else {}
    if run.get("sweep"):
        return {k: v for k, v in point.items() if k != "rate"}
    options = json.loads(run["options"])
    return {f"{OPTION_PREFIX}{run['quantizer']}.{k}": v for k, v in options.items()}


def rung(run: pd.Series) -> Any:
    point = json.loads(run["point"]) if run.get("sweep") else {}
    if "rate" in point:
        return point["rate"]
    return None if pd.isna(run["bits"]) else round(float(run["bits"]), 6)


def _hashable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True)


@dataclass
class Curve:
    label: str
    quantizer: str
    fixed: dict[str, Any]  # recipe keys and orthogonal options held fixed along it
    groups: list[str] = field(default_factory=list)  # configuration groups, by rate

    @property
    def recipe_fixed(self) -> dict[str, Any]:
        return {k: v for k, v in self.fixed.items() if not is_option(k)}


def _fixed_keys(runs: pd.DataFrame) -> set[str]:
    """The keys held fixed along one quantizer's curves (see the module docstring)."""
    by_rung: dict[Any, dict[str, set]] = {}
    keys: set[str] = set()
    for _, run in runs.iterrows():
        coords = coordinates(run)
        keys |= coords.keys()
        values = by_rung.setdefault(_hashable(rung(run)), {})
        for k, v in coords.items():
            values.setdefault(k, set()).add(_hashable(v))
    fixed = {k for k in keys if not is_option(k)}
    for k in keys - fixed:
        sets = [values.get(k, set()) for values in by_rung.values()]
        if all(s == sets[0] for s in sets):
            fixed.add(k)
    return fixed


def _describe(quantizer: str, fixed: dict[str, Any]) -> str:
    if not fixed:
        return quantizer
    shown = ", ".join(f"{short_key(k)}={v}" for k, v in sorted(fixed.items()) if k != f"{OPTION_PREFIX}{quantizer}.dim")
    return f"{quantizer} ({shown})" if shown else quantizer


def quantized(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs that have a rate: every run but the continuous ceilings."""
    return runs[~runs["continuous"].astype(bool)] if "continuous" in runs else runs


def ceilings(runs: pd.DataFrame) -> pd.DataFrame:
    """The successful continuous runs (the ``identity`` ceiling), which reports show as an upper bound."""
    if "continuous" not in runs:
        return runs.iloc[:0]
    return runs[runs["continuous"].astype(bool) & (runs["status"] == "ok")]


def curves(runs: pd.DataFrame) -> list[Curve]:
    """The curves of one table's successful runs, each with its groups ordered by rate.

    A continuous run (the ``identity`` ceiling) has no rate: it is never on a curve.
    """
    ok = quantized(runs[runs["status"] == "ok"])
    firsts = ok.drop_duplicates("group").set_index("group")
    bits = ok.groupby("group")["bits"].mean()
    found: list[Curve] = []
    for quantizer, same in ok.groupby("quantizer", sort=True):
        fixed_keys = _fixed_keys(same)
        by_fixed: dict[str, Curve] = {}
        for group in dict.fromkeys(same["group"]):
            fixed = {k: v for k, v in coordinates(firsts.loc[group]).items() if k in fixed_keys}
            curve = by_fixed.setdefault(_hashable(fixed), Curve(_describe(quantizer, fixed), quantizer, fixed))
            curve.groups.append(group)
        for curve in by_fixed.values():
            curve.groups.sort(key=lambda g: bits[g])
            rungs = {_hashable(rung(firsts.loc[g])) for g in curve.groups}
            if len(curve.groups) == 1 or len(rungs) < len(curve.groups):
                # one configuration, or two at one rate (ambiguous): a curve per configuration, named as its row
                found += [Curve(firsts.loc[g]["label"], quantizer, curve.fixed, [g]) for g in curve.groups]
            else:
                found.append(curve)
    return found


def seed_values(runs: pd.DataFrame, key: str) -> dict[str, dict[Any, float]]:
    """``{group: {seed: value}}`` of metric ``key`` over the successful runs, in one pass."""
    rows = runs[(runs["status"] == "ok") & (runs[f"{key}_status"] == "ok")]
    table: dict[str, dict[Any, float]] = {}
    for group, seed, value in zip(rows["group"], rows["seed"], rows[key]):
        table.setdefault(group, {})[seed] = float(value)
    return table


def curve_points(runs: pd.DataFrame, curve: Curve, key: str) -> dict[str, np.ndarray]:
    """Seed-averaged points of ``key`` along ``curve``: bits, mean, t-interval bounds, n."""
    values = seed_values(runs, key)
    bits_of = runs.groupby("group")["bits"].mean()
    bits, mean, low, high, n = [], [], [], [], []
    for group in curve.groups:
        ci = mean_ci(values.get(group, {}).values())
        if ci is None:
            continue
        bits.append(float(bits_of[group]))
        mean.append(ci.mean)
        low.append(ci.low)
        high.append(ci.high)
        n.append(ci.n)
    return {k: np.asarray(v, dtype=float) for k, v in (("bits", bits), ("mean", mean), ("low", low), ("high", high), ("n", n))}


def cell(run: pd.Series, option_keys: set[str] = frozenset()) -> str:
    """What a run is paired on against the baseline: recipe keys, rung of a ladder, shared options."""
    coords = coordinates(run) if run.get("sweep") else {}
    point = json.loads(run["point"]) if run.get("sweep") else {}
    key = {k: v for k, v in coords.items() if not is_option(k)}
    if "rate" in point:
        key["rate"] = point["rate"]
    else:
        key.update({short_key(k): v for k, v in coords.items() if short_key(k) in option_keys})
    return _hashable(key)
