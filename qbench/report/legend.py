"""How a plot names and styles its series: one label per configuration, one colour, one line style per budget.

A table whose sweep varies a recipe key (a step budget ``train.steps``, the
latent width ``model.latent_dim``) holds configurations whose labels read alike
(``gsq (codebook_size=1024, groups=1)`` at 1000 and at 2000 steps): the
label gets the recipe keys that tell them apart, a configuration keeps one
colour, and each value of the first such key gets a line style of its own.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from qbench.report.curves import coordinates, is_option

LINE_STYLES = ("-", "--", ":", "-.")


def recipe_point(run: pd.Series) -> dict[str, Any]:
    """The recipe keys a sweep point set (``train.steps``): what a step-budget study varies."""
    return {k: v for k, v in coordinates(run).items() if not is_option(k)}


def varying(runs: pd.DataFrame) -> list[str]:
    """Recipe keys whose value differs between the table's configurations."""
    points = [recipe_point(run) for _, run in runs.drop_duplicates("group").iterrows()]
    keys = dict.fromkeys(k for p in points for k in p)
    return [k for k in keys if len({json.dumps(p.get(k)) for p in points}) > 1]


def with_point(label: str, point: dict[str, Any], keys: list[str]) -> str:
    shown = [f"{k}={point[k]}" for k in keys if k in point and f"{k}=" not in label]
    return f"{label} [{', '.join(shown)}]" if shown else label


def _numeric_first(text: str) -> tuple:
    value = json.loads(text)
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return (0, value, "") if number else (1, 0, text)


def display_labels(runs: pd.DataFrame) -> dict[str, str]:
    """Group -> its label, with the recipe keys that tell it from a like-named configuration (step budgets)."""
    keys = varying(runs)
    return {run["group"]: with_point(run["label"], recipe_point(run), keys)
            for _, run in runs.drop_duplicates("group").iterrows()}


def seed_note(seeds: list) -> str:
    """'(n=3, seeds 0-2)': the one seed set a plotted curve averages."""
    seeds = sorted(seeds)
    if len(seeds) == 1:
        return f"(n=1, seed {seeds[0]})"
    if seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"(n={len(seeds)}, seeds {seeds[0]}-{seeds[-1]})"
    return f"(n={len(seeds)}, seeds {','.join(map(str, seeds))})"


def styles(runs: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Group -> {"colour": what picks its colour, "linestyle": its budget's line style}."""
    keys = varying(runs)
    firsts = runs.drop_duplicates("group")
    values = sorted({json.dumps(recipe_point(r).get(keys[0])) for _, r in firsts.iterrows()}, key=_numeric_first) \
        if keys else []
    return {run["group"]: {"colour": run["label"], "linestyle": LINE_STYLES[
        values.index(json.dumps(recipe_point(run).get(keys[0]))) % len(LINE_STYLES)] if keys else "-"}
        for _, run in firsts.iterrows()}
