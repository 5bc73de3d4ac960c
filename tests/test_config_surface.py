"""Property: any configuration a user can write is either a valid run or one ``ConfigError``.

Random ``--set`` keys and values, random option tables for every registered
quantizer and random recipe tables go through the same validation pass as
``qbench run`` (``qbench.comparison.preflight.check_run``), without training.  Any
exception other than ``ConfigError`` is a bug: it would reach the user as a
traceback, or as a run that fails after training started.

The examples are derandomized so CI sees the same ones on every run; the
datasets are built once per distinct configuration (the pass itself is not
changed, only its cost).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import typing

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import qbench
import qbench.engine.data
from qbench import ConfigError, commands
from qbench.comparison.preflight import check_run
from qbench.platform.options import _signature
from qbench.platform.registry import load_factory
from qbench.recipe import config

REGS = qbench.registries()
# CI: 50 fixed examples per property.  QBENCH_PROPERTY_EXAMPLES=2000 searches further, with fresh examples.
DEEP = int(os.environ.get("QBENCH_PROPERTY_EXAMPLES", "0"))
SETTINGS = settings(max_examples=DEEP or 50, deadline=None, derandomize=not DEEP, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# small numbers, boundaries, and numbers no tensor or loop could be built from
INTS = st.one_of(st.integers(-3, 12), st.sampled_from([16, 32, 2**63, -2**63, 2**64, 10**30]))
FLOATS = st.one_of(st.floats(-2.0, 2.0), st.sampled_from([math.nan, math.inf, -math.inf, 1e-12, 0.999999, 1e300]))
WORDS = st.sampled_from(["", "x", "psnr", "gsq", "vq", "conv", "photos", "auto", "cuda", "cpu", "bf16", "fp32",
                         "mse", "l1", "dino", "patchgan", "alex", "vgg", "cosine", "val", "train", "spherical"])
SCALARS = st.one_of(st.booleans(), INTS, FLOATS, WORDS)
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=4), st.dictionaries(WORDS.filter(bool), SCALARS, max_size=2))


def _recipe_keys(cls=config.Recipe, prefix="") -> list[str]:
    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            keys += _recipe_keys(hints[f.name], f"{prefix}{f.name}.")
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


def _option_names(registry, name) -> list[str]:
    signature = _signature(load_factory(registry.get(name)))
    return [p for p in signature.parameters if p not in ("self", "args", "kwargs")] if signature else []


QUANTIZERS = REGS.quantizers.names()
OPTION_KEYS = [f"quantizers.{q}.{o}" for q in QUANTIZERS for o in _option_names(REGS.quantizers, q)]
MODEL_KEYS = [f"model.options.{o}" for o in _option_names(REGS.backbones, "conv")]
DATA_KEYS = [f"data.options.{o}" for o in _option_names(REGS.datasets, "photos")]
KEYS = st.sampled_from(_recipe_keys() + OPTION_KEYS + MODEL_KEYS + DATA_KEYS
                       + ["train.stepz", "zzz", "quantizers", "quantizers.nosuch.x", "data", "eval.metrics.x"])


def toml_text(value) -> str:
    """``value`` as a TOML value, as a user would type it after ``--set KEY=``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_text(v)}" for k, v in value.items()) + "}"
    return str(value)


RAW = st.sampled_from(["", "[", "nan", "inf", "[1,2", "{a=1", "1e400", "'x'", "= =", "[[1]]"])
SMOKE = config.load_recipe("smoke").to_dict()


def like(example):
    """Values of the same kind as ``example`` (most often), or of any kind."""
    if isinstance(example, bool):
        typed = st.booleans()
    elif isinstance(example, int):
        typed = INTS
    elif isinstance(example, float):
        typed = st.one_of(FLOATS, INTS)
    elif isinstance(example, str):
        typed = WORDS
    elif isinstance(example, list):
        typed = st.lists(like(example[0]) if example else SCALARS, max_size=4)
    else:
        return VALUES
    return st.one_of(typed, typed, typed, VALUES)


