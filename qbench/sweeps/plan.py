"""Planning a sweep: every point's recipe, identity and rate, checked before anything trains.

``build_plan`` resolves each point: its recipe (the sweep's recipe with the
point's values), its ``RunIdentity`` (``qbench.recipe.identity.resolve`` checks the
quantizer's name, option names and values) and its quantizer, built once per
distinct option set (the factory's own checks run, and ``bits_per_position``
is read from the object).  The first problem is one ``ConfigError`` naming
the sweep file and the point.  Two points with one identity and seed (a
swept key that changes nothing a run is identified by) are an error too.

Each point is then matched with the output folder (``existing``) and given a
time estimate (``estimate``).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qbench.errors import ConfigError
from qbench.platform.plugins import Registries
from qbench.recipe import config
from qbench.recipe.config import recipe_from_dict, recipe_table
from qbench.recipe.identity import RunIdentity, resolve
from qbench.sweeps import estimate, existing
from qbench.sweeps.ladder import Ladder, resolve_ladder
from qbench.sweeps.points import Point, expand
from qbench.sweeps.spec import SweepSpec


@dataclass
class PlannedPoint:
    index: int  # 1-based, in running order
    point: Point
    identity: RunIdentity
    bits: float  # the built quantizer's bits per position
    found: existing.Existing
    running: bool = False  # another process holds its lock
    estimate_s: float = 0.0

    @property
    def status(self) -> str:
        return "running" if self.running and self.found.status != "done" else self.found.status

    @property
    def label(self) -> str:
        return f"{self.point.label()} seed={self.identity.seed}"

    def block(self, spec: SweepSpec) -> dict[str, Any]:
        """The ``sweep`` record of this point's run (config.toml and metrics.json)."""
        return {"name": spec.name, "file": spec.path, "point": dict(self.point.swept)}


@dataclass
class Plan:
    spec: SweepSpec
    out: Path
    points: list[PlannedPoint]
    estimate_note: str = ""
    ladder: Ladder | None = None
    counts: dict[str, int] = field(default_factory=dict)

    def pending(self) -> list[PlannedPoint]:
        """Points to run now: not done and not running in another process."""
        return [p for p in self.points if p.status not in ("done", "running")]

    def estimate_s(self, parallel: int) -> float:
        """Wall time of the pending points, ``parallel`` at a time (a rough bound: longest-first packing)."""
        slots = [0.0] * max(1, parallel)
        for seconds in sorted((p.estimate_s for p in self.pending()), reverse=True):
            slots[slots.index(min(slots))] += seconds
        return max(slots)


def set_dotted(table: dict[str, Any], key: str, value: Any) -> None:
    """``table["a"]["b"] = value`` for ``key = "a.b"``, as ``--set a.b=value`` does."""
    config.set_dotted(table, key, copy.deepcopy(value))


def point_recipe(base: dict[str, Any], point: Point):
    table = copy.deepcopy(base)
    config.drop_replaced_dataset_options(table, point.values)
    for key, value in point.values.items():
        set_dotted(table, key, value)
    recipe = recipe_from_dict(table)
    return recipe if point.seed is None else dataclasses.replace(recipe, seed=int(point.seed))


def _bits_of(identity: RunIdentity, regs: Registries, cache: dict[str, float]) -> float:
    key = json.dumps([identity.quantizer, identity.options], sort_keys=True, default=str)
    if key not in cache:
        quantizer = regs.quantizers.create(identity.quantizer, **identity.options)  # the factory's checks
        cache[key] = float(getattr(quantizer, "bits_per_position", float("nan")))
    return cache[key]


def build_plan(spec: SweepSpec, out: str | Path, regs: Registries) -> Plan:
    """Resolve and check every point; match it with ``out``; estimate its time."""
    beside = Path(spec.path).parent
    try:
        base = recipe_table(spec.recipe)
        ladder = resolve_ladder(spec.ladder, beside) if spec.ladder is not None else None
        for name in spec.quantizers:
            regs.quantizers.get(name)
        points = expand(spec, ladder)
    except ConfigError as exc:
        raise exc if str(exc).startswith(f"sweep {spec.path}") else spec.error(str(exc)) from None

    found = existing.scan(out)
    costs = estimate.CostIndex.from_folder(out)
    bits_cache: dict[str, float] = {}
    seen: dict[tuple[str, int], str] = {}
    planned = []
    for index, point in enumerate(points, start=1):
        where = f"point {index} ({point.label()}"
        where += f", seed {point.seed})" if point.seed is not None else ")"
        try:
            recipe = point_recipe(base, point)
            if ladder is not None and ladder.latent_dim not in (None, recipe.model.latent_dim):
                raise ConfigError(f"ladder {ladder.name!r} is for model.latent_dim = {ladder.latent_dim}, "
                                  f"this point has {recipe.model.latent_dim}")
            identity = resolve(recipe, point.quantizer, regs)
            bits = _bits_of(identity, regs, bits_cache)
        except ConfigError as exc:
            raise spec.error(f"{where}: {exc}") from None
        key = (identity.config_hash, identity.seed)
        if key in seen:
            raise spec.error(f"{where} is the same run as {seen[key]} (config hash {key[0]}, seed {key[1]}): "
                             "a swept key changes nothing that identifies a run")
        seen[key] = where
        entry = found.get(key, existing.Existing())
        running = entry.done is None and existing.is_running(out, *key)
        planned.append(PlannedPoint(index, point, identity, bits, entry, running))
    note = estimate.fill(planned, costs)
    plan = Plan(spec, Path(out), planned, note, ladder)
    for p in planned:
        plan.counts[p.status] = plan.counts.get(p.status, 0) + 1
    return plan
