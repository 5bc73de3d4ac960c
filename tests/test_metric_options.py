"""Metric options: ``[metrics.NAME]`` tables and ``--set metrics.NAME.KEY=VALUE``.

Checked against the metric factory like quantizer options (before training,
one line, exit 2, no run folder), recorded in the run's metric protocol, and
part of the recipe hash only when a recipe sets one.
"""

from __future__ import annotations

import json

import pytest
from test_reliability import SMOKE, qbench, run_folders

from qbench.recipe.config import load_recipe


@pytest.mark.parametrize(
    "setting, message",
    [
        ("metrics.lpips.nett=vgg", "metric 'lpips' has no option 'nett' (did you mean 'net'?)"),
        ("metrics.ssim.window=eleven", "metric 'ssim': option window must be an integer"),
        ("metrics.lpipz.net=vgg", "unknown metric 'lpipz'"),
        # nan passes `sigma <= 0`; it trained, crashed in the report and recorded ssim as ok without a value
        ("metrics.ssim.sigma=nan", "metric 'ssim': option sigma must be a finite number, got nan"),
        ("metrics.ssim.sigma=inf", "metric 'ssim': option sigma must be a finite number, got inf"),
    ],
)
def test_a_bad_metric_option_is_one_line_exit_2_and_no_run_folder(capsys, tmp_path, setting, message):
    out = tmp_path / "runs"
    status, errors, _ = qbench(capsys, *SMOKE, "--quantizers", "gsq", "--set", 'eval.metrics=["psnr","ssim","lpips"]',
                               "--set", "data.image_size=32", "--set", setting, "--out", str(out))
    assert status == 2
    assert len(errors) == 1 and message in errors[0], errors
    assert run_folders(out) == []


def test_metric_options_are_recorded_in_the_runs_metric_protocol(capsys, tmp_path):
    out = tmp_path / "runs"
    status, errors, _ = qbench(capsys, *SMOKE, "--quantizers", "gsq", "--set", 'eval.metrics=["psnr","lpips","ssim"]',
                               "--set", "metrics.lpips.net=vgg", "--set", "metrics.ssim.window=7", "--out", str(out))
    assert status == 0, errors
    (record,) = [json.loads(p.read_text()) for p in out.rglob("metrics.json")]
    metrics = record["metrics"]
    # lpips is unavailable without its weights here; what was asked for is recorded all the same
    assert metrics["lpips"]["protocol"]["options"] == {"net": "vgg"}
    assert metrics["ssim"]["status"] == "ok" and metrics["ssim"]["protocol"]["options"] == {"window": 7}
    assert "options" not in metrics["psnr"]["protocol"]


def test_metric_options_split_the_recipe_hash_and_the_protocol_only_when_set():
    plain = load_recipe("smoke")
    vgg = load_recipe("smoke", ["metrics.lpips.net=vgg"])
    alex = load_recipe("smoke", ["metrics.lpips.net=alex"])
    assert plain.metrics == {} and vgg.metric_options("lpips") == {"net": "vgg"}
    assert len({plain.hash(), vgg.hash(), alex.hash()}) == 3
    # a recipe without [metrics.*] hashes as before the tables existed
    assert plain.hash() == load_recipe("smoke", ["metrics={}"]).hash()


@pytest.mark.parametrize(
    "settings, message",
    [
        (['eval.metrics=["psnr","lpips"]'],
         "lpips (metrics.lpips.net=alex) needs images of at least 31x31: its backbone's feature maps vanish below "
         "that; got 16x16: use data.image_size >= 31, or metrics.lpips.net=vgg (>= 16)"),
        (['eval.metrics=["psnr","lpips"]', "metrics.lpips.net=squeeze"],
         "lpips (metrics.lpips.net=squeeze) needs images of at least 17x17"),
        (['eval.metrics=["psnr","ssim"]', "metrics.ssim.window=17"],
         "ssim needs images of at least 17x17 (its window), got 16x16"),
        (["loss.lpips_weight=1.0", "loss.lpips_net=alex"],
         "the LPIPS loss (loss.lpips_net=alex) needs images of at least 31x31"),
    ],
)
def test_an_image_size_a_metric_cannot_take_is_refused_before_training(capsys, tmp_path, settings, message):
    # AlexNet's LPIPS on 16x16 crops used to fail after training with torch's "Output size is too small"
    out = tmp_path / "runs"
    args = [item for setting in settings for item in ("--set", setting)]
    status, errors, _ = qbench(capsys, *SMOKE, "--quantizers", "gsq", *args, "--out", str(out))
    assert status == 2
    assert [e for e in errors if message in e] and all(e.startswith("qbench: error: ") for e in errors), errors
    assert run_folders(out) == []


NAN_METRIC = """
import torch
import qbench

class Undefined(qbench.Metric):
    def update(self, batch):
        pass
    def state(self):
        return {}
    def load_state(self, state):
        pass
    def compute(self):
        return {"value": float("nan")}

@qbench.hookimpl
def qbench_register_metrics():
    return [qbench.MetricSpec(name="undefined", factory="nan_metric.hooks:Undefined", higher_is_better=True)]
"""


def test_a_non_finite_metric_value_is_failed_not_ok_and_the_folder_still_reports(capsys, tmp_path, site):
    from conftest import make_distribution

    import qbench as api

    make_distribution(site, "nan-metric", "0.1", {"nanmetric": "nan_metric.hooks"},
                      {"nan_metric/__init__.py": "", "nan_metric/hooks.py": NAN_METRIC})
    out = tmp_path / "runs"
    status, errors, _ = qbench(capsys, *SMOKE, "--quantizers", "gsq", "--set", 'eval.metrics=["psnr","undefined"]',
                               "--set", "train.steps=1", "--out", str(out))
    assert status == 0, errors
    (record,) = [json.loads(p.read_text()) for p in out.rglob("metrics.json")]
    undefined = record["metrics"]["undefined"]
    assert undefined["status"] == "failed" and undefined["value"] is None
    assert "the value is not finite (nan)" in undefined["reason"]
    assert record["metrics"]["psnr"]["status"] == "ok"
    runs = api.load_runs(out)  # no crash, and no broken run: failed is a status, never a number
    assert list(runs["undefined_status"]) == ["failed"] and runs["undefined"].isna().all()
    assert runs["psnr"].notna().all()
