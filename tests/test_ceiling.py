"""The unquantized ceiling: the ``identity`` quantizer and how reports treat it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import stats
from test_report import ladder_runs, psnr_metrics, write_run

import qbench
from qbench.report import figures, plots
from qbench.report.columns import fmt
from qbench.report.tables import build_report
from qbench.testing import check_quantizer


def test_identity_passes_the_latent_through_with_no_codes_and_no_rate():
    check_quantizer("identity", dim=4)
    q = qbench.registries().quantizers.create("identity", dim=4)
    z = torch.randn(2, 4, 3, 5, requires_grad=True)
    out = q(z)
    assert torch.equal(out.z_q, z) and out.codes.shape == (2, 3, 5, 0) and float(out.loss) == 0.0
    assert q.continuous and q.bits_per_position == float("inf") and q.tokens_per_position == 0
    with pytest.raises(qbench.ConfigError, match="continuous"):
        q.decode(out.codes)


def test_the_kit_rejects_a_quantizer_that_claims_to_be_continuous_but_quantizes():
    q = qbench.registries().quantizers.create("identity", dim=4)
    q.tokens_per_position = 1
    with pytest.raises(AssertionError, match="no tokens"):
        check_quantizer(q)


def _with_ceiling(root, psnrs):
    truth = ladder_runs(root)
    for seed, psnr in enumerate(psnrs):
        path = write_run(root, "identity", {"dim": 4}, seed, psnr_metrics(psnr), bits=None, recipe_hash="d4",
                         sweep={"name": "ladder", "file": "ladder.toml", "point": {"model.latent_dim": 4}})
        record = json.loads((path / "metrics.json").read_text())
        record["model"]["continuous"] = True
        (path / "metrics.json").write_text(json.dumps(record))
    return truth


def test_a_ceiling_is_the_last_row_out_of_bd_and_paired_tests(tmp_path):
    _with_ceiling(tmp_path / "runs", [40.0, 41.0, 42.0])
    report = build_report([tmp_path / "runs"], baseline="vq")
    frame = report.tables[0].frame
    last = frame.iloc[-1]
    assert last["quantizer"] == "identity (ceiling)" and last["bits/pos"] == "continuous"
    for section in report.sections:
        if "paired" in section.title or "Bjøntegaard" in section.title:
            assert not section.frame.astype(str).apply(lambda c: c.str.contains("identity")).any().any()


def test_the_gap_to_the_ceiling_is_paired_by_seed(tmp_path):
    ceiling = [40.0, 41.5, 42.0]
    truth = _with_ceiling(tmp_path / "runs", ceiling)
    report = build_report([tmp_path / "runs"])
    gap = next(s for s in report.sections if "ceiling" in s.title).frame
    row = gap[gap["curve"].str.startswith("gsq") & gap["curve"].str.contains("latent_dim=4")].iloc[0]
    lowest = np.subtract(ceiling, [truth[("gsq", 4, 8, s)] for s in range(3)])
    interval = stats.ttest_1samp(lowest, 0).confidence_interval(0.95)
    assert row["gap PSNR (dB) at lowest"] == f"{fmt(lowest.mean())} [{fmt(interval.low)}, {fmt(interval.high)}] (n=3)"
    highest = np.subtract(ceiling, [truth[("gsq", 4, 14, s)] for s in range(3)])
    assert row["gap PSNR (dB) at highest"].startswith(fmt(highest.mean()) + " [")


def test_rate_distortion_plots_draw_the_ceiling_as_a_level(tmp_path, monkeypatch):
    ceiling = [40.0, 41.0, 42.0]
    _with_ceiling(tmp_path / "runs", ceiling)
    drawn = []
    monkeypatch.setattr(plots, "rate_distortion", lambda series, ylabel, path, title, ceilings=(): drawn.append(
        (series, ceilings)))
    report = build_report([tmp_path / "runs"])
    figures.table_figures(report.runs, report.metrics, tmp_path, "t")
    series, ceilings = drawn[0]
    assert [c["mean"] for c in ceilings] == [pytest.approx(41.0)]
    assert not any("identity" in s["label"] for s in series)  # never on the rate axis


def test_a_ceiling_trains_and_scores_end_to_end(tmp_path):
    outcomes = __import__("qbench.comparison.runner", fromlist=["x"]).run_comparison(
        ["identity"], __import__("qbench.recipe.config", fromlist=["x"]).load_recipe("smoke", ["train.steps=2"]),
        out_root=tmp_path, progress=False)
    record = json.loads((outcomes[0].run_dir / "metrics.json").read_text())
    assert record["run"]["status"] == "ok" and record["model"]["continuous"] is True
    assert record["metrics"]["psnr"]["status"] == "ok"
    assert record["metrics"]["usage"]["status"] == "unavailable"


def test_a_ceiling_is_compared_only_with_curves_trained_as_it_was(tmp_path):
    root = tmp_path / "runs"
    for steps, offset in ((500, 0.0), (1000, 2.0)):
        for q in ("gsq", "identity"):
            for seed in range(2):
                path = write_run(root, q, {"dim": 4}, seed, psnr_metrics(20.0 + offset + (1.0 if q == "identity" else 0)),
                                 bits=None if q == "identity" else 10.0, recipe_hash=f"s{steps}", config=f"{q}{steps}",
                                 sweep={"name": "steps", "file": "s.toml", "point": {"train.steps": steps}})
                if q == "identity":
                    record = json.loads((path / "metrics.json").read_text())
                    record["model"]["continuous"] = True
                    (path / "metrics.json").write_text(json.dumps(record))
    gap = next(s for s in build_report([root]).sections if "ceiling" in s.title).frame
    assert len(gap) == 2  # each ceiling with the gsq run of its own budget, not with both
    assert set(gap["gap PSNR (dB) at lowest"]) == {"1.00 [1.00, 1.00] (n=2)"}
