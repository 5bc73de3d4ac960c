"""The README's two set-up commands are exactly what CI runs."""

from __future__ import annotations

import re

from conftest import ROOT


def setup_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, re.S)]


def test_readme_has_install_and_test_commands():
    install, test = setup_commands()
    assert "pip install" in install and "qbench run" in install
    assert "pytest" in test


def test_ci_runs_exactly_the_readme_commands():
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    for command in setup_commands():
        assert command in ci_lines, f"README command not run verbatim by .ci/run: {command}"


def test_readme_example_plugin_matches_the_shipped_example():
    text = (ROOT / "README.md").read_text()
    hooks = (ROOT / "examples" / "qbench-sign-quantizer" / "qbench_sign" / "hooks.py").read_text()
    for line in ('name="sign"', 'factory="qbench_sign.quantizer:SignQuantizer"', "@qbench.hookimpl"):
        assert line in hooks and line in text
