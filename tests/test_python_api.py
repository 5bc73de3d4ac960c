"""The notebook API: qbench.run, qbench.sweep, qbench.load_runs, qbench.load_tokenizer, and the example using them."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
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


def test_load_runs_of_an_empty_folder_is_an_empty_frame_with_the_columns(tmp_path):
    empty = qbench.load_runs([tmp_path])
    assert empty.empty
    full = qbench.load_runs(RD_CPU)
    assert set(full.columns) <= set(empty.columns)  # what the docs' filters use is there, rows or not
    assert [c for c in empty.columns if c in set(full.columns)] == list(full.columns)  # in the same order
    ok = empty[empty["status"] == "ok"]  # docs/python-api.md's own lines
    assert ok.groupby(["quantizer", "rate"])["psnr"].mean().empty
    with pytest.raises(qbench.ConfigError, match="no such results directory"):
        qbench.load_runs(tmp_path / "missing")


@pytest.mark.parametrize("call, message", [
    (lambda out: qbench.run(123, recipe="smoke", out=out), "quantizers must be a list of names"),
    (lambda out: qbench.run([], recipe="smoke", out=out), "quantizers needs at least one name"),
    (lambda out: qbench.run(["gsq", "gsq"], recipe="smoke", out=out), "call again with seed=N"),
    (lambda out: qbench.run(["gsq"], recipe="smoke", overrides="train.steps=2", out=out),
     "overrides must be a list of 'KEY=VALUE' strings"),
    (lambda out: qbench.run(["gsq"], recipe="smoke", overrides=["steps"], out=out), "each item is 'KEY=VALUE'"),
    (lambda out: qbench.run(["gsq"], recipe="smoke", seed=-1, out=out), "seed must be an integer in 0..4294967295"),
    (lambda out: qbench.run(["gsq"], recipe="smoke", seed="1", out=out), "seed must be an integer"),
    (lambda out: qbench.run(["gsq"], recipe=3, out=out), "recipe must be a recipe name"),
    (lambda out: qbench.run(["gsq"], recipe="smoke", overrides=["quantizers.gqs.groups=2"], out=out),
     "quantizers.gqs.groups: no quantizer 'gqs' (did you mean 'gsq'?)"),
    (lambda out: qbench.sweep(ROOT / "benchmarks" / "sweeps" / "rd-cpu.toml", jobs=0, dry_run=True),
     "jobs must be an integer >= 1"),
    (lambda out: qbench.load_runs(None), "paths must be a folder, a run directory or a list of them"),
    (lambda out: qbench.load_tokenizer(out / "missing"), "is not a folder: give a run directory"),
    (lambda out: qbench.load_tokenizer(out, use_ema="no"), "use_ema must be True, False or None"),
])
def test_bad_arguments_are_config_errors_in_python_words(tmp_path, call, message):
    with pytest.raises(qbench.ConfigError) as caught:
        call(tmp_path)
    text = str(caught.value)
    assert message in text
    assert "\n" not in text and not re.search(r"(^|\s)--[a-z]", text), text  # one line, and no CLI flag in it
    assert not (tmp_path / "smoke").exists()


def test_a_file_as_out_is_named_as_the_argument(tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("x")
    with pytest.raises(qbench.ConfigError, match=f"^out {taken} is a file, not a folder$"):
        qbench.run(["gsq"], recipe="smoke", out=taken)
    with pytest.raises(qbench.ConfigError, match=f"^out {taken} is a file, not a folder$"):
        qbench.run(["gsq"], recipe="smoke", overrides=["train.stepz=2"], out=taken)
    sweep_file = ROOT / "benchmarks" / "sweeps" / "groups-cpu.toml"
    with pytest.raises(qbench.ConfigError, match=f"^out {taken} is a file, not a folder$"):
        qbench.sweep(sweep_file, out=taken, dry_run=True)
    assert taken.read_text() == "x"


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
    assert isinstance(tokenizer, qbench.Tokenizer) and isinstance(outcomes[0], qbench.RunOutcome)

    # what the docs say encode and decode raise: a ConfigError naming what was expected, not a torch error
    size = tokenizer.quantizer.codebook_size
    for bad, message in (
        (lambda: tokenizer.encode(images[0]), "images must be a float tensor of shape (B, 3, H, W)"),
        (lambda: tokenizer.encode((images * 127.5 + 127.5).to(torch.uint8)), "x.float() / 127.5 - 1"),
        (lambda: tokenizer.encode(images[:, :1]), "got torch.float32 (2, 1, 16, 16)"),
        (lambda: tokenizer(images.tolist()), "images must be a float tensor"),
        (lambda: tokenizer.encode(images[..., :15, :15]), "not divisible by the downsample factor"),
        (lambda: tokenizer.decode(codes + size), f"codes must be in [0, {size})"),
        (lambda: tokenizer.decode(codes - size), f"codes must be in [0, {size})"),
        (lambda: tokenizer.decode(codes.float()), "codes must be an integer tensor"),
        (lambda: tokenizer.decode(codes[0]), "expects codes of shape (B, h, w, 1)"),
    ):
        with pytest.raises(qbench.ConfigError) as caught:
            bad()
        assert message in str(caught.value)


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
    assert isinstance(outcome, qbench.SweepOutcome)
    assert outcome.results == [] and outcome.failed == []
    assert [p.status for p in outcome.plan.points] == ["new"] * 4  # a Plan, its points in running order
    assert outcome.plan.pending() == outcome.plan.points
    assert [p.index for p in outcome.plan.points] == [1, 2, 3, 4] and outcome.plan.points[0].bits == 4.0
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


def test_the_api_page_documents_every_exception_and_type_it_returns():
    text = (ROOT / "docs" / "python-api.md").read_text()
    for name in ("ConfigError", "PluginError", "MetricUnavailable", "RunOutcome", "SweepOutcome", "Tokenizer"):
        assert f"`qbench.{name}`" in text, name
        assert name in qbench.__all__
    assert "a `Plan` object (not a list)" in text
