"""One study's search space: the quantizer's declared space at the study's rate plus the shared knobs.

The parameters an Optuna trial draws are named so that a reader of the
dashboard knows them: shared knobs by their dotted recipe key
(``optim.lr``, ``model.latent_dim``), a quantizer's options by their
constructor name (``beta``), and the rate-keeping layout as ``layout``
(a label such as ``dim=8 groups=2 codebook_size=32``).  ``values`` turns
drawn parameters into dotted recipe keys, the form ``--set``, sweep files
and recipe overlays use.  Nothing here imports optuna: a trial is anything
with ``suggest_float``, ``suggest_int`` and ``suggest_categorical``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from qbench.errors import ConfigError, PluginError
from qbench.search_space import LATENT_DIM, Choice, FloatRange, IntRange, SearchSpace, Tunable, label
from qbench.specs import QuantizerSpec

LAYOUT = "layout"  # the parameter name of the layout choice
LATENT_DIM_KEY = "model.latent_dim"


def declared_space(spec: QuantizerSpec, rate: float, dims: tuple[int, ...]) -> SearchSpace:
    """What ``spec``'s plugin declares at ``rate`` (an empty space when it declares nothing)."""
    if not spec.search_space:
        return SearchSpace()
    where = f"quantizer {spec.name!r} ({spec.origin or '?'}): search space {spec.search_space!r}"
    module_name, _, attr = spec.search_space.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise PluginError(f"{where} cannot be loaded: {type(exc).__name__}: {exc}") from None
    try:
        space = function(rate, tuple(dims))
    except ConfigError as exc:
        raise ConfigError(f"{where} at {rate:g} bits: {exc}") from None
    except Exception as exc:  # a broken declaration is the plugin's fault, not the user's
        raise PluginError(f"{where} raised at {rate:g} bits: {type(exc).__name__}: {exc}") from None
    if not isinstance(space, SearchSpace):
        raise PluginError(f"{where} returned {type(space).__name__}, not qbench.SearchSpace")
    problems = space.problems(tuple(dims))
    if problems:
        raise PluginError(f"{where} at {rate:g} bits: {problems[0]}")
    return space


def _native(values: tuple[Any, ...]) -> bool:
    """Whether Optuna can store the choices as they are (else they go by their labels)."""
    return all(v is None or isinstance(v, (bool, int, float, str)) for v in values)


def draw(trial, name: str, tunable: Tunable) -> Any:
    """The parameter as the trial stores it (a choice of lists by its label)."""
    if isinstance(tunable, FloatRange):
        return trial.suggest_float(name, float(tunable.low), float(tunable.high), log=tunable.log)
    if isinstance(tunable, IntRange):
        return trial.suggest_int(name, tunable.low, tunable.high, step=tunable.step, log=tunable.log)
    return trial.suggest_categorical(name, choice_params(tunable))


def as_value(tunable: Tunable, drawn: Any) -> Any:
    """A stored parameter as the recipe value it stands for."""
    return choice_value(tunable, drawn) if isinstance(tunable, Choice) else drawn


def choice_params(tunable: Choice) -> list[Any]:
    return list(tunable.values) if _native(tunable.values) else [label(v) for v in tunable.values]


def choice_value(tunable: Choice, drawn: Any) -> Any:
    if _native(tunable.values):
        return drawn
    return tunable.values[[label(v) for v in tunable.values].index(drawn)]


@dataclass(frozen=True)
class StudySpace:
    """Everything one (quantizer, rate) study draws, and how it maps to recipe keys."""

    quantizer: str
    rate: float
    declared: SearchSpace
    shared: dict[str, Tunable] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.declared.sets_dim:  # the layout carries the width: one draw, not two
            object.__setattr__(self, "shared", {k: v for k, v in self.shared.items() if k != LATENT_DIM_KEY})

    def tunables(self) -> dict[str, Tunable]:
        """Parameter name -> its range, as the trials draw them (the layout as a choice of labels)."""
        found = dict(self.shared)
        if len(self.declared.layouts) > 1:
            found[LAYOUT] = Choice(tuple(self.declared.layout_labels()))
        found.update(self.declared.options)
        return found

    def suggest(self, trial) -> dict[str, Any]:
        """Draw every parameter from ``trial``; the dotted recipe keys they set."""
        params = {name: draw(trial, name, tunable) for name, tunable in self.tunables().items()}
        return self.values(params)

    def layout_of(self, params: dict[str, Any]) -> dict[str, Any]:
        layouts = self.declared.layouts
        if not layouts:
            return {}
        if len(layouts) == 1:
            return dict(layouts[0])
        return dict(layouts[self.declared.layout_labels().index(params[LAYOUT])])

    def values(self, params: dict[str, Any]) -> dict[str, Any]:
        """Drawn parameters (as a trial's ``params`` holds them) -> dotted recipe keys and values."""
        values = {k: as_value(tunable, params[k]) for k, tunable in self.shared.items()}
        prefix = f"quantizers.{self.quantizer}."
        for option, value in self.layout_of(params).items():
            if option == LATENT_DIM:
                values[LATENT_DIM_KEY] = value
            else:
                values[prefix + option] = list(value) if isinstance(value, tuple) else value
        for option, tunable in self.declared.options.items():
            values[prefix + option] = as_value(tunable, params[option])
        return values
