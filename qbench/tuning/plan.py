"""Planning a tuning study: one Optuna study per (quantizer, rate), every space checked before anything trains.

For each study the quantizer's declared space is loaded at the rate
(``qbench.tuning.space``), every layout is built once (the factory's own
checks run, and its ``bits_per_position`` must be the study's rate within
``RATE_TOLERANCE``), every ranged option is checked against the constructor
at both ends of its range, and one trial recipe is built to check the shared
keys.  The first problem is one ``ConfigError`` naming the tune file and the
study.

Trials select on validation data only: every trial recipe scores on
``eval.split = "val"`` (and measures its held-out curve there), whatever the
recipe's final-score split is; the re-training sweep of the best
configurations uses the recipe's own ``eval.split``.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qbench.errors import ConfigError
from qbench.platform.plugins import Registries
from qbench.recipe import config
from qbench.recipe.config import EvalConfig, Recipe, recipe_from_dict, recipe_table
from qbench.search_space import LATENT_DIM, RATE_TOLERANCE, Choice, FloatRange, IntRange, SearchSpace, label
from qbench.tuning.space import StudySpace, choice_params, declared_space
from qbench.tuning.spec import TuneSpec

SELECTION_SPLIT = "val"
TRIALS_FOLDER = "trials"


@dataclass(frozen=True)
class Study:
    """One (quantizer, rate) study of a tune file."""

    name: str  # the Optuna study name
    quantizer: str
    rate: float
    space: StudySpace
    folder: Path  # OUT/trials/QUANTIZER-RATEbit: one folder per trial below it

    @property
    def label(self) -> str:
        return f"{self.quantizer} @ {self.rate:g} bits"


@dataclass
class TunePlan:
    tune: TuneSpec
    out: Path
    storage: str  # a database URL or a journal file path
    base: dict[str, Any]  # the trial recipe table before a trial's values (and seed)
    studies: list[Study]

    def trial_recipe(self, values: dict[str, Any]) -> Recipe:
        return trial_recipe(self.base, values)


def study_name(tune: TuneSpec, quantizer: str, rate: float) -> str:
    return f"{tune.name}-{quantizer}-{rate:g}bit"


def selection_table(tune: TuneSpec) -> dict[str, Any]:
    """The tune file's recipe with its ``[set]`` keys, scored on validation data, log.csv kept."""
    table = copy.deepcopy(recipe_table(tune.recipe))
    for key, value in tune.fixed.items():
        if key in ("eval.split", "eval.heldout_split") and value != SELECTION_SPLIT:
            raise tune.error(f"[set] {key} = {value!r}: trials select on {SELECTION_SPLIT!r}; the re-training "
                             "sweep scores on the recipe's eval.split")
        config.set_dotted(table, key, copy.deepcopy(value))
    config.set_dotted(table, "eval.split", SELECTION_SPLIT)
    if "heldout_split" in {f.name for f in dataclasses.fields(EvalConfig)}:
        config.set_dotted(table, "eval.heldout_split", SELECTION_SPLIT)
    loggers = table.setdefault("train", {}).get("loggers", ["csv"])
    if "csv" not in loggers:  # the held-out rows are read from log.csv
        table["train"]["loggers"] = ["csv", *loggers]
    return table


def trial_recipe(base: dict[str, Any], values: dict[str, Any]) -> Recipe:
    table = copy.deepcopy(base)
    for key, value in values.items():
        config.set_dotted(table, key, copy.deepcopy(value))
    return recipe_from_dict(table)


def _ends(tunable) -> list[Any]:
    if isinstance(tunable, (FloatRange, IntRange)):
        return [tunable.low, tunable.high]
    if isinstance(tunable, Choice):
        return list(tunable.values)
    return []


def _check_space(study: Study, base: dict[str, Any], regs: Registries, built: dict[str, float]) -> None:
    """Every layout builds with the study's rate; every option's range ends pass the constructor's checks."""
    space, quantizer = study.space, study.quantizer
    recipe = trial_recipe(base, {})
    layouts = [dict(lay) for lay in space.declared.layouts] or [{}]
    for layout in layouts:
        options = {**recipe.quantizer_options(quantizer), **layout}
        options.setdefault(LATENT_DIM, recipe.model.latent_dim)
        key = repr(sorted(options.items()))
        if key not in built:
            quantizer_object = regs.quantizers.create(quantizer, **options)
            built[key] = float(getattr(quantizer_object, "bits_per_position", float("nan")))
        bits = built[key]
        if not abs(bits - study.rate) <= RATE_TOLERANCE:
            shown = f"layout {label(layout)}" if layout else "the recipe's options"
            raise ConfigError(f"{shown} give{'s' if layout else ''} {bits:.3g} bits per position, not {study.rate:g}")
    for option, tunable in space.declared.options.items():
        for value in _ends(tunable):
            regs.quantizers.options(quantizer, **{option: value})  # name and type, as --set would be checked


def probe_values(space: StudySpace) -> dict[str, Any]:
    """One value per parameter (each range's low end, each choice's first): enough to build a trial recipe."""
    params = {name: choice_params(t)[0] if isinstance(t, Choice) else t.low for name, t in space.tunables().items()}
    return space.values(params)


def frozen(space: SearchSpace, quantizer: str, fixed: dict[str, Any]) -> SearchSpace:
    """``space`` without the options the tune file fixes (``[set] "quantizers.Q.OPTION" = ...``)."""
    prefix = f"quantizers.{quantizer}."
    kept = {k: v for k, v in space.options.items() if prefix + k not in fixed}
    return space if len(kept) == len(space.options) else dataclasses.replace(space, options=kept)


def build_plan(tune: TuneSpec, out: str | Path, regs: Registries, storage: str | None = None) -> TunePlan:
    """Resolve and check every study of ``tune``; ``ConfigError`` naming the tune file and the study."""
    out = Path(out)
    try:
        base = selection_table(tune)
        recipe = recipe_from_dict(base)
        for name in tune.quantizers:
            regs.quantizers.get(name)
    except ConfigError as exc:
        raise exc if str(exc).startswith(f"tune {tune.path}") else tune.error(str(exc)) from None
    if tune.pruner["kind"] != "none" and recipe.eval.every <= 0:
        raise tune.error("the pruner reads the held-out curve: set eval.every in the recipe or "
                         "[set] \"eval.every\" = 250 (or pruner = \"none\")")
    dims = tune.dims(recipe.model.latent_dim)
    studies, built = [], {}
    for quantizer in tune.quantizers:
        spec = regs.quantizers.get(quantizer)
        if getattr(spec, "continuous", False):
            raise tune.error(f"{quantizer} has no rate to tune at")
        for rate in tune.rates:
            where = f"{quantizer} at {rate:g} bits"
            try:
                space = StudySpace(quantizer, rate, frozen(declared_space(spec, rate, dims), quantizer, tune.fixed),
                                   dict(tune.shared))
                study = Study(study_name(tune, quantizer, rate), quantizer, rate, space,
                              out / TRIALS_FOLDER / f"{quantizer}-{rate:g}bit")
                _check_space(study, base, regs, built)
                trial_recipe(base, probe_values(space))
            except ConfigError as exc:
                raise tune.error(f"{where}: {' '.join(str(exc).split())}") from None
            studies.append(study)
    return TunePlan(tune, out, storage or tune.storage or default_storage(out), base, studies)


def default_storage(out: Path) -> str:
    return f"sqlite:///{(out / 'study.db').resolve()}"
