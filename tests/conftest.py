"""Shared fixtures: fake installed distributions for the entry-point path."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_PLUGIN = ROOT / "examples" / "qbench-sign-quantizer"


def make_distribution(site: Path, name: str, version: str, entry_points: dict[str, str], files: dict[str, str]) -> None:
    """An installed distribution as importlib.metadata sees it: modules plus a .dist-info."""
    for rel, text in files.items():
        path = site / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    eps = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[qbench]\n{eps}")


def install_example_plugin(site: Path) -> None:
    """'Install' the README's example plugin into ``site`` (files + dist metadata)."""
    shutil.copytree(EXAMPLE_PLUGIN / "qbench_sign", site / "qbench_sign")
    import tomllib

    meta = tomllib.loads((EXAMPLE_PLUGIN / "pyproject.toml").read_text())["project"]
    make_distribution(site, meta["name"], meta["version"], meta["entry-points"]["qbench"], {})


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A fresh directory on sys.path (and PYTHONPATH for subprocesses)."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    yield site
    for mod in [m for m in sys.modules if m.startswith(("qbench_sign", "dup_plugin", "broken_plugin"))]:
        del sys.modules[mod]


def run_cli(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``python -m qbench.cli ARGS`` in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "qbench.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )
