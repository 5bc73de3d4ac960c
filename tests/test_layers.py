"""qbench's floors hold: no cycles, no upward imports, torch-free layers free of torch, lazy imports justified.

The rules and the graph are in tests/layers.py; the planted-violation tests
show that each check can fail.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import layers
import pytest
from conftest import ROOT

PACKAGE = ROOT / "qbench"


@pytest.fixture(scope="module")
def graph():
    return layers.build_graph(PACKAGE)


def test_every_module_is_on_a_floor(graph):
    assert not layers.unplaced(graph), layers.unplaced(graph)
    assert len(graph.modules) > 60 and len(graph.edges) > 150  # the graph really was read


def test_no_import_cycles(graph):
    assert layers.cycles(graph) == []


def test_no_upward_imports_and_engine_and_report_independent(graph):
    assert layers.upward(graph) == []


def test_torch_free_floors_do_not_import_torch(graph):
    assert layers.torch_in_torch_free(graph) == []


def test_lazy_imports_only_defer_heavy_packages_and_say_so(graph):
    assert layers.unjustified_lazy(graph) == []


TORCH_FREE_MODULES = ["qbench.platform.plugins", "qbench.recipe.config", "qbench.recipe.identity",
                      "qbench.rundir.directory", "qbench.report.tables", "qbench.report.publish",
                      "qbench.report.baseline", "qbench.report.fit", "qbench.sweeps.plan"]


def test_importing_the_torch_free_floors_really_leaves_torch_out():
    code = "import sys\n" + "".join(f"import {m}\n" for m in TORCH_FREE_MODULES) + (
        "assert 'torch' not in sys.modules, 'torch imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_every_subpackage_has_a_docstring_map():
    for init in PACKAGE.glob("*/__init__.py"):
        text = init.read_text()
        assert text.startswith('"""'), init
        for module in init.parent.glob("*.py"):
            if module.stem != "__init__" and not module.stem.startswith("_"):
                assert module.stem in text, f"{init} does not mention {module.stem}"


# --- planted violations: a miniature package named qbench, so the real rules apply to it


def _plant(tmp_path: Path, files: dict[str, str]) -> layers.Graph:
    root = tmp_path / "qbench"
    for name, text in {"__init__.py": "", "errors.py": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for package in {p.parent for p in root.rglob("*.py")}:
        (package / "__init__.py").touch()
    return layers.build_graph(root)


def test_a_planted_cycle_is_caught(tmp_path):
    g = _plant(tmp_path, {"report/bd.py": "from qbench.report.stats import x\n",
                          "report/stats.py": "def f():\n    from qbench.report import bd  # a lazy import hides nothing\n"})
    assert layers.cycles(g) == [["qbench.report.bd", "qbench.report.stats"]]


def test_a_planted_upward_import_is_caught(tmp_path):
    g = _plant(tmp_path, {"rundir/directory.py": "from qbench.report.plots import grid\n",
                          "report/plots.py": "", "engine/train.py": "from qbench.report import tables\n",
                          "report/tables.py": ""})
    bad = layers.upward(g)
    assert any("qbench.rundir.directory" in b and "qbench.report.plots" in b for b in bad)
    assert any("independent" in b and "qbench.engine.train" in b for b in bad)


def test_torch_reaching_a_torch_free_floor_is_caught(tmp_path):
    g = _plant(tmp_path, {"platform/registry.py": "from qbench.engine import model\n",
                          "engine/model.py": "import torch\n"})
    assert layers.torch_in_torch_free(g) == ["qbench.platform.registry is torch-free but importing it imports torch"]


def test_a_lazy_import_of_a_light_module_or_without_a_comment_is_caught(tmp_path):
    g = _plant(tmp_path, {
        "recipe/config.py": "def f():\n    from qbench import errors\n",
        "engine/train.py": "def f():\n    import torch\n",
        "engine/data.py": "def f():\n    # deferred: loads torch only when this runs\n    import torch\n",
    })
    bad = layers.unjustified_lazy(g)
    assert any("light module qbench.errors" in b for b in bad)
    assert any("qbench.engine.train:2 imports torch lazily without a comment" in b for b in bad)
    assert not any("engine.data" in b for b in bad)