def current(key: str):
    node = SMOKE
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def override(key: str):
    return st.one_of(like(current(key)).map(toml_text), RAW).map(lambda text: f"{key}={text}")


OVERRIDES = st.lists(KEYS.flatmap(override), min_size=1, max_size=3)


_real_build_dataset = qbench.engine.data.build_dataset
_datasets: dict[str, object] = {}


def _cached_build_dataset(recipe, split, regs=None, seed=None):
    """``build_dataset``, remembered per data section, seed and split (datasets are read-only)."""
    key = json.dumps([dataclasses.asdict(recipe.data), recipe.seed if seed is None else seed, split],
                     sort_keys=True, default=str)
    if key not in _datasets:
        _datasets[key] = _real_build_dataset(recipe, split, regs=regs, seed=seed)
    return _datasets[key]


@pytest.fixture(autouse=True)
def quick(monkeypatch, tmp_path):
    """Datasets built once per configuration; no pretrained weights here."""
    monkeypatch.setattr(qbench.engine.data, "build_dataset", _cached_build_dataset)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))


def validate(quantizers, recipe, tmp_path):
    """The validation pass; returns the run identities or raises ``ConfigError``."""
    checked = check_run(quantizers, recipe, REGS, out_root=tmp_path / "runs")
    event("valid run configuration")  # --hypothesis-show-statistics: how many examples got this far
    assert [i.quantizer for i in checked.identities] == list(quantizers)
    assert not (tmp_path / "runs").exists()  # validating never creates a run folder
    return checked


@SETTINGS
@given(overrides=OVERRIDES)
def test_any_set_override_is_a_valid_run_or_one_config_error(overrides, tmp_path):
    try:  # what `qbench run --recipe smoke --quantizers gsq,vq --set ...` checks, then run_comparison
        recipe = commands.checked_recipe("gsq,vq", "smoke", overrides, None, REGS, out=str(tmp_path / "runs"))
        validate(["gsq", "vq"], recipe, tmp_path)
    except ConfigError as exc:
        event("ConfigError")
        assert str(exc).strip(), overrides


@SETTINGS
@given(name=st.sampled_from(QUANTIZERS), data=st.data())
def test_any_quantizer_options_are_a_valid_run_or_one_config_error(name, data, tmp_path):
    defaults = REGS.quantizers.effective_options(name, dim=SMOKE["model"]["latent_dim"])
    keys = data.draw(st.lists(st.sampled_from(_option_names(REGS.quantizers, name) + ["bogus"]), max_size=3,
                              unique=True))
    options = {key: data.draw(like(defaults.get(key))) for key in keys}
    table = config.load_recipe("smoke").to_dict()
    table["quantizers"] = {name: options}
    try:
        validate([name], config.recipe_from_dict(table), tmp_path)
    except ConfigError as exc:
        event("ConfigError")
        assert str(exc).strip(), options


SECTIONS = st.sampled_from(["data", "model", "optim", "loss", "train", "eval", "quantizers", "seed", "name",
                           "description", "bogus"])


@SETTINGS
@given(data=st.data())
def test_any_recipe_table_is_a_valid_run_or_one_config_error(data, tmp_path):
    table = copy.deepcopy(SMOKE)  # random changes to a runnable recipe, so that many get past parsing
    for section in data.draw(st.lists(SECTIONS, min_size=1, max_size=3, unique=True)):
        if isinstance(table.get(section), dict) and data.draw(st.booleans()):
            for key in data.draw(st.lists(st.sampled_from([*table[section], "bogus"]), max_size=3, unique=True)):
                table[section][key] = data.draw(like(table[section].get(key)))
        else:
            table[section] = data.draw(like(table.get(section)))
    try:
        validate(["gsq"], config.recipe_from_dict(table), tmp_path)
    except ConfigError as exc:
        event("ConfigError")
        assert str(exc).strip(), table
