"""Time estimates for sweep points: measured where the output folder allows, else a rough constant.

A point's estimate is ``steps x seconds per step + OVERHEAD_S``.  Seconds per
step come from the finished runs already in the sweep's output folder
(``train.wall_time_s / train.steps`` of their ``metrics.json``), matched as
closely as they exist: same model, data, losses and precision (the recipe
keys that set the cost of a step) and the same quantizer and options; else
the same quantizer; else any quantizer.  A folder without a matching run
falls back to ``FALLBACK_S_PER_STEP``, a guess at a ``cpu-default`` point's
step at ``--jobs 2`` on 2 idle cores, and no better than a guess for any
other recipe or machine.
Measured times already include whatever parallelism the runs had.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from qbench.sweeps import existing

# A cpu-default point at --jobs 2 on 2 idle cores: one core per point, and one point on
# both cores runs ~3.3 steps/s (docs/training.md), so ~0.6 s per step per point if the
# work split perfectly; start-up (a fresh Python and torch) plus evaluation ~20 s.
# Guesses for idle cores: on a loaded machine both grow (docs/sweeps.md#how-many-jobs).
FALLBACK_S_PER_STEP = 0.6
OVERHEAD_S = 20.0


def cost_key(recipe: dict[str, Any]) -> str:
    """What sets the cost of one step: model, data, losses and precision (not steps, seed or names)."""
    train = recipe.get("train", {})
    shared = {k: recipe.get(k) for k in ("data", "model", "loss")}
    shared["precision"] = train.get("precision")
    shared["device"] = train.get("device")
    return hashlib.sha256(json.dumps(shared, sort_keys=True, default=str).encode()).hexdigest()[:12]


@dataclass
class CostIndex:
    """Measured seconds per step by (cost key, quantizer, options), (cost key, quantizer), (cost key)."""

    samples: dict[tuple, list[float]] = field(default_factory=dict)

    def add(self, recipe: dict[str, Any], quantizer: str, options: dict[str, Any], seconds_per_step: float) -> None:
        key = cost_key(recipe)
        exact = json.dumps(options, sort_keys=True, default=str)
        for k in ((key, quantizer, exact), (key, quantizer), (key,)):
            self.samples.setdefault(k, []).append(seconds_per_step)

    def lookup(self, recipe: dict[str, Any], quantizer: str, options: dict[str, Any]) -> float | None:
        key = cost_key(recipe)
        exact = json.dumps(options, sort_keys=True, default=str)
        for k in ((key, quantizer, exact), (key, quantizer), (key,)):
            if k in self.samples:
                return statistics.median(self.samples[k])
        return None

    @classmethod
    def from_folder(cls, out: str | Path) -> CostIndex:
        index = cls()
        for entry in existing.scan(out).values():
            if entry.done is None:
                continue
            record = entry.record or {}
            train = record.get("train", {})
            steps, wall = train.get("steps"), train.get("wall_time_s")
            try:
                recipe = tomllib.loads((entry.done / existing.CONFIG_FILE).read_text()).get("recipe", {})
            except (OSError, tomllib.TOMLDecodeError):
                continue
            if isinstance(steps, int) and steps > 0 and isinstance(wall, (int, float)) and wall > 0:
                run = record.get("run", {})
                index.add(recipe, str(run.get("quantizer")), run.get("options", {}), wall / steps)
        return index


def fill(planned: list, costs: CostIndex) -> str:
    """Set ``estimate_s`` on every planned point not yet done; return a note on where the numbers came from."""
    measured = guessed = 0
    for p in planned:
        if p.status == "done":
            p.estimate_s = 0.0
            continue
        recipe = p.identity.recipe.to_dict()
        per_step = costs.lookup(recipe, p.identity.quantizer, p.identity.options)
        if per_step is None:
            per_step, guessed = FALLBACK_S_PER_STEP, guessed + 1
        else:
            measured += 1
        p.estimate_s = p.identity.recipe.train.steps * per_step + OVERHEAD_S
    if not measured and not guessed:
        return ""
    parts = []
    if measured:
        parts.append(f"{measured} from finished runs in the output folder")
    if guessed:
        parts.append(f"{guessed} from a rough constant ({FALLBACK_S_PER_STEP} s/step + {OVERHEAD_S:.0f} s per point, "
                     "a cpu-default guess for 2 idle cores)")
    return "estimates: " + "; ".join(parts)
