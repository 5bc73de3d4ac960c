"""Recipe keys one quantizer runs with: a tuned learning rate or latent width in its own table.

A dotted key inside ``[quantizers.NAME]`` is a recipe key for that
quantizer's runs, applied on top of the rest of the recipe (the same
convention as a tuned ladder's rows, docs/sweeps.md):

    [quantizers.gsq]
    groups = 2
    "optim.lr" = 0.0034        # gsq trains with this learning rate
    "model.latent_dim" = 4

Only the optimiser (``optim.*``) and the latent width (``model.latent_dim``)
may differ between quantizers: the data, the backbone, the step budget, the
losses and the evaluation stay one recipe for all of them, which is what
makes their table a comparison (the tuning study searched exactly these
shared knobs per quantizer, docs/tuning.md).  A ``--set`` of a key
overrides every quantizer's own value of it.  Each run records its
quantizer's resolved recipe, so its recipe hash is that of the plain recipe
with those values: a run of the tuned recipe and a run of its overlay are
one configuration.
"""

from __future__ import annotations

from typing import Any

PER_QUANTIZER = ("optim.", "model.latent_dim")


def recipe_keys(options: dict[str, Any]) -> dict[str, Any]:
    """The recipe keys (dotted) in a quantizer's table."""
    return {k: v for k, v in options.items() if "." in k}


def own_options(options: dict[str, Any]) -> dict[str, Any]:
    """A quantizer's table without its recipe keys: the options its factory receives."""
    return {k: v for k, v in options.items() if "." not in k}


def allowed(key: str) -> bool:
    return key == "model.latent_dim" or (key.startswith("optim.") and key.count(".") == 1)


def key_problems(quantizers: dict[str, Any]) -> list[str]:
    """One line per recipe key that a quantizer's table may not set."""
    found = []
    for name, options in quantizers.items():
        for key in recipe_keys(options if isinstance(options, dict) else {}):
            if not allowed(key):
                found.append(f"quantizers.{name}: recipe key {key!r} cannot differ between quantizers (only optim.* "
                             "and model.latent_dim can: data, backbone, steps, losses and evaluation stay one recipe)")
    return found


def resolved_table(table: dict[str, Any], quantizer: str, set_dotted) -> dict[str, Any]:
    """``table`` (plain recipe data) as ``quantizer`` runs it: its recipe keys applied, every table's removed."""
    quantizers = table.get("quantizers") or {}
    own = recipe_keys(quantizers.get(quantizer) or {})
    out = {**table, "quantizers": {n: own_options(o) for n, o in quantizers.items()}}
    for key, value in own.items():
        set_dotted(out, key, value)
    return out


def drop_overridden(table: dict[str, Any], keys) -> None:
    """``--set KEY=...`` wins over every quantizer's own ``KEY``: remove it from their tables."""
    for options in (table.get("quantizers") or {}).values():
        if isinstance(options, dict):
            for key in keys:
                options.pop(key, None)
