"""The generic registry: names, duplicates, did-you-mean, option checking, fnmatch."""

from __future__ import annotations

import pytest

import qbench
from qbench.platform.registry import Registry
from qbench.specs import QuantizerSpec


def spec(name, origin="a", factory="collections:OrderedDict", **kw):
    return QuantizerSpec(name=name, factory=factory, origin=origin, **kw)


def test_duplicate_names_fail_naming_both_origins():
    reg = Registry("quantizer", [spec("gsq", origin="first")])
    with pytest.raises(qbench.PluginError) as err:
        reg.add(spec("gsq", origin="second"))
    assert "first" in str(err.value) and "second" in str(err.value)


def test_unknown_name_lists_known_and_suggests():
    reg = Registry("quantizer", [spec("gsq"), spec("vq"), spec("rvq")])
    with pytest.raises(qbench.ConfigError) as err:
        reg.get("gsqq")
    message = str(err.value)
    assert "did you mean 'gsq'" in message
    assert "gsq, rvq, vq" in message


def test_fnmatch_listing_is_sorted():
    reg = Registry("quantizer", [spec("vq"), spec("gsq"), spec("gvq")])
    assert reg.names() == ["gsq", "gvq", "vq"]
    assert reg.names("g*") == ["gsq", "gvq"]
    assert [s.name for s in reg.list("*vq")] == ["gvq", "vq"]


def test_create_merges_defaults_and_rejects_unknown_options():
    reg = Registry("quantizer", [spec("frac", factory="fractions:Fraction", defaults={"numerator": 3})])
    assert reg.create("frac", denominator=4) == 0.75
    with pytest.raises(qbench.ConfigError, match="no option 'denominatr'.*did you mean 'denominator'"):
        reg.create("frac", denominatr=4)


def test_broken_factory_is_a_plugin_error():
    reg = Registry("quantizer", [spec("x", factory="no_such_module_xyz:Thing")])
    with pytest.raises(qbench.PluginError, match="cannot import 'no_such_module_xyz'"):
        reg.create("x")


def test_spec_rejects_factory_without_attr():
    with pytest.raises(ValueError, match="module:attr"):
        QuantizerSpec(name="x", factory="just_a_module")


def test_spec_defaults_are_read_only():
    s = spec("x", defaults={"a": 1})
    with pytest.raises(TypeError):
        s.defaults["a"] = 2
