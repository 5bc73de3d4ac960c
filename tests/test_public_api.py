"""The declared public API: what plugins may import, and that they import nothing else."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

import qbench

PLUGIN_TREES = [ROOT / "plugins", ROOT / "examples", ROOT / "benchmarks"]


def qbench_imports(path: Path) -> list[tuple[int, str]]:
    """(line, what) for every import of qbench in a file: 'qbench.mod' or 'qbench:name'."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "qbench"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] == "qbench":
            if node.module == "qbench":
                found += [(node.lineno, f"qbench:{a.name}") for a in node.names]
            else:
                found.append((node.lineno, node.module))
    return found


def private_uses(path: Path) -> list[str]:
    bad = []
    for line, what in qbench_imports(path):
        if what.startswith("qbench:"):
            name = what.partition(":")[2]
            if name not in qbench.__all__ and f"qbench.{name}" not in qbench.PUBLIC_MODULES:
                bad.append(f"{path}:{line}: from qbench import {name}")
        elif what not in qbench.PUBLIC_MODULES:
            bad.append(f"{path}:{line}: {what}")
    return bad


def test_plugins_examples_and_benchmarks_use_only_the_public_api():
    files = [p for tree in PLUGIN_TREES for p in tree.rglob("*.py")]
    assert len(files) > 10
    bad = [b for f in files for b in private_uses(f)]
    assert not bad, "private qbench modules imported:\n" + "\n".join(bad)


def test_the_check_catches_a_private_import(tmp_path):
    plugin = tmp_path / "plugin.py"
    plugin.write_text("from qbench.engine.train import fit\nfrom qbench import registries, runner\nimport qbench.lookup\n")
    assert private_uses(plugin) == [f"{plugin}:1: qbench.engine.train", f"{plugin}:2: from qbench import runner"]


@pytest.mark.parametrize("name", qbench.__all__)
def test_every_public_name_resolves(name):
    assert getattr(qbench, name) is not None


def test_public_modules_import():
    for module in qbench.PUBLIC_MODULES:
        __import__(module)


def test_import_qbench_stays_torch_free():
    code = "import sys, qbench; qbench.QuantizerSpec; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "False", out.stderr


MISSPELT = """
import qbench

@qbench.hookimpl
def qbench_register_quantizer():
    return []
"""


def test_misspelt_hook_is_an_error_naming_it(site):
    from conftest import make_distribution, run_cli

    make_distribution(site, "typo-plugin", "0.1", {"typo": "typo_plugin.hooks"},
                      {"typo_plugin/__init__.py": "", "typo_plugin/hooks.py": MISSPELT})
    regs = qbench.registries()
    info = next(p for p in regs.plugins if p.name == "typo")
    assert "unknown hook qbench_register_quantizer" in info.error
    assert "did you mean 'qbench_register_quantizers'" in info.error
    listed = run_cli("list", "quantizers")
    assert listed.returncode == 0
    assert "plugin 'typo' failed to load" in listed.stderr


NOTEBOOK_API = ("run", "sweep", "load_runs", "load_tokenizer")
RETURNED_TYPES = {"RunOutcome": "qbench.comparison.runner", "SweepOutcome": "qbench.commands",
                  "Tokenizer": "qbench.engine.model"}


def test_what_the_notebook_api_returns_is_public_and_importable_from_qbench():
    code = ("import sys, qbench\n"
            "from qbench import RunOutcome, SweepOutcome\n"
            "print(RunOutcome.__module__, SweepOutcome.__module__, 'torch' in sys.modules)\n"
            "from qbench import Tokenizer\n"
            "print(Tokenizer.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.split() == [RETURNED_TYPES["RunOutcome"], RETURNED_TYPES["SweepOutcome"], "False",
                                  RETURNED_TYPES["Tokenizer"]], out.stderr
    assert set(RETURNED_TYPES) <= set(qbench.__all__)
    from qbench.api import load_tokenizer, run, sweep

    hints = {f.__name__: f.__annotations__["return"] for f in (run, sweep, load_tokenizer)}
    assert hints == {"run": "list[RunOutcome]", "sweep": "SweepOutcome", "load_tokenizer": "Tokenizer"}


def test_the_notebook_api_is_public_functions_that_import_no_torch():
    assert set(NOTEBOOK_API) <= set(qbench.__all__)
    code = ("import sys, inspect, qbench\n"
            f"api = [getattr(qbench, n) for n in {NOTEBOOK_API!r}]\n"
            "print(all(inspect.isfunction(f) and f.__module__ == 'qbench.api' for f in api), 'torch' in sys.modules)\n"
            "import qbench.sweeps, qbench.comparison\n"
            "print(inspect.isfunction(qbench.sweep), inspect.isfunction(qbench.run))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.split() == ["True", "False", "True", "True"], out.stderr
