"""``eval.every``: held-out PSNR, SSIM and usage rows during training, and the report's curve of them."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
import torch
from conftest import ROOT

from qbench.comparison import runner
from qbench.recipe.config import load_recipe
from qbench.report.publish import write_report
from qbench.report.tables import build_report
from qbench.rundir import checkpoint


def rows(run_dir):
    with open(run_dir / "log.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def watched_and_plain(tmp_path_factory):
    out = tmp_path_factory.mktemp("heldout")
    # heldout_images above the split's size: the subset is the whole split, as the final evaluation scores it
    watched = load_recipe("smoke", ["eval.every=2", "eval.heldout_images=1000", "eval.metrics=[\"psnr\",\"ssim\"]"])
    plain = load_recipe("smoke", ["eval.metrics=[\"psnr\",\"ssim\"]"])
    [a] = runner.run_comparison(["gsq"], watched, out_root=out / "watched", progress=False)
    [b] = runner.run_comparison(["gsq"], plain, out_root=out / "plain", progress=False)
    return a, b, out


def test_heldout_rows_at_every_n_steps_and_the_last(watched_and_plain):
    watched, _, _ = watched_and_plain
    held = [r for r in rows(watched.run_dir) if r.get("heldout_psnr")]
    assert [int(r["step"]) for r in held] == [2, 4, 6]
    assert all(0 < float(r["heldout_ssim"]) <= 1 and 0 <= float(r["heldout_usage"]) <= 100 for r in held)


def test_the_last_heldout_row_equals_the_final_evaluation_on_the_same_images(watched_and_plain):
    watched, _, _ = watched_and_plain
    last = [r for r in rows(watched.run_dir) if r.get("heldout_psnr")][-1]
    record = json.loads((watched.run_dir / "metrics.json").read_text())
    assert float(last["heldout_psnr"]) == pytest.approx(record["metrics"]["psnr"]["value"], abs=1e-9)
    assert float(last["heldout_ssim"]) == pytest.approx(record["metrics"]["ssim"]["value"], abs=1e-9)


def test_measuring_heldout_rows_does_not_change_training(watched_and_plain):
    watched, plain, _ = watched_and_plain
    a, b = checkpoint.load(watched.run_dir)["model"], checkpoint.load(plain.run_dir)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert watched.record["run"]["config_hash"] == plain.record["run"]["config_hash"]  # seeds of one row


def test_the_report_draws_heldout_psnr_against_step(watched_and_plain):
    _, _, out = watched_and_plain
    report = build_report([out / "watched"])
    write_report(report, out / "report")
    assert list((out / "report").glob("*-heldout-psnr.png"))


def test_a_negative_eval_every_is_one_line_and_exit_2(tmp_path):
    result = subprocess.run([sys.executable, "-m", "qbench.cli", "run", "--recipe", "smoke", "--quantizers", "gsq",
                             "--set", "eval.every=-1", "--out", str(tmp_path)], capture_output=True, text=True,
                            cwd=ROOT)
    assert result.returncode == 2 and "eval.every must be >= 0" in result.stderr
    assert "Traceback" not in result.stderr and not list(tmp_path.iterdir())


def test_a_recipes_note_is_printed_under_the_table(tmp_path):
    smoke = (ROOT / "plugins" / "qbench_builtins" / "recipes" / "smoke.toml").read_text()
    recipe = tmp_path / "short.toml"
    recipe.write_text('note = "short training: not a ranking"\n' + smoke)
    result = subprocess.run([sys.executable, "-m", "qbench.cli", "run", "--recipe", str(recipe), "--quantizers", "fsq",
                             "--set", "train.steps=1", "--out", str(tmp_path / "out")], capture_output=True, text=True,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr
    table_end = result.stdout.index("run directories:")
    assert "note: short training: not a ranking" in result.stdout[:table_end]


def test_cpu_default_says_it_is_short_training_and_points_to_the_converged_recipe():
    note = load_recipe("cpu-default", []).note
    assert "short training" in note and "cpu-converged" in note and "results/README.md" in note
