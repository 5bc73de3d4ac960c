"""Declared search spaces: every registered quantizer's declaration passes the conformance kit, and the kit
catches broken declarations; the built-in layouts keep the rate by an independent count of bits."""

from __future__ import annotations

import math
import sys
import types

import pytest

import qbench
from qbench import Choice, FloatRange, IntRange, QuantizerSpec, SearchSpace
from qbench.errors import ConfigError, PluginError
from qbench.platform.plugins import registries
from qbench.testing import check_search_space
from qbench.tuning.space import LAYOUT, StudySpace

REGS = registries()


@pytest.mark.parametrize("name", REGS.quantizers.names())
def test_every_registered_quantizer_declares_a_space_that_builds_at_its_rates(name):
    built = check_search_space(name, regs=REGS, samples=3)
    spec = REGS.quantizers.get(name)
    assert (built > 0) == bool(spec.search_space)


def test_every_built_in_rate_quantizer_declares_a_space():
    undeclared = [s.name for s in REGS.quantizers.list() if not s.search_space and s.name != "identity"]
    assert undeclared == []


def test_gsq_layouts_are_every_width_and_group_count_at_the_rate():
    space = qbench_builtins_spaces().gsq(10, (4, 8, 16))
    # independent count: G must divide both the width and the 10 bits; V = 2^(10/G)
    expected = {(d, g) for d in (4, 8, 16) for g in range(1, 11) if 10 % g == 0 and d % g == 0}
    assert {(lay["dim"], lay["groups"]) for lay in space.layouts} == expected == {(4, 1), (8, 1), (16, 1), (4, 2),
                                                                               (8, 2), (16, 2)}
    assert all(lay["groups"] * math.log2(lay["codebook_size"]) == 10 for lay in space.layouts)


def test_fsq_level_tuples_stay_within_a_tenth_of_a_bit_and_include_the_papers():
    spaces = qbench_builtins_spaces()
    for bits in (6, 8, 10, 12):
        tuples = [lay["levels"] for lay in spaces.fsq(bits, (4,)).layouts]
        assert len(tuples) >= 3
        assert all(abs(sum(math.log2(v) for v in t) - bits) <= 0.1 for t in tuples)
        assert len({tuple(sorted(t)) for t in tuples}) == len(tuples)
    assert [8, 5, 5, 5] in [lay["levels"] for lay in spaces.fsq(10, (4,)).layouts]


def test_rvq_layouts_multiply_to_the_rate():
    space = qbench_builtins_spaces().rvq(12, (4,))
    assert sorted(lay["stages"] for lay in space.layouts) == [1, 2, 3, 4, 6]
    assert all(lay["stages"] * math.log2(lay["codebook_size"]) == 12 for lay in space.layouts)


def qbench_builtins_spaces():
    import qbench_builtins.spaces as spaces

    return spaces


@pytest.mark.parametrize("tunable, problem", [
    (FloatRange(1.0, 0.5), "below"),
    (FloatRange(0.0, 1.0, log=True), "low > 0"),
    (IntRange(1, 10, step=4), "divide"),
    (Choice((1,)), "at least two"),
    (Choice(([1, 2], (1, 2))), "repeat"),
])
def test_bad_ranges_are_named(tunable, problem):
    assert problem in tunable.problem()
    assert SearchSpace(options={"x": tunable}).problems()[0].startswith("option 'x'")


def test_layout_problems_are_named():
    assert "both ranged and set" in SearchSpace(options={"beta": FloatRange(0.1, 1)},
                                                layouts=[{"beta": 1}]).problems()[0]
    assert "same options" in SearchSpace(layouts=[{"a": 1}, {"b": 2}]).problems()[0]
    assert "not one of the widths" in SearchSpace(layouts=[{"dim": 5}]).problems((4, 8))[0]


