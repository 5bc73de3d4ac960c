"""Declared search spaces: what tuning may vary in a quantizer, and the layouts that keep its rate.

A quantizer plugin declares its space with a function named in its spec,
``QuantizerSpec(search_space="my_package.spaces:my_space")``, called as
``my_space(rate, dims) -> SearchSpace`` where ``rate`` is the nominal bits per
position of the study and ``dims`` the latent widths the study may use (the
shared ``model.latent_dim`` choices, or the recipe's one width).  The module it
lives in must not import torch: ``qbench tune`` plans every study from it
before anything trains.  A declaration per rung is a function that looks the
rate up in a table.

A ``SearchSpace`` has two parts:

- ``options``: constructor options of the quantizer and their ranges
  (``FloatRange``, ``IntRange``, ``Choice``); the sampler draws each one.
- ``layouts``: option tables that each give the quantizer the study's rate
  (GSQ: groups x codebook size x latent width; RVQ: stages x codebook size;
  FSQ: level tuples).  The sampler picks one as the categorical parameter
  ``layout``.  A layout may set ``dim``, the latent width (then the shared
  ``model.latent_dim`` choice is not drawn separately for this quantizer:
  the layout carries it, from ``dims``).  No layouts: the recipe's own
  options must give the rate.

The conformance kit (``qbench.testing.check_search_space``) checks a
declaration: every name is a constructor option, ranges are valid, and every
layout and a sample of configurations build with the declared rate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

RATE_TOLERANCE = 0.1  # bits: FSQ's implicit codebooks miss powers of two (1000 codes: 9.97 bits)
LATENT_DIM = "dim"  # the constructor option a layout sets to fix the latent width


@dataclass(frozen=True)
class FloatRange:
    """A real option in [low, high]; ``log`` samples its logarithm uniformly (rates, weights)."""

    low: float
    high: float
    log: bool = False

    def problem(self) -> str:
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                   for v in (self.low, self.high)):
            return f"bounds must be finite numbers, got {self.low!r}, {self.high!r}"
        if self.low >= self.high:
            return f"low {self.low} must be below high {self.high}"
        if self.log and self.low <= 0:
            return f"a log range needs low > 0, got {self.low}"
        return ""

    def describe(self) -> str:
        return f"{self.low:g} to {self.high:g}" + (" (log)" if self.log else "")


@dataclass(frozen=True)
class IntRange:
    """An integer option in [low, high] (both included), every ``step``-th value; ``log`` as for floats."""

    low: int
    high: int
    log: bool = False
    step: int = 1

    def problem(self) -> str:
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (self.low, self.high, self.step)):
            return f"bounds and step must be integers, got {self.low!r}, {self.high!r}, {self.step!r}"
        if self.low >= self.high:
            return f"low {self.low} must be below high {self.high}"
        if self.step < 1 or (self.high - self.low) % self.step:
            return f"step {self.step} must be positive and divide high - low"
        if self.log and (self.low < 1 or self.step != 1):
            return "a log integer range needs low >= 1 and step 1"
        return ""

    def describe(self) -> str:
        step = f" step {self.step}" if self.step != 1 else ""
        return f"{self.low} to {self.high} integers{step}" + (" (log)" if self.log else "")


@dataclass(frozen=True)
class Choice:
    """One of a few values (TOML values: numbers, strings, booleans, lists)."""

    values: tuple[Any, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(self.values))

    def problem(self) -> str:
        if len(self.values) < 2:
            return f"a choice needs at least two values, got {list(self.values)!r}"
        labels = [label(v) for v in self.values]
        if len(set(labels)) != len(labels):
            return f"choices repeat a value: {labels}"
        return ""

    def describe(self) -> str:
        return "one of " + ", ".join(label(v) for v in self.values)


Tunable = FloatRange | IntRange | Choice


def label(value: Any) -> str:
    """How a value reads as a categorical parameter: ``[8, 5, 5, 5]`` -> ``8-5-5-5``, ``True`` -> ``true``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "-".join(label(v) for v in value)
    if isinstance(value, Mapping):
        return " ".join(f"{k}={label(v)}" for k, v in value.items())
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class SearchSpace:
    """What a quantizer declares at one rate: ranged ``options`` and rate-keeping ``layouts``."""

    options: Mapping[str, Tunable] = field(default_factory=dict)
    layouts: tuple[Mapping[str, Any], ...] = ()
    note: str = ""  # why the space is what it is, for the tuning report

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))
        object.__setattr__(self, "layouts", tuple(MappingProxyType(dict(lay)) for lay in self.layouts))

    @property
    def sets_dim(self) -> bool:
        """Whether the layouts carry the latent width (and replace the shared ``model.latent_dim`` choice)."""
        return bool(self.layouts) and LATENT_DIM in self.layouts[0]

    def layout_labels(self) -> list[str]:
        return [label(lay) for lay in self.layouts]

    def problems(self, dims: tuple[int, ...] = ()) -> list[str]:
        """Everything wrong with the declaration's shape, one line each (names are checked by the kit)."""
        found = []
        for name, tunable in self.options.items():
            if not isinstance(tunable, (FloatRange, IntRange, Choice)):
                found.append(f"option {name!r}: expected FloatRange, IntRange or Choice, got {tunable!r}")
                continue
            if name == LATENT_DIM:
                found.append("option 'dim' is the latent width: set it in layouts, from the dims given")
            why = tunable.problem()
            if why:
                found.append(f"option {name!r}: {why}")
        labels = self.layout_labels()
        if len(set(labels)) != len(labels):
            found.append(f"layouts repeat: {labels}")
        keys = {frozenset(lay) for lay in self.layouts}
        if len(keys) > 1:
            found.append("every layout must set the same options")
        for lay in self.layouts:
            if not lay:
                found.append("a layout must set at least one option")
            overlap = sorted(set(lay) & set(self.options))
            if overlap:
                found.append(f"option {overlap[0]!r} is both ranged and set by a layout")
            if dims and LATENT_DIM in lay and lay[LATENT_DIM] not in dims:
                found.append(f"layout {label(lay)} sets dim {lay[LATENT_DIM]!r}, not one of the widths {list(dims)}")
        return found
