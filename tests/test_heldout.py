"""``eval.every``: held-out rows during training (on ``eval.heldout_split``, never test), and the report's curve."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pandas as pd
import pytest
import torch
from conftest import ROOT

import qbench
from qbench import DatasetSpec, hookimpl
from qbench.comparison import runner
from qbench.engine.data import build_dataset
from qbench.engine.evaluate import evaluate
from qbench.engine.model import load_tokenizer
from qbench.recipe.config import load_recipe
from qbench.report.publish import write_report
from qbench.report.tables import build_report
from qbench.rundir import checkpoint
from qbench_builtins.datasets import Photos


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


def test_the_last_heldout_row_is_the_final_model_on_val_and_the_record_is_scored_on_test(watched_and_plain):
    watched, _, _ = watched_and_plain
    last = [r for r in rows(watched.run_dir) if r.get("heldout_psnr")][-1]
    record = json.loads((watched.run_dir / "metrics.json").read_text())
    assert record["eval"] == {"split": "test", "images": 32, "heldout_split": "val"}
    assert record["metrics"]["psnr"]["protocol"]["eval_set"].endswith("/split=test")
    extras = record["metrics"]["psnr"]["extras"]  # the evaluation noise of the recorded score
    assert extras["standard_error"] == pytest.approx(extras["image_sd"] / 32 ** 0.5) and extras["image_sd"] > 0
    tokenizer, identity, _ = load_tokenizer(watched.run_dir)
    val = build_dataset(identity.recipe, "val")
    again = evaluate(tokenizer, runner.heldout_subset(val, 1000, 32), ["psnr", "ssim"], progress=False)
    assert float(last["heldout_psnr"]) == pytest.approx(again["psnr"]["value"], abs=1e-9)
    assert float(last["heldout_ssim"]) == pytest.approx(again["ssim"]["value"], abs=1e-9)
    assert float(last["heldout_psnr"]) != pytest.approx(record["metrics"]["psnr"]["value"], abs=1e-6)


def test_a_recipe_scored_on_val_has_its_last_heldout_row_equal_to_the_final_evaluation(tmp_path):
    recipe = load_recipe("smoke", ["eval.split='val'", "eval.every=3", "eval.heldout_images=1000",
                                   "eval.metrics=[\"psnr\",\"ssim\"]"])
    [run] = runner.run_comparison(["fsq"], recipe, out_root=tmp_path, progress=False)
    last = [r for r in rows(run.run_dir) if r.get("heldout_psnr")][-1]
    assert run.record["eval"]["split"] == "val"
    assert float(last["heldout_psnr"]) == pytest.approx(run.metrics["psnr"]["value"], abs=1e-9)
    assert float(last["heldout_ssim"]) == pytest.approx(run.metrics["ssim"]["value"], abs=1e-9)


READS: list[tuple[str, int]] = []


class RecordedPhotos(Photos):
    """The photos dataset, noting every item read as (split, index)."""

    def __getitem__(self, index):
        READS.append((self.split, int(index)))
        return super().__getitem__(index)


class RecordingPlugin:
    @hookimpl
    def qbench_register_datasets(self):
        return [DatasetSpec(name="recorded_photos", factory=f"{__name__}:RecordedPhotos")]


def test_training_and_images_look_at_val_only_and_the_final_scoring_alone_reads_test(tmp_path):
    READS.clear()
    regs = qbench.registries(extra_plugins={"recorded": RecordingPlugin()})
    # switching the dataset drops the old one's options: give the recording one the smoke recipe's strips
    recipe = load_recipe("smoke", ["data.dataset='recorded_photos'", "data.options={val_fraction=0.15, test_fraction=0.25}",
                                   "eval.every=2", "train.image_every=2"])
    [run] = runner.run_comparison(["gsq"], recipe, out_root=tmp_path, progress=False, regs=regs)
    assert run.status == "ok", run.reason
    trained = [i for i, (split, _) in enumerate(READS) if split == "train"]
    first, last = trained[0], trained[-1]
    # held-out rows and logged reconstructions while training: val, never test
    assert {split for split, _ in READS[first:last]} == {"train", "val"}
    # after the last step: its held-out row and image (val), the final evaluation (every test image
    # once), then recon.png (val)
    after = READS[last + 1:]
    assert {split for split, _ in after} == {"val", "test"}
    scored = [index for split, index in after if split == "test"]
    assert scored == list(range(32))  # recon.png, like the logged images, shows val
    first_test = after.index(("test", 0))
    assert {split for split, _ in after[:first_test] + after[first_test + 32:]} == {"val"}
    assert run.record["eval"] == {"split": "test", "images": 32, "heldout_split": "val"}


def test_heldout_rows_on_test_are_refused_in_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "qbench.cli", "run", "--recipe", "smoke", "--quantizers", "gsq",
                             "--set", "eval.heldout_split=test", "--set", "eval.every=2", "--out", str(tmp_path)],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and "eval.heldout_split must name a split other than test" in result.stderr
    assert not list(tmp_path.iterdir())


def test_a_missing_or_empty_split_is_one_line_and_exit_2(tmp_path):
    for overrides, message in (
            (["--set", "data.options.test_fraction=0"], "set data.options.test_fraction"),
            (["--set", "eval.split=val", "--set", "eval.heldout_split=nosuch", "--set", "eval.every=2"],
             "dataset split must be one of train, val, test, got 'nosuch'")):
        result = subprocess.run([sys.executable, "-m", "qbench.cli", "run", "--recipe", "smoke", "--quantizers", "gsq",
                                 *overrides, "--out", str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert not list(tmp_path.iterdir())


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


def test_load_runs_and_summary_csv_say_which_split_scored_each_run_and_on_how_many_images(watched_and_plain):
    _, _, out = watched_and_plain
    frame = qbench.load_runs(out / "watched")
    assert list(frame["eval_split"]) == ["test"] and list(frame["eval_images"]) == [32]
    write_report(build_report([out / "watched"]), out / "summary-report")
    summary = pd.read_csv(out / "summary-report" / "summary.csv")
    assert list(summary["eval_split"]) == ["test"] and list(summary["eval_images"]) == [32]
    # records written before the eval block: the split and count their metrics' protocol recorded
    published = qbench.load_runs(ROOT / "results" / "published" / "runs" / "cpu-default")
    assert set(published["eval_split"]) == {"val"} and set(published["eval_images"]) == {316}
