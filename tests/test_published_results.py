"""The published page holds only numbers measured by the committed runs, and all of them."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT

RESULTS = ROOT / "results"
PUBLISHED = RESULTS / "published"
TUNE_ROOT = PUBLISHED / "tune"
TUNE_TRIALS = TUNE_ROOT.relative_to(ROOT)
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
    # tuning trials are scored on val and published through their study's storage (next test), not as
    # comparison runs: their comparison is the re-training of the best configurations on test
    runs = {d for d in published_runs() if not d.startswith(str(TUNE_TRIALS))}
    missing = sorted(runs - listed)
    assert not missing, f"finished runs on no published page (rerun the report command in results/INTRO.md): {missing}"


def test_every_published_tuning_trial_is_a_trial_of_its_published_study():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for storage in sorted(TUNE_ROOT.glob("*/study.db")):
        url = f"sqlite:///{storage}"
        folders = set()
        for summary_ in optuna.get_all_study_summaries(url):
            for trial in optuna.load_study(study_name=summary_.study_name, storage=url).get_trials(deepcopy=False):
                folder = str(trial.user_attrs.get("run_folder", ""))
                if folder:
                    folders.add("/".join(Path(folder).parts[-3:]))  # trials/QUANTIZER-RATEbit/trial-NNNN
        records = {d for d in published_runs() if d.startswith(str(storage.parent.relative_to(ROOT)))}
        assert records, storage
        for record in records:
            trial_folder = "/".join(Path(record).parts[-5:-2])
            assert trial_folder in folders, (record, "is no trial of", storage)


def test_a_complete_published_tuning_study_gave_every_quantizer_the_same_finished_trials():
    """Each (quantizer, rate) study of a study whose overlays are published has exactly its planned trials."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    checked = 0
    for storage in sorted(TUNE_ROOT.glob("*/study.db")):
        if not (storage.parent / "best").is_dir():
            continue  # still running when it was published: its count is only a snapshot
        url = f"sqlite:///{storage}"
        finished = {}
        for summary_ in optuna.get_all_study_summaries(url):
            study = optuna.load_study(study_name=summary_.study_name, storage=url)
            states = [t.state for t in study.get_trials(deepcopy=False)]
            finished[summary_.study_name] = sum(s in (optuna.trial.TrialState.COMPLETE,
                                                      optuna.trial.TrialState.PRUNED) for s in states)
            assert finished[summary_.study_name] == study.user_attrs["trials"], (storage, summary_.study_name)
            assert len(list((storage.parent / "best").glob(f"{study.user_attrs['quantizer']}-*bit.toml"))) >= 1
        assert len(set(finished.values())) == 1, finished
        checked += 1
    assert checked, "no complete tuning study is published"




def test_a_configurations_n_counts_distinct_seeds():
    """A run repeated with the same identity and seed (a seed-0 point two studies share) counts once."""
    pages = [p for p in [RESULTS / "summary.csv", *sorted(RESULTS.glob("*/summary.csv"))]
             if p.exists() and p.parent.name != "v0.1"]  # v0.1's page predates the per-configuration columns
    assert pages
    for page in pages:
        table = pd.read_csv(page)
        ok = table[(table["status"] == "ok") & (table["psnr_status"] == "ok")]
        for group, runs in ok.groupby("group"):
            assert set(runs["psnr_n"]) == {runs["seed"].nunique()}, (page, group)
    v02 = pd.read_csv(RESULTS / "v0.2" / "summary.csv")
    rd = v02[(v02["quantizer"] == "gsq") & (v02["bits"] == 10) & v02["run_dir"].str.contains("/rd-cpu/")]
    gsq10 = v02[v02["group"].isin(rd["group"])]  # its seed-0 repeat in convergence-cpu included
    assert set(gsq10["psnr_n"]) == {8} and gsq10["seed"].nunique() == 8 and len(gsq10) > 8


def test_every_page_and_its_intro_agree():
    intros = [p for p in [RESULTS / "INTRO.md", *sorted(RESULTS.glob("*/INTRO.md"))] if p.exists()]
    assert intros
    for intro in intros:
        page = (intro.parent / "README.md").read_text()
        assert page.startswith(intro.read_text().strip()[:200]), intro
