"""The notebook API: qbench.run, qbench.sweep, qbench.load_runs, qbench.load_tokenizer, and the example using them."""

from __future__ import annotations

import csv
import importlib.util
import json
import textwrap

import pytest
from conftest import ROOT

import qbench

RD_CPU = ROOT / "results" / "published" / "sweeps" / "rd-cpu"


def test_load_runs_gives_one_row_per_committed_run():
    runs = qbench.load_runs(RD_CPU)
    committed = sorted(p.parent for p in RD_CPU.rglob("metrics.json"))
    assert len(committed) > 100
    assert len(runs) == len(committed)
    assert sorted(runs["run_dir"]) == sorted(map(str, committed))
    for name in ("config_hash", "rate", "seed", "recipe", "recipe_hash", "quantizer", "options", "point"):
        assert name in runs.columns
    assert (runs["rate"] == runs["bits"]).all()


def test_load_runs_has_the_columns_and_values_of_summary_csv():
    with open(ROOT / "results" / "v0.2" / "summary.csv", newline="") as f:
        published = {row["run_dir"]: row for row in csv.DictReader(f) if "/rd-cpu/" in row["run_dir"]}
    runs = qbench.load_runs("results/published/sweeps/rd-cpu")  # the same relative paths summary.csv has
    header = next(iter(published.values())).keys()
    assert list(runs.columns[: len(header)]) == list(header)
    assert len(published) == len(runs)
    for _, row in runs.iterrows():
        expected = published[row["run_dir"]]
        assert int(expected["seed"]) == row["seed"]
        assert expected["quantizer"] == row["quantizer"]
        assert float(expected["psnr"]) == pytest.approx(row["psnr"], rel=1e-12)
        metrics = json.loads((ROOT / row["run_dir"] / "metrics.json").read_text())
        assert row["config_hash"] == metrics["run"]["config_hash"]
        assert row["rate"] == metrics["model"]["bits_per_position"]


def test_load_runs_of_an_empty_folder_is_an_empty_frame(tmp_path):
    assert qbench.load_runs([tmp_path]).empty
    with pytest.raises(qbench.ConfigError, match="no such results directory"):
        qbench.load_runs(tmp_path / "missing")


def test_run_from_python_trains_scores_and_loads_the_tokenizer(tmp_path):
    torch = pytest.importorskip("torch")
    outcomes = qbench.run(["gsq"], recipe="smoke", overrides=["train.steps=2"], seed=3, out=tmp_path, progress=False)
    assert [(o.quantizer, o.status) for o in outcomes] == [("gsq", "ok")]
    run_dir = outcomes[0].run_dir
    assert run_dir.parent.parent == tmp_path
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["run"]["seed"] == 3 and record["train"]["steps"] == 2
    assert outcomes[0].metrics["psnr"]["value"] == record["metrics"]["psnr"]["value"]

    tokenizer = qbench.load_tokenizer(run_dir, use_ema=False)
    assert tokenizer.identity.quantizer == "gsq" and not tokenizer.training
    saved = torch.load(run_dir / "checkpoint.pt", weights_only=True)["model"]
    for name, value in tokenizer.state_dict().items():
        assert torch.equal(value, saved[name]), name
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    codes = tokenizer.encode(images)
    x_hat, out = tokenizer(images)
    assert torch.equal(codes, out.codes)
    assert tokenizer.decode(codes).shape == images.shape == x_hat.shape


def test_run_from_python_refuses_bad_input_before_training(tmp_path):
    with pytest.raises(qbench.ConfigError) as caught:
        qbench.run("gsq,nosuch", recipe="smoke", overrides=["train.stepz=2"], out=tmp_path / "runs")
    assert "nosuch" in str(caught.value) and "stepz" in str(caught.value)  # every problem at once
    assert not (tmp_path / "runs").exists()


def test_sweep_from_python_plans_and_returns_the_plan(tmp_path, capsys):
    path = tmp_path / "s.toml"
    path.write_text(textwrap.dedent("""
        name = "api-sweep"
        recipe = "smoke"
        quantizers = ["gsq"]
        seeds = [0, 1]
        [grid]
        "quantizers.gsq.groups" = [1, 2]
    """))
    outcome = qbench.sweep(path, out=tmp_path / "out", dry_run=True)
    assert outcome.results == [] and outcome.failed == []
    assert [p.status for p in outcome.plan.points] == ["new"] * 4
    assert "api-sweep" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()  # a dry run writes nothing


def test_the_notebook_example_runs_and_plots(tmp_path):
    pytest.importorskip("matplotlib")
    spec = importlib.util.spec_from_file_location("compare_in_python", ROOT / "examples" / "compare_in_python.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    figure = example.main(["--out", str(tmp_path), "--quantizers", "gsq,fsq"])
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list((tmp_path / "runs").rglob("metrics.json"))) == 2