def _planted(monkeypatch, declaration):
    """A registry whose gsq declares ``declaration`` (a space function in a planted module)."""
    module = types.ModuleType("planted_space")
    module.space = declaration
    monkeypatch.setitem(sys.modules, "planted_space", module)
    regs = registries()
    spec = regs.quantizers.get("gsq")
    regs.quantizers._specs["gsq"] = QuantizerSpec(name="gsq", factory=spec.factory, defaults=dict(spec.defaults),
                                                  search_space="planted_space:space", origin="planted")
    return regs


def test_the_kit_refuses_an_option_the_constructor_does_not_have(monkeypatch):
    regs = _planted(monkeypatch, lambda rate, dims: SearchSpace(options={"betta": FloatRange(0.1, 1.0)}))
    with pytest.raises(AssertionError, match="'betta' is not a constructor option"):
        check_search_space("gsq", rates=(10,), regs=regs)


def test_the_kit_refuses_a_layout_with_another_rate(monkeypatch):
    regs = _planted(monkeypatch, lambda rate, dims: SearchSpace(layouts=[{"codebook_size": 1024}, {"codebook_size": 512}]))
    with pytest.raises(AssertionError, match="9.000 bits per position"):
        check_search_space("gsq", rates=(10,), regs=regs)


def test_the_kit_refuses_a_range_whose_values_the_constructor_rejects(monkeypatch):
    regs = _planted(monkeypatch, lambda rate, dims: SearchSpace(options={"init": Choice(("spherical", "gaussian"))},
                                                                layouts=[{"codebook_size": 2 ** int(rate)}]))
    with pytest.raises(ConfigError, match="gaussian"):
        check_search_space("gsq", rates=(10,), regs=regs)


def test_a_broken_declaration_is_the_plugins_fault(monkeypatch):
    regs = _planted(monkeypatch, lambda rate, dims: {"beta": (0.1, 1)})
    with pytest.raises(PluginError, match="returned dict, not qbench.SearchSpace"):
        check_search_space("gsq", rates=(10,), regs=regs)


def test_spec_refuses_a_search_space_that_is_not_module_attr():
    with pytest.raises(ValueError, match="module:attr"):
        QuantizerSpec(name="x", factory="a:b", search_space="nocolon")


class _FixedTrial:
    """Draws the low end of every range and the last choice: a stand-in for an Optuna trial."""

    def __init__(self):
        self.params = {}

    def suggest_float(self, name, low, high, log=False):
        self.params[name] = low
        return low

    def suggest_int(self, name, low, high, step=1, log=False):
        self.params[name] = low
        return low

    def suggest_categorical(self, name, choices):
        self.params[name] = choices[-1]
        return choices[-1]


def test_study_space_maps_drawn_parameters_to_recipe_keys():
    spec = REGS.quantizers.get("fsq")
    from qbench.tuning.space import declared_space

    shared = {"optim.lr": FloatRange(1e-4, 1e-2, log=True), "model.latent_dim": Choice((4, 8))}
    space = StudySpace("fsq", 10, declared_space(spec, 10, (4, 8)), shared)
    trial = _FixedTrial()
    values = space.suggest(trial)
    last_levels = space.declared.layouts[-1]["levels"]
    assert values == {"optim.lr": 1e-4, "model.latent_dim": 8, "quantizers.fsq.levels": list(last_levels)}
    assert trial.params[LAYOUT] == "levels=" + "-".join(map(str, last_levels))
    assert space.values(trial.params) == values  # what a finished trial's params give back


def test_a_layout_that_sets_the_width_replaces_the_shared_width_choice():
    spec = REGS.quantizers.get("gsq")
    from qbench.tuning.space import declared_space

    space = StudySpace("gsq", 10, declared_space(spec, 10, (4, 8)), {"model.latent_dim": Choice((4, 8))})
    assert "model.latent_dim" not in space.tunables() and LAYOUT in space.tunables()
    values = space.suggest(_FixedTrial())
    assert values["model.latent_dim"] == 8 and values["quantizers.gsq.groups"] == 2


def test_the_public_facade_exports_the_declaration_types():
    assert {"SearchSpace", "FloatRange", "IntRange", "Choice"} <= set(qbench.__all__)
    assert "qbench.search_space" in qbench.PUBLIC_MODULES
