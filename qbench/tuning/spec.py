"""The tune file: a TOML description of a tuning study, read and checked for shape.

Only the shape is checked here (known keys, types, ranges); whether a key is a
recipe key, a quantizer exists and its declared space builds at each rate is
checked by ``qbench.tuning.plan`` before anything trains.  Every problem is one
``ConfigError`` line that starts with the file name.  The keys are documented
in docs/tuning.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from qbench.errors import ConfigError, suggest
from qbench.recipe.config import parse_value
from qbench.search_space import Choice, FloatRange, IntRange, Tunable
from qbench.sweeps.spec import check_keys, check_slurm, flatten, read_toml

TOP_KEYS = ("name", "description", "recipe", "quantizers", "rates", "trials", "metric", "seed", "sampler", "pruner",
            "max_failures", "retrain_seeds", "compare", "storage", "set", "shared", "slurm")
SAMPLERS = ("qmc", "tpe", "random")
PRUNERS = {  # kind -> allowed keys of its [pruner] table (besides kind)
    "median": ("startup_trials", "warmup_steps"),
    "successive-halving": ("min_steps", "reduction_factor"),
    "hyperband": ("min_steps", "reduction_factor"),
    "none": (),
}
HELD_OUT = ("psnr", "ssim", "usage")  # the metrics a held-out row carries (qbench.comparison.runner)
LATENT_DIM_KEY = "model.latent_dim"


@dataclass(frozen=True)
class TuneSpec:
    """A tune file, shape-checked."""

    path: str
    name: str
    recipe: str
    quantizers: list[str]
    rates: list[float]
    trials: int  # finished trials (complete or pruned) per study
    metric: str = "psnr"
    seed: int = 0  # the sampler's seed
    sampler: str = "qmc"
    pruner: dict[str, Any] = field(default_factory=lambda: {"kind": "median"})
    max_failures: int = 0  # failed trials after which a study stops short; 0: as many as trials
    retrain_seeds: int = 5
    compare: str = ""  # the sweep file of the same quantizers with hand-set options (the untuned side)
    compare_study: str = ""  # its study name, which the re-training sweep's [report] pools
    storage: str = ""  # empty: OUT/study.db (SQLite)
    fixed: dict[str, Any] = field(default_factory=dict)  # recipe keys set for every trial
    shared: dict[str, Tunable] = field(default_factory=dict)  # recipe keys searched for every quantizer alike
    slurm: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def error(self, message: str) -> ConfigError:
        return ConfigError(f"tune {self.path}: {message}")

    @property
    def failure_cap(self) -> int:
        return self.max_failures or self.trials

    def dims(self, recipe_dim: int) -> tuple[int, ...]:
        """The latent widths a study may use: the shared choice, else the recipe's."""
        tunable = self.shared.get(LATENT_DIM_KEY)
        return tuple(tunable.values) if isinstance(tunable, Choice) else (recipe_dim,)


def _count(raw: dict, key: str, default: int | None, fail, least: int = 1) -> int:
    value = raw.get(key, default)
    if value is None:
        raise fail(f"needs {key} = N (finished trials per quantizer and rate)")
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise fail(f"{key} must be an integer >= {least}, got {value!r}")
    return value


def _tunable(key: str, raw: Any, fail) -> Tunable:
    if isinstance(raw, list):
        tunable: Tunable = Choice(tuple(raw))
    elif isinstance(raw, dict):
        extra = sorted(set(raw) - {"low", "high", "log", "int"})
        if extra or not {"low", "high"} <= set(raw):
            raise fail(f"[shared] {key} must be a list of choices or {{ low = ..., high = ..., log = true }}, "
                       f"got {raw!r}")
        if raw.get("int"):
            tunable = IntRange(raw["low"], raw["high"], log=bool(raw.get("log", False)))
        else:
            tunable = FloatRange(raw["low"], raw["high"], log=bool(raw.get("log", False)))
    else:
        raise fail(f"[shared] {key} must be a list of choices or a {{ low, high, log }} table, got {raw!r}")
    why = tunable.problem()
    if why:
        raise fail(f"[shared] {key}: {why}")
    if key == LATENT_DIM_KEY and not (isinstance(tunable, Choice) and all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in tunable.values)):
        raise fail(f"[shared] {key} must be a list of positive widths, e.g. [4, 8, 16], got {raw!r}")
    return tunable


def _pruner(raw: Any, fail) -> dict[str, Any]:
    table = {"kind": raw} if isinstance(raw, str) else raw
    if not isinstance(table, dict) or table.get("kind") not in PRUNERS:
        kind = table.get("kind") if isinstance(table, dict) else raw
        raise fail(f"pruner must be one of {', '.join(PRUNERS)} (or a table with kind = ...), got "
                   f"{kind!r}{suggest(str(kind), PRUNERS)}")
    for key, value in table.items():
        if key == "kind":
            continue
        if key not in PRUNERS[table["kind"]]:
            allowed = ", ".join(PRUNERS[table["kind"]]) or "none"
            raise fail(f"[pruner] {table['kind']} has no key {key!r}; allowed: {allowed}")
        if not isinstance(value, int) or isinstance(value, bool) or value < (2 if key == "reduction_factor" else 0):
            raise fail(f"[pruner] {key} must be a non-negative integer (reduction_factor >= 2), got {value!r}")
    return dict(table)


