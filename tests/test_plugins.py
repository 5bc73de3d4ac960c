"""Plugin loading: built-ins, entry points, broken and disabled plugins, origins."""

from __future__ import annotations

import pytest
from conftest import install_example_plugin, make_distribution, run_cli

import qbench

DUP_HOOKS = """
import qbench

@qbench.hookimpl
def qbench_register_quantizers():
    return [qbench.QuantizerSpec(name="sign", factory="dup_plugin.hooks:nothing")]
"""


def test_builtins_register_the_four_quantizers():
    regs = qbench.registries()
    assert {"gsq", "vq", "rvq", "fsq"} <= set(regs.quantizers.names())
    assert regs.quantizers.get("gsq").origin == "builtins"
    assert regs.quantizers.get("gsq").version == qbench.__version__


def test_entry_point_plugin_is_listed_with_origin_and_created(site):
    install_example_plugin(site)
    regs = qbench.registries()
    spec = regs.quantizers.get("sign")
    assert (spec.origin, spec.version) == ("sign", "0.1.0")
    info = next(p for p in regs.plugins if p.name == "sign")
    assert info.distribution == "qbench-sign-quantizer" and info.registered == {"quantizers": ["sign"]}
    import torch

    quantizer = regs.quantizers.create("sign", dim=4)
    out = quantizer(torch.randn(2, 4, 3, 3))
    assert out.codes.shape == (2, 3, 3, 1)
    assert torch.equal(quantizer.decode(quantizer.encode(out.z_q)), out.z_q)


def test_example_plugin_passes_the_conformance_kit(site):
    install_example_plugin(site)
    from qbench.testing import check_quantizer

    check_quantizer("sign", dim=4)


def test_cli_lists_third_party_plugin(site):
    install_example_plugin(site)
    listed = run_cli("list", "quantizers")
    assert listed.returncode == 0, listed.stderr
    assert "sign" in listed.stdout and "sign 0.1.0" in listed.stdout
    plugins = run_cli("plugins")
    assert "qbench-sign-quantizer 0.1.0" in plugins.stdout


def test_second_plugin_with_same_name_fails_naming_both(site):
    install_example_plugin(site)
    make_distribution(site, "dup-plugin", "2.0", {"dup": "dup_plugin.hooks"}, {"dup_plugin/__init__.py": "", "dup_plugin/hooks.py": DUP_HOOKS})
    with pytest.raises(qbench.PluginError, match="'sign' is registered twice") as err:
        qbench.registries()
    assert "by sign" in str(err.value) and "by dup" in str(err.value)
    assert "dup-plugin 2.0" in str(err.value) and "QBENCH_DISABLE_PLUGINS" in str(err.value)
    listed = run_cli("list", "quantizers")
    assert listed.returncode == 2
    assert "registered twice" in listed.stderr and "Traceback" not in listed.stderr
    shown = run_cli("plugins")  # the command that shows the conflict must not be stopped by it
    assert shown.returncode == 0, shown.stderr
    assert "conflicts:" in shown.stdout and "'sign' is registered twice" in shown.stdout
    fixed = run_cli("list", "quantizers", env={"QBENCH_DISABLE_PLUGINS": "dup-plugin"})  # a distribution name
    assert fixed.returncode == 0 and "sign" in fixed.stdout


def test_broken_plugin_is_reported_and_others_still_load(site):
    make_distribution(site, "broken-plugin", "0.0.1", {"broken": "broken_plugin.hooks"},
                      {"broken_plugin/__init__.py": "", "broken_plugin/hooks.py": "raise ImportError('needs libfoo')\n"})
    regs = qbench.registries()
    info = next(p for p in regs.plugins if p.name == "broken")
    assert "needs libfoo" in info.error
    assert "gsq" in regs.quantizers
    shown = run_cli("plugins")
    assert "needs libfoo" in shown.stdout
    with pytest.raises(qbench.ConfigError, match=r"plugins that failed to load: broken \(ImportError: needs libfoo\)"):
        regs.quantizers.get("brokenq")
    listed = run_cli("list", "quantizers")
    assert listed.returncode == 0 and "plugin 'broken' failed to load" in listed.stderr


def test_disable_env_blocks_plugins(site, monkeypatch):
    install_example_plugin(site)
    monkeypatch.setenv("QBENCH_DISABLE_PLUGINS", "sign")
    regs = qbench.registries()
    assert "sign" not in regs.quantizers
    assert "disabled" in next(p for p in regs.plugins if p.name == "sign").error


def test_extra_plugins_for_library_use():
    class Plugin:
        @qbench.hookimpl
        def qbench_register_metrics(self):
            return [qbench.MetricSpec(name="mine", factory="x:y", higher_is_better=True)]

    regs = qbench.registries(extra_plugins={"mine": Plugin()})
    assert regs.metrics.get("mine").origin == "mine"


def test_each_call_builds_a_fresh_manager():
    assert qbench.registries().quantizers is not qbench.registries().quantizers
