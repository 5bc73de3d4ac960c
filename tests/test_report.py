"""qbench report over synthetic run directories."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from qbench import results
from qbench.config import recipe_from_dict
from qbench.identity import RunIdentity
from qbench.publish import write_report
from qbench.report import build_report, render_text


def metric(value, status="ok", reason="", protocol=None):
    return {"status": status, "value": value, "reason": reason, "protocol": protocol or {"images": 64}, "extras": {}}


def make_run(root, recipe, quantizer, options, seed, *, status="ok", reason="", psnr=25.0, usage=50.0, rfid=None, grid=True):
    identity = RunIdentity(dataclasses.replace(recipe, seed=seed), quantizer, {"dim": recipe.model.latent_dim, **options})
    directory = results.RunDirectory.create(root, recipe.name, quantizer, seed)
    run_dir = directory.path
    directory.write_config(identity)
    metrics = {"psnr": metric(psnr), "usage": metric(usage), "ssim": metric(0.8)}
    metrics["rfid"] = metric(rfid) if rfid is not None else metric(None, "unavailable", "Inception weights missing")
    record = results.build_record(
        identity, status=status, reason=reason,
        failed_step=7 if status == "failed" else None, metrics=metrics if status == "ok" else {},
        model_info={"bits_per_position": 10.0, "parameters": {"total": 2_000_000}},
        train_info={"steps": 10, "wall_time_s": 60.0},
    )
    directory.write_metrics(record)
    directory.write_log([{"step": 1, "loss": 1.0}, {"step": 2, "loss": 0.5}])
    if grid:
        rng = np.random.default_rng(0)
        originals = rng.integers(0, 256, (4, 3, 8, 8), dtype=np.uint8)
        directory.write_recon_grid(originals, np.clip(originals.astype(int) + seed, 0, 255))
    return run_dir


@pytest.fixture
def recipes():
    return recipe_from_dict({"name": "a"}), recipe_from_dict({"name": "b", "train": {"steps": 7}})


def test_two_recipes_give_two_tables(tmp_path, recipes):
    a, b = recipes
    make_run(tmp_path, a, "gsq", {"dim": 8, "groups": 1}, 0)
    make_run(tmp_path, b, "gsq", {"dim": 8, "groups": 1}, 0)
    report = build_report([tmp_path])
    assert len(report.tables) == 2
    assert {t["runs"]["recipe"].iloc[0] for t in report.tables} == {"a", "b"}


def test_same_name_different_hash_is_not_mixed(tmp_path):
    make_run(tmp_path, recipe_from_dict({"name": "a"}), "vq", {"dim": 8}, 0)
    make_run(tmp_path, recipe_from_dict({"name": "a", "optim": {"lr": 1e-3}}), "vq", {"dim": 8}, 0)
    assert len(build_report([tmp_path]).tables) == 2


def test_seeds_aggregate_to_mean_and_std(tmp_path, recipes):
    a, _ = recipes
    for seed, psnr in enumerate([24.0, 26.0, 28.0]):
        make_run(tmp_path, a, "vq", {"dim": 8, "codebook_size": 1024}, seed, psnr=psnr)
    frame = build_report([tmp_path]).tables[0]["frame"]
    assert len(frame) == 1
    assert frame.iloc[0]["seeds"] == 3
    assert frame.iloc[0]["PSNR (dB) ↑"] == "26.0 ± 2.00 (n=3)"


def test_failed_run_and_unavailable_metric_are_not_numbers(tmp_path, recipes):
    a, _ = recipes
    make_run(tmp_path, a, "gsq", {"dim": 8}, 0)
    make_run(tmp_path, a, "fsq", {"dim": 8}, 0, status="failed", reason="non-finite loss at step 7")
    frame = build_report([tmp_path]).tables[0]["frame"]
    gsq = frame[frame["quantizer"] == "gsq"].iloc[0]
    fsq = frame[frame["quantizer"] == "fsq"].iloc[0]
    assert gsq["rFID ↓"] == "unavailable"
    assert fsq["status"].startswith("failed: non-finite loss")
    assert fsq["PSNR (dB) ↑"] == "—"


def test_truncated_metrics_json_is_reported_as_broken(tmp_path, recipes):
    a, _ = recipes
    good = make_run(tmp_path, a, "gsq", {"dim": 8}, 0)
    bad = make_run(tmp_path, a, "vq", {"dim": 8}, 0)
    text = (bad / "metrics.json").read_text()
    (bad / "metrics.json").write_text(text[: len(text) // 2])
    report = build_report([tmp_path])
    assert [d for d, _ in report.broken] == [bad]
    assert "not valid JSON" in report.broken[0][1]
    assert list(report.tables[0]["runs"]["run_dir"]) == [str(good)]
    assert "broken run" in render_text(report)


def test_written_report_has_csv_markdown_and_plots(tmp_path, recipes):
    a, _ = recipes
    for q in ("gsq", "vq"):
        make_run(tmp_path / "runs", a, q, {"dim": 8}, 0, rfid=3.0)
    report = build_report([tmp_path / "runs"])
    readme = write_report(report, tmp_path / "out")
    names = {p.name for p in (tmp_path / "out").iterdir()}
    assert "summary.csv" in names
    assert any(n.endswith("rd-psnr.png") for n in names)
    assert any(n.endswith("rd-rfid.png") for n in names)
    assert any(n.endswith("reconstructions.png") for n in names)
    assert any(n.endswith("curves.png") for n in names)
    text = readme.read_text()
    assert "| gsq |" in text and "PSNR (dB) ↑" in text


def test_metrics_record_is_atomic_json(tmp_path, recipes):
    a, _ = recipes
    run = make_run(tmp_path, a, "gsq", {"dim": 8}, 0)
    record = json.loads((run / "metrics.json").read_text())
    assert record["run"]["recipe_hash"] == a.hash()
    assert record["env"]["torch"]
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


def test_report_cli_writes_files_and_rejects_missing_paths(tmp_path, recipes):
    from conftest import run_cli

    a, _ = recipes
    make_run(tmp_path / "runs", a, "gsq", {"dim": 8}, 0)
    intro = tmp_path / "intro.md"
    intro.write_text("# Published comparison\n\nRegenerate with: qbench run\n")
    result = run_cli("report", str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--intro", str(intro))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "README.md").read_text().startswith("# Published comparison")
    missing = run_cli("report", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "no such results directory" in missing.stderr
