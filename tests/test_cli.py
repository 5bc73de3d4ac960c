"""The CLI: exit codes, one-line user errors, no torch for listing."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT, make_distribution, run_cli

import qbench

BUILTIN_QUANTIZERS = ["bsq", "fsq", "gsq", "ibq", "identity", "lfq", "rvq", "simvq", "vq"]

THIRD_PARTY = """
import qbench

@qbench.hookimpl
def qbench_register_quantizers():
    return [qbench.QuantizerSpec(name="hq", factory="hermetic_plugin.hooks:nothing", description="a third party's")]

@qbench.hookimpl
def qbench_register_loggers():
    return [qbench.LoggerSpec(name="hlog", factory="hermetic_plugin.hooks:nothing", description="a third party's")]
"""


@pytest.fixture(params=["builtins only", "a third-party plugin installed"])
def third_party(request, site):
    """The suite must pass whatever else is installed: each test using this runs with and without a plugin."""
    if request.param != "builtins only":
        make_distribution(site, "hermetic-plugin", "0.1", {"hermetic": "hermetic_plugin.hooks"},
                          {"hermetic_plugin/__init__.py": "", "hermetic_plugin/hooks.py": THIRD_PARTY})
    return request.param != "builtins only"


def test_unknown_quantizer_exits_2_with_known_names_and_suggestion(third_party):
    result = run_cli("run", "--quantizers", "nosuch")
    assert result.returncode == 2
    assert "unknown quantizer 'nosuch'" in result.stderr
    known = result.stderr.strip().splitlines()[-1].partition("; known: ")[2].split(", ")
    assert known == sorted(known) and set(BUILTIN_QUANTIZERS) <= set(known)
    assert ("hq" in known) is third_party
    assert "qbench list quantizers" in result.stderr
    assert "Traceback" not in result.stderr
    close = run_cli("run", "--quantizers", "gsq,vqq")
    assert close.returncode == 2 and "did you mean 'vq'" in close.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--set", "train.stepz=3"], "unknown recipe key 'train.stepz'"),
        (["run", "--set", "train.steps=many"], "train.steps must be int"),
        (["run", "--set", "nokeyvalue"], "--set expects KEY=VALUE"),
        (["run", "--recipe", "nosuch"], "unknown recipe 'nosuch'"),
        (["run", "--recipe", "missing/file.toml"], "recipe file not found"),
        (["run", "--seed", "x"], "invalid int value"),
        (["list", "nosuch"], "invalid choice"),
    ],
)
def test_user_errors_are_one_line_exit_2(args, message):
    result = run_cli(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("argv", [["list"], ["list", "recipes"], ["plugins"], ["--help"]])
def test_listing_does_not_import_torch(argv):
    code = (
        "import sys, qbench.cli\n"
        f"try:\n    qbench.cli.main({argv!r})\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_list_shows_every_kind_with_origin():
    result = run_cli("list")
    assert result.returncode == 0
    for heading in ("quantizers:", "backbones:", "metrics:", "datasets:", "recipes:"):
        assert heading in result.stdout
    assert f"builtins {qbench.__version__}" in result.stdout
    assert "cpu-default" in result.stdout


def test_list_loggers_shows_the_builtins_and_imports_no_tracker(third_party):
    code = (
        "import sys, qbench.cli\n"
        "qbench.cli.main(['list', 'loggers'])\n"
        "heavy = [m for m in ('torch', 'tensorboard', 'wandb', 'mlflow') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()[3:] if line.strip()]
    assert [row[0] for row in rows if row[-2:] == ["builtins", qbench.__version__]] == [
        "csv", "mlflow", "tensorboard", "wandb"]
    assert ("hlog" in [row[0] for row in rows]) is third_party
    assert "loggers:" in run_cli("list").stdout


NEEDS_PACKAGE = """
import qbench

@qbench.hookimpl
def qbench_register_loggers():
    return [qbench.LoggerSpec(name="needy", factory="needy_logger.hooks:nothing",
                              requires=("qbench_absent_tracker",), install="pip install 'needy[tracker]'")]
"""


def test_unknown_logger_and_missing_package_exit_2_before_training(site, tmp_path):
    make_distribution(site, "needy-logger", "0.1", {"needy": "needy_logger.hooks"},
                      {"needy_logger/__init__.py": "", "needy_logger/hooks.py": NEEDS_PACKAGE})
    out = tmp_path / "runs"
    typo = run_cli("run", "--recipe", "smoke", "--quantizers", "gsq", "--log", "tensorbord", "--out", str(out))
    assert typo.returncode == 2 and "Traceback" not in typo.stderr
    assert "unknown logger 'tensorbord' (did you mean 'tensorboard'?)" in typo.stderr
    missing = run_cli("run", "--recipe", "smoke", "--quantizers", "gsq", "--log", "needy", "--out", str(out))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert missing.stderr.strip().splitlines()[-1] == (
        "qbench: error: logger 'needy' needs the qbench_absent_tracker package: pip install 'needy[tracker]'")
    assert not out.exists()


def test_list_quantizers_names_each_paper():
    result = run_cli("list", "quantizers")
    assert result.returncode == 0
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[3:] if line.strip()}
    papers = {"lfq": "2310.05737", "bsq": "2406.07548", "simvq": "2411.02038", "ibq": "2412.02692", "gsq": "2412.02632"}
    for name, arxiv in papers.items():
        assert arxiv in lines[name], lines.get(name)


def test_main_returns_exit_code_members(capsys):
    from qbench import cli
    from qbench.errors import ExitCode

    assert cli.main(["list", "quantizers"]) is ExitCode.OK
    assert cli.main(["list", "quantizerz"]) is ExitCode.USER_ERROR
    assert "invalid choice: 'quantizerz'" in capsys.readouterr().err
    assert [int(c) for c in ExitCode] == [0, 1, 2, 130]
