"""Plugin options: values checked before anything is built, effective options and provenance in the run identity."""

from __future__ import annotations

import json
from typing import Literal

import pytest
from conftest import make_distribution, run_cli

import qbench
from qbench.platform.options import check_values, effective_options
from qbench.recipe.config import load_recipe
from qbench.recipe.identity import resolve
from qbench.specs import QuantizerSpec

TOY_HOOKS = """
import qbench

@qbench.hookimpl
def qbench_register_quantizers():
    return [qbench.QuantizerSpec(name="toy", factory="toy_plugin.quantizer:Toy", paper="none")]
"""

TOY_QUANTIZER = """
from qbench_builtins.gsq import GroupedSphericalQuantizer


class Toy(GroupedSphericalQuantizer):
    def __init__(self, dim: int, codebook_size: int = 16, mode: str = "plain"):
        if mode not in ("plain", "fancy"):
            raise ValueError("unsupported mode")  # a plugin that validates the plain-Python way
        super().__init__(dim, codebook_size=codebook_size)
"""


def install_toy(site, version="1.0"):
    make_distribution(site, "toy-plugin", version, {"toy": "toy_plugin.hooks"},
                      {"toy_plugin/__init__.py": "", "toy_plugin/hooks.py": TOY_HOOKS,
                       "toy_plugin/quantizer.py": TOY_QUANTIZER})


def one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("qbench: error:"), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_bad_plugin_option_value_is_one_line_before_training(site, tmp_path):
    install_toy(site)
    out = tmp_path / "runs"
    bad_type = run_cli("run", "--recipe", "smoke", "--quantizers", "toy", "--set", "quantizers.toy.codebook_size=abc",
                       "--out", str(out))
    one_line_error(bad_type, "quantizer 'toy'", "codebook_size", "an integer", "'abc'")
    rejected = run_cli("run", "--recipe", "smoke", "--quantizers", "toy", "--set", "quantizers.toy.mode='odd'",
                       "--out", str(out))
    one_line_error(rejected, "quantizer 'toy'", "toy", "mode='odd'", "unsupported mode")
    assert not out.exists()


def test_misspelt_quantizer_table_is_an_error_with_a_suggestion(tmp_path):
    result = run_cli("run", "--recipe", "smoke", "--quantizers", "gsq", "--set", "quantizers.gqs.groups=2",
                     "--out", str(tmp_path / "runs"))
    one_line_error(result, "quantizers.gqs", "did you mean 'gsq'")
    assert not (tmp_path / "runs").exists()


class Annotated:
    def __init__(self, dim: int, rate: float = 1.0, levels: tuple[int, ...] = (8, 5), flag: bool | None = None,
                 mode: Literal["a", "b"] = "a", anything=None):
        pass


SPEC = QuantizerSpec(name="ann", factory="x:y")


@pytest.mark.parametrize("given,expected", [
    ({"rate": 2}, {"rate": 2.0}),  # int -> float is lossless
    ({"levels": [7, 5, 5]}, {"levels": [7, 5, 5]}),
    ({"flag": None}, {"flag": None}),
    ({"mode": "b"}, {"mode": "b"}),
    ({"anything": {"x": 1}}, {"anything": {"x": 1}}),  # no annotation: the plugin judges
])
def test_values_that_fit_are_coerced_losslessly(given, expected):
    assert check_values(SPEC, Annotated, given) == expected


@pytest.mark.parametrize("given,fragment", [
    ({"dim": 2.5}, "dim must be an integer"),
    ({"dim": True}, "dim must be an integer"),
    ({"rate": "fast"}, "rate must be a number"),
    ({"levels": [7, "x"]}, "levels must be a list of an integer"),
    ({"flag": "yes"}, "flag must be true or false or unset"),
    ({"mode": "c"}, "mode must be one of 'a', 'b'"),
    ({"rat": 1.0}, "no option 'rat' (did you mean 'rate'?)"),
])
def test_values_that_do_not_fit_are_config_errors(given, fragment):
    with pytest.raises(qbench.ConfigError) as err:
        check_values(SPEC, Annotated, given)
    assert fragment in str(err.value)


