"""From a sweep file to its points: the Cartesian product, per quantizer.

A point is (quantizer, seed, recipe values).  For each quantizer the axes are
every ``[grid]`` key, every ``[zip]`` group (its lists move together) and the
ladder's rates, crossed with the seeds.  Keys ``quantizers.X.*`` belong to
quantizer X alone: they are dropped from the other quantizers' axes, so a
grid over GSQ's groups does not multiply VQ's points.  A zip group left with
no key for a quantizer adds no axis for it.

Each point records what was swept (``swept``: the dotted keys of its grid and
zip values, plus ``rate`` from a ladder or a ``rate`` label) apart from what
it applies (``values``: ``set``, the ladder's options and the swept keys).
Points run seeds-first: seed 0 of every configuration before seed 1, so a
sweep stopped early still covers every configuration.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from qbench.sweeps.ladder import Ladder
from qbench.sweeps.spec import RATE, SweepSpec

# one choice along one axis: (values applied to the recipe, values recorded as swept)
Choice = tuple[dict[str, Any], dict[str, Any]]


@dataclass(frozen=True)
class Point:
    quantizer: str
    seed: int | None  # None: the recipe's seed
    values: dict[str, Any]  # dotted recipe key -> value, everything this point sets
    swept: dict[str, Any]  # what the sweep varied here (the run record's sweep.point)

    def label(self) -> str:
        shown = " ".join(f"{short_key(k)}={_show(v)}" for k, v in self.swept.items())
        return f"{self.quantizer} {shown}".strip()


def short_key(key: str) -> str:
    """``quantizers.gsq.groups`` -> ``groups``; recipe keys stay whole (``train.steps``)."""
    parts = key.split(".")
    return ".".join(parts[2:]) if parts[0] == "quantizers" and len(parts) > 2 else key


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _applies(key: str, quantizer: str) -> bool:
    parts = key.split(".")
    return parts[0] != "quantizers" or parts[1] == quantizer


def _axis_of(lists: dict[str, list[Any]], quantizer: str) -> list[Choice]:
    """The choices of one zip group (or one grid key) for ``quantizer``; [] when none applies."""
    keys = [k for k in lists if _applies(k, quantizer)]
    if not keys:
        return []
    length = len(lists[keys[0]])
    choices = []
    for i in range(length):
        swept = {k: lists[k][i] for k in keys}
        applied = {k: v for k, v in swept.items() if k != RATE}
        choices.append((applied, swept))
    return choices


def _ladder_axis(ladder: Ladder, rates: list[float], quantizer: str) -> list[Choice]:
    choices = []
    for rate in rates:
        options = ladder.options(quantizer, rate)
        # a dotted key is a recipe key (a tuned ladder's optim.lr, model.latent_dim); the rest are the quantizer's
        applied = {k if "." in k else f"quantizers.{quantizer}.{k}": v for k, v in options.items()}
        choices.append((applied, {RATE: rate}))
    return choices


def expand(spec: SweepSpec, ladder: Ladder | None) -> list[Point]:
    """Every point of the sweep, seeds-first."""
    per_quantizer: dict[str, list[Choice]] = {}
    for quantizer in spec.quantizers:
        axes = [_axis_of({k: v}, quantizer) for k, v in spec.grid.items()]
        axes += [_axis_of(group, quantizer) for group in spec.zips]
        if ladder is not None:
            axes.append(_ladder_axis(ladder, spec.rates or [], quantizer))
        fixed = {k: v for k, v in spec.fixed.items() if _applies(k, quantizer)}
        combos = []
        for picks in itertools.product(*[a for a in axes if a]):
            applied, swept = dict(fixed), {}
            for one_applied, one_swept in picks:
                overlap = set(applied) & set(one_applied)
                if overlap:  # the ladder sets an option that set/grid/zip also give
                    key = sorted(overlap)[0]
                    raise spec.error(f"key {key!r} is set both by the ladder and by set/grid/zip; give it once")
                applied.update(one_applied)
                swept.update(one_swept)
            combos.append((applied, swept))
        per_quantizer[quantizer] = combos
    seeds = spec.seeds if spec.seeds is not None else [None]
    return [
        Point(quantizer, seed, applied, swept)
        for seed in seeds
        for quantizer in spec.quantizers
        for applied, swept in per_quantizer[quantizer]
    ]
