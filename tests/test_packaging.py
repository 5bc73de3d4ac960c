"""A wheel built from the repository works without the source tree: recipes ship as package data."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import ROOT


def test_wheel_install_lists_and_runs_the_shipped_recipes(tmp_path):
    wheels, target, elsewhere = tmp_path / "wheels", tmp_path / "site", tmp_path / "cwd"
    elsewhere.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    build = [*pip, "wheel", str(ROOT), "--no-deps", "-w", str(wheels)]
    # the environment's own setuptools when it can build wheels (fast, offline), else pip's isolated build
    if subprocess.run([*build, "--no-build-isolation"], capture_output=True, timeout=300).returncode != 0:
        subprocess.run(build, check=True, capture_output=True, timeout=600)
    [wheel] = wheels.glob("qbench-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True,
                   capture_output=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": str(target)}

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "qbench.cli", *args], capture_output=True, text=True,
                              cwd=elsewhere, env=env, timeout=300)

    where = subprocess.run([sys.executable, "-c", "import qbench; print(qbench.__file__)"], capture_output=True,
                           text=True, cwd=elsewhere, env=env)
    assert where.stdout.startswith(str(target)), where.stdout  # the wheel's copy, not the source tree
    listed = cli("list", "recipes")
    assert listed.returncode == 0, listed.stderr
    assert "cpu-default" in listed.stdout and "smoke" in listed.stdout
    ran = cli("run", "--recipe", "smoke", "--quantizers", "gsq", "--set", "train.steps=2", "--no-progress",
              "--out", str(tmp_path / "runs"))
    assert ran.returncode == 0, ran.stderr
    assert list((tmp_path / "runs" / "smoke").glob("gsq-seed0-*/metrics.json"))