@pytest.mark.parametrize("given,fragment", [
    ({"rate": float("nan")}, "option rate must be a finite number, got nan"),
    ({"rate": float("inf")}, "option rate must be a finite number, got inf"),
    ({"rate": float("-inf")}, "option rate must be a finite number, got -inf"),
])
def test_non_finite_floats_are_refused_since_they_slip_through_range_checks(given, fragment):
    # nan > 0 is False, so a plugin's own `if sigma <= 0: raise` lets nan through: the host refuses it
    with pytest.raises(qbench.ConfigError) as err:
        check_values(SPEC, Annotated, given)
    assert str(err.value) == f"quantizer 'ann': {fragment}"


def test_effective_options_fill_in_every_default():
    assert effective_options(Annotated, {"dim": 4, "rate": 2.0}) == {
        "dim": 4, "rate": 2.0, "levels": [8, 5], "flag": None, "mode": "a", "anything": None}


def test_a_changed_default_or_plugin_version_changes_the_config_hash():
    recipe = load_recipe("smoke")

    def plugin(defaults):
        class Plugin:
            @qbench.hookimpl
            def qbench_register_quantizers(self):
                return [QuantizerSpec(name="g", factory="qbench_builtins.gsq:GroupedSphericalQuantizer",
                                      defaults=defaults)]
        return Plugin()

    base = resolve(recipe, "g", qbench.registries(extra_plugins={"p": plugin({})}))
    same = resolve(recipe, "g", qbench.registries(extra_plugins={"p": plugin({})}))
    other_default = resolve(recipe, "g", qbench.registries(extra_plugins={"p": plugin({"beta": 0.5})}))
    assert base.config_hash == same.config_hash
    assert base.options["beta"] == 0.25 and base.options["init"] == "spherical"  # defaults recorded
    assert other_default.config_hash != base.config_hash
    assert other_default.recipe_hash == base.recipe_hash


def test_runs_of_two_plugin_versions_record_them_and_do_not_share_a_hash(tmp_path):
    records = []
    for version in ("1.0", "2.0"):
        site = tmp_path / f"site{version}"
        site.mkdir()
        install_toy(site, version)
        result = run_cli("run", "--recipe", "smoke", "--quantizers", "toy", "--set", "train.steps=1", "--no-progress",
                         "--out", str(tmp_path / "runs"), env={"PYTHONPATH": str(site)})
        assert result.returncode == 0, result.stderr
    for path in sorted((tmp_path / "runs").rglob("metrics.json")):
        records.append(json.loads(path.read_text())["run"])
    assert sorted(r["plugins"]["quantizer"]["version"] for r in records) == ["1.0", "2.0"]
    assert {r["plugins"]["quantizer"]["distribution"] for r in records} == {"toy-plugin"}
    assert records[0]["config_hash"] != records[1]["config_hash"]
    assert records[0]["options"] == records[1]["options"] == {"dim": 4, "codebook_size": 16, "mode": "plain"}


def test_a_factorys_config_error_is_prefixed_with_kind_name_and_plugin():
    from qbench.platform.options import call_factory

    def strict(scale: float = 1.0):
        if scale <= 0:
            raise qbench.ConfigError(f"sign: scale must be > 0, got {scale}")
        return scale

    spec = QuantizerSpec(name="sign", factory="x:y", origin="qbench-sign-quantizer")
    with pytest.raises(qbench.ConfigError) as caught:
        call_factory(spec, strict, {"scale": -1.0})
    assert str(caught.value) == "quantizer 'sign' (qbench-sign-quantizer): scale must be > 0, got -1.0"
    assert call_factory(spec, strict, {"scale": 2.0}) == 2.0