def _compare(value: Any, path: str, fail) -> tuple[str, str]:
    """The untuned side's sweep file (relative to the tune file, as ``recipe``) and its study name."""
    if value == "":
        return "", ""
    if not isinstance(value, str):
        raise fail(f"compare must be the path of a sweep file, got {value!r}")
    file = Path(value) if Path(value).is_absolute() else Path(path).parent / value
    try:
        name = tomllib.loads(file.read_text()).get("name")
    except OSError as exc:
        raise fail(f"compare {value!r}: cannot read {file}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise fail(f"compare {value!r}: {file} is not valid TOML: {exc}") from None
    if not isinstance(name, str) or not name.strip():
        raise fail(f"compare {value!r}: {file} has no name = \"...\" (the study its runs record)")
    return os.path.normpath(file), name.strip()  # as the user gave it: no machine path in the written files


def load_tune(path: str | Path) -> TuneSpec:
    """Read and shape-check a tune file; ``ConfigError`` naming the file and the problem."""
    path = str(path)
    raw = read_toml(path, "tune")

    def fail(message: str) -> ConfigError:
        return ConfigError(f"tune {path}: {message}")

    check_keys(raw, TOP_KEYS, fail)
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip() or "/" in name:
        raise fail("needs a name without '/', e.g. name = \"converged-10bit\" (it names the studies)")
    recipe = raw.get("recipe", "cpu-converged")
    if not isinstance(recipe, str):
        raise fail(f"recipe must be a recipe name or a TOML file, got {recipe!r}")
    if recipe.endswith(".toml") and not Path(recipe).is_absolute() and (Path(path).parent / recipe).exists():
        recipe = str(Path(path).parent / recipe)
    quantizers = raw.get("quantizers")
    if not isinstance(quantizers, list) or not quantizers or not all(isinstance(q, str) for q in quantizers):
        raise fail(f"quantizers must be a non-empty list of names, e.g. [\"gsq\", \"vq\"], got {quantizers!r}")
    if len(set(quantizers)) != len(quantizers):
        raise fail(f"quantizers {quantizers} repeat a name")
    rates = raw.get("rates")
    if not isinstance(rates, list) or not rates or not all(
            isinstance(r, (int, float)) and not isinstance(r, bool) and r > 0 for r in rates):
        raise fail(f"rates must be a non-empty list of bits per position, e.g. [10], got {rates!r}")
    if len(set(rates)) != len(rates):
        raise fail(f"rates {rates} repeat a rate")
    metric = raw.get("metric", "psnr")
    if metric not in HELD_OUT:
        raise fail(f"metric must be one of the held-out metrics {', '.join(HELD_OUT)}, got {metric!r}"
                   f"{suggest(str(metric), HELD_OUT)}")
    sampler = raw.get("sampler", "qmc")
    if sampler not in SAMPLERS:
        raise fail(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}{suggest(str(sampler), SAMPLERS)}")
    seed = raw.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise fail(f"seed must be a non-negative integer, got {seed!r}")
    storage = raw.get("storage", "")
    if not isinstance(storage, str):
        raise fail(f"storage must be a database URL or a journal file path, got {storage!r}")
    compare, compare_study = _compare(raw.get("compare", ""), path, fail)
    fixed = raw.get("set", {})
    if not isinstance(fixed, dict):
        raise fail(f"set must be a table of dotted recipe keys, got {fixed!r}")
    shared_raw = raw.get("shared", {})
    if not isinstance(shared_raw, dict):
        raise fail(f"[shared] must be a table of dotted recipe keys, got {shared_raw!r}")
    shared = {}
    for key, value in shared_raw.items():  # dotted keys stay whole: their values may be tables
        if key.startswith("quantizers.") or "." not in key:
            raise fail(f"[shared] {key!r}: shared knobs are dotted recipe keys outside [quantizers], "
                       "e.g. \"optim.lr\"; a quantizer's options come from its declared space")
        shared[key] = _tunable(key, value, fail)
    fixed = flatten(fixed)
    both = sorted(set(fixed) & set(shared))
    if both:
        raise fail(f"key {both[0]!r} is both fixed in [set] and searched in [shared]; give it once")
    slurm = raw.get("slurm", {})
    if not isinstance(slurm, dict):
        raise fail(f"[slurm] must be a table, got {slurm!r}")
    return TuneSpec(path=path, name=name.strip(), recipe=recipe, quantizers=list(quantizers),
                    rates=[float(r) for r in rates], trials=_count(raw, "trials", None, fail), metric=metric,
                    seed=seed, sampler=sampler, pruner=_pruner(raw.get("pruner", "median"), fail),
                    max_failures=_count(raw, "max_failures", 0, fail, least=0),
                    retrain_seeds=_count(raw, "retrain_seeds", 5, fail), compare=compare,
                    compare_study=compare_study, storage=storage, fixed=fixed,
                    shared=shared, slurm=check_slurm(slurm, fail), description=str(raw.get("description", "")))


def with_overrides(spec: TuneSpec, items: list[str]) -> TuneSpec:
    """``spec`` with ``--set KEY=VALUE`` recipe keys fixed for every trial (a searched key cannot be fixed)."""
    import dataclasses

    fixed = dict(spec.fixed)
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r} (e.g. --set train.steps=20)")
        if key in spec.shared:
            raise spec.error(f"--set {key}: the study searches this key; it cannot also be fixed")
        fixed[key] = parse_value(text.strip())
    return dataclasses.replace(spec, fixed=fixed)
