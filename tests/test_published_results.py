"""The published page holds only numbers measured by the committed runs, and all of them."""

from __future__ import annotations

import json
import math
import subprocess

import pandas as pd
import pytest
from conftest import ROOT

RESULTS = ROOT / "results"
PUBLISHED = RESULTS / "published"
METRICS = ("psnr", "ssim", "usage", "perplexity")


def published_runs() -> dict[str, dict]:
    """Committed runs (a study still writing its runs into the folder is not published yet)."""
    try:
        listed = subprocess.run(["git", "ls-files", "--", str(PUBLISHED)], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.split()
        files = [ROOT / f for f in listed if f.endswith("/metrics.json")] or list(PUBLISHED.rglob("metrics.json"))
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: every run present
        files = list(PUBLISHED.rglob("metrics.json"))
    return {str(p.parent.relative_to(ROOT)): json.loads(p.read_text()) for p in files}


@pytest.fixture(scope="module")
def summary() -> pd.DataFrame:
    """Every published page's runs: results/ and the earlier comparisons kept beside it (v0.1/)."""
    paths = [RESULTS / "summary.csv", *sorted(RESULTS.glob("*/summary.csv"))]
    frames = [pd.read_csv(p) for p in paths if p.exists()]
    if not frames:
        pytest.skip("no published summary")
    return pd.concat(frames, ignore_index=True)


def test_every_published_number_is_a_committed_runs_measurement(summary):
    runs = published_runs()
    for _, row in summary.iterrows():
        record = runs.get(row["run_dir"])
        assert record is not None, f"results/summary.csv cites {row['run_dir']}, which holds no metrics.json"
        for name in METRICS:
            entry = record["metrics"].get(name) or {}
            if entry.get("status") == "ok":
                assert math.isclose(row[name], entry["value"], rel_tol=1e-9), (row["run_dir"], name)
            else:
                assert pd.isna(row[name]), f"{row['run_dir']}: {name} is {entry.get('status')} but published"


def test_every_finished_published_run_is_on_the_page(summary):
    listed = set(summary["run_dir"])
    missing = sorted(set(published_runs()) - listed)
    assert not missing, f"finished runs on no published page (rerun the report command in results/INTRO.md): {missing}"


def test_the_page_and_its_intro_agree():
    intro, page = (RESULTS / "INTRO.md").read_text(), (RESULTS / "README.md").read_text()
    assert page.startswith(intro.strip()[:200])
