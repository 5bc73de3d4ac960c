"""Recipe overlays: a recipe file that names the recipe it extends and gives only what differs.

    extends = "cpu-converged"          # a recipe name, or a TOML file (found beside this one first)
    [optim]
    lr = 1.2e-3
    [quantizers.gsq]
    groups = 2
    codebook_size = 32

The overlay's tables merge into the base recipe's key by key, at every depth
(``[quantizers.gsq]`` above keeps the base's other gsq options); any other
value (a number, a string, a list) replaces the base's.  The result is named
after the overlay file unless it sets ``name``.  A base may extend another
recipe in turn.  ``qbench tune`` writes the best configuration of each study
as an overlay; ``qbench run --recipe OVERLAY.toml`` and a sweep file's
``recipe = "OVERLAY.toml"`` read it like any recipe, and ``--set`` applies on
top of the merged recipe.
"""

from __future__ import annotations

import copy
from typing import Any

EXTENDS = "extends"
MAX_DEPTH = 8  # overlays of overlays: deeper than this is a cycle


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` merged in: tables recursively, everything else replaced (neither is changed)."""
    merged = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged
