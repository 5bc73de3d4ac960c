"""A quantizer's own recipe keys (optim.*, model.latent_dim) in its recipe table: applied, checked, overridden."""

from __future__ import annotations

import pytest
from conftest import run_cli

import qbench
from qbench.comparison.preflight import check_run
from qbench.platform.plugins import registries as build_registries
from qbench.recipe.config import load_recipe

TUNED = """extends = "smoke"
[quantizers.gsq]
groups = 2
"optim.lr" = 0.003
"model.latent_dim" = 8
[quantizers.vq]
"optim.lr" = 0.0005
"""


@pytest.fixture
def tuned(tmp_path):
    path = tmp_path / "tuned.toml"
    path.write_text(TUNED)
    return path


def test_each_quantizer_runs_with_its_own_keys_and_no_other(tuned):
    recipe = load_recipe(str(tuned))
    gsq, vq, fsq = (recipe.for_quantizer(n) for n in ("gsq", "vq", "fsq"))
    assert (gsq.optim.lr, gsq.model.latent_dim) == (0.003, 8)
    assert (vq.optim.lr, vq.model.latent_dim) == (0.0005, recipe.model.latent_dim)
    assert (fsq.optim.lr, fsq.model.latent_dim) == (recipe.optim.lr, recipe.model.latent_dim)
    options = recipe.quantizer_options("gsq")  # smoke's own gsq options, groups = 2, and no recipe key
    assert options["dim"] == recipe.model.latent_dim and options["groups"] == 2 and not any("." in k for k in options)
    assert gsq.quantizer_options("gsq") == {**options, "dim": 8}
    # resolved, a run's recipe is the plain recipe with those values: the same hash as --set gives it
    plain = load_recipe("smoke", ["optim.lr=0.003", "model.latent_dim=8"])
    assert gsq.hash() == plain.hash() and gsq.hash() != recipe.hash()


def test_the_runs_of_one_recipe_share_its_comparison_hash_and_keep_their_own_config(tuned):
    recipe = load_recipe(str(tuned))
    regs = build_registries()
    checked = check_run(["gsq", "vq", "fsq"], recipe, regs)
    by_name = {i.quantizer: i for i in checked.identities}
    assert by_name["gsq"].options["dim"] == 8 and by_name["gsq"].recipe.optim.lr == 0.003
    assert by_name["gsq"].comparison_hash == by_name["vq"].comparison_hash == recipe.hash()
    assert by_name["fsq"].comparison_hash == ""  # no keys of its own: its recipe is the recipe as given
    plain = check_run(["gsq"], load_recipe("smoke", ["optim.lr=0.003", "model.latent_dim=8",
                                                     "quantizers.gsq.groups=2"]), regs)
    assert plain.identities[0].config_hash == by_name["gsq"].config_hash


def test_set_overrides_every_quantizers_own_value(tuned):
    recipe = load_recipe(str(tuned), ["optim.lr=0.002"])
    assert {recipe.for_quantizer(n).optim.lr for n in ("gsq", "vq", "fsq")} == {0.002}
    assert recipe.for_quantizer("gsq").model.latent_dim == 8


@pytest.mark.parametrize("line, message", [
    ('"train.steps" = 5', "recipe key 'train.steps' cannot differ between quantizers"),
    ('"data.batch_size" = 8', "recipe key 'data.batch_size' cannot differ between quantizers"),
    ('"optim.lr" = "fast"', "quantizers.gsq: optim.lr must be float"),
    ('"optim.lr" = -1.0', "quantizers.gsq: "),
])
def test_bad_own_keys_are_one_line_each(tmp_path, line, message):
    path = tmp_path / "bad.toml"
    path.write_text(f'extends = "smoke"\n[quantizers.gsq]\n{line}\n')
    with pytest.raises(qbench.ConfigError, match=message.replace("(", r"\(")):
        load_recipe(str(path))
    result = run_cli("run", "--recipe", str(path), "--quantizers", "gsq", "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert message.split(":")[0] in result.stderr


def test_the_default_recipe_is_the_tuning_studys_choice_copied_exactly():
    """cpu-tuned holds, per quantizer, exactly the published study's overlay: its options, lr and latent width."""
    from pathlib import Path

    import tomllib

    best = Path(__file__).resolve().parents[1] / "results" / "published" / "tune" / "converged-10bit" / "best"
    recipe = load_recipe(None)
    assert recipe.name == "cpu-tuned"
    for path in sorted(best.glob("*-10bit.toml")):
        quantizer = path.stem.removesuffix("-10bit")
        overlay = load_recipe(str(path))
        own = recipe.for_quantizer(quantizer)
        assert own.hash() == overlay.hash(), quantizer
        assert own.quantizer_options(quantizer) == overlay.quantizer_options(quantizer), quantizer
        assert tomllib.loads(path.read_text())["quantizers"][quantizer]  # the overlay tunes the quantizer itself


def test_runs_of_one_recipe_with_own_keys_share_one_table(tmp_path):
    """Records with their own recipe hashes but one comparison hash are one comparison table."""
    import json

    from test_report import psnr_metrics, write_run

    from qbench.report.tables import build_report

    for quantizer, rhash in (("gsq", "r1"), ("vq", "r2")):
        run_dir = write_run(tmp_path / "runs", quantizer, {"dim": 8}, 0, psnr_metrics(24.0), recipe_hash=rhash)
        record = json.loads((run_dir / "metrics.json").read_text())
        record["run"]["comparison_hash"] = "given"
        (run_dir / "metrics.json").write_text(json.dumps(record))
    write_run(tmp_path / "runs", "fsq", {"dim": 8}, 0, psnr_metrics(24.0), recipe_hash="r3")  # another recipe
    tables = build_report([tmp_path / "runs"]).tables
    assert sorted(sorted(t.runs["quantizer"]) for t in tables) == [["fsq"], ["gsq", "vq"]]
