"""What identifies a run: recipe, quantizer, effective options, plugin provenance.

Computed once per run at the entry point and passed down.  Two runs belong
to one configuration (and become seeds of one table row) exactly when their
``config_hash`` is equal.  It covers:

- the recipe hash (everything but the quantizer tables, seed and names);
- the quantizer's name and its *effective* options: the factory's defaults,
  the spec's defaults and the recipe's table, so a changed default splits
  runs that passed no option;
- the effective options of the backbone and dataset;
- the distribution and version of every plugin the run used (quantizer,
  backbone, dataset, metrics), so runs of two plugin versions never
  aggregate.

The seed is recorded beside the hash, never in it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from qbench.platform.plugins import Registries
from qbench.recipe.config import Recipe, recipe_from_dict


def _digest(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def provenance(spec, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Where a registered thing came from: its plugin, distribution and version."""
    entry = {"name": spec.name, "plugin": spec.origin, "distribution": spec.distribution, "version": spec.version}
    if options is not None:
        entry["options"] = options
    return entry


@dataclass(frozen=True)
class RunIdentity:
    """The identity of one quantizer's run under one recipe (seed included, but not hashed)."""

    recipe: Recipe
    quantizer: str
    options: dict[str, Any]
    plugins: dict[str, Any] = field(default_factory=dict)
    given_options: dict[str, Any] = field(default_factory=dict)  # what the recipe set: for labels, not hashed
    # the hash of the recipe as given, where the quantizer's own keys (qbench.recipe.per_quantizer) made
    # ``recipe`` differ from it: the runs of one such recipe are one comparison table; "" otherwise
    comparison_hash: str = ""

    @property
    def seed(self) -> int:
        return self.recipe.seed

    @property
    def recipe_hash(self) -> str:
        return self.recipe.hash()

    @property
    def config_hash(self) -> str:
        return _digest({"recipe": self.recipe_hash, "quantizer": self.quantizer, "options": self.options,
                        "plugins": self.plugins})

    def to_dict(self) -> dict[str, Any]:
        """Plain data for checkpoints and records (``from_dict`` reads it back)."""
        return {"recipe": self.recipe.to_dict(), "quantizer": self.quantizer, "options": dict(self.options),
                "given_options": dict(self.given_options), "plugins": self.plugins,
                "config_hash": self.config_hash, "recipe_hash": self.recipe_hash,
                **({"comparison_hash": self.comparison_hash} if self.comparison_hash else {})}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunIdentity:
        return cls(recipe_from_dict(dict(data["recipe"])), str(data["quantizer"]), dict(data["options"]),
                   dict(data.get("plugins") or {}), dict(data.get("given_options") or {}),
                   str(data.get("comparison_hash") or ""))


def resolve(recipe: Recipe, quantizer: str, regs: Registries) -> RunIdentity:
    """The identity of ``quantizer``'s run under ``recipe``: options checked and filled in.

    Raises ``ConfigError`` for an unknown name or a bad option value, before
    anything is built.
    """
    given = recipe.quantizer_options(quantizer)
    options = regs.quantizers.effective_options(quantizer, **given)
    backbone = recipe.model.backbone
    backbone_options = regs.backbones.effective_options(backbone, latent_dim=recipe.model.latent_dim,
                                                        **recipe.model.options)
    dataset = regs.datasets.get(recipe.data.dataset)
    plugins = {
        "quantizer": provenance(regs.quantizers.get(quantizer)),
        "backbone": provenance(regs.backbones.get(backbone), backbone_options),
        "dataset": provenance(dataset),
        "metrics": {name: provenance(regs.metrics.get(name)) for name in recipe.eval.metrics},
    }
    return RunIdentity(recipe, quantizer, options, plugins, given)
