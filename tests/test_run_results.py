"""Results are never silently wrong or lost: eval, resume, crashes, concurrent starts, strict JSON."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

from qbench import cli
from qbench.comparison import runner
from qbench.engine.evaluate import dataset_key_for, evaluate
from qbench.engine.model import load_tokenizer
from qbench.recipe.config import load_recipe
from qbench.rundir import checkpoint
from qbench.rundir.directory import METRICS_FILE, RunDirectory


def strict_load(path):
    """json.load that refuses NaN and Infinity, as jq and JavaScript do."""
    def refuse(name):
        raise ValueError(f"{path}: bare {name} is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One smoke run scored with its trained (not EMA) weights; tests work on copies."""
    recipe = load_recipe("smoke", ["eval.use_ema=false"])
    [outcome] = runner.run_comparison(["gsq"], recipe, out_root=tmp_path_factory.mktemp("runs"), progress=False)
    assert outcome.status == "ok"
    return outcome.run_dir


@pytest.fixture
def run_dir(finished, tmp_path):
    copy = tmp_path / finished.name
    shutil.copytree(finished, copy)
    return copy


def psnr_of(run_dir, use_ema):
    tokenizer, identity, dataset = load_tokenizer(run_dir, use_ema=use_ema)
    recipe = identity.recipe
    scored = evaluate(tokenizer, dataset, ["psnr"], batch_size=recipe.eval.batch_size,
                      max_images=recipe.eval.max_images, dataset_key=dataset_key_for(recipe), progress=False)
    return scored["psnr"]["value"]


def test_eval_scores_the_weights_the_run_was_scored_with(run_dir, capsys):
    trained = strict_load(run_dir / METRICS_FILE)["metrics"]["psnr"]["value"]
    assert cli.main(["eval", str(run_dir), "--metrics", "psnr"]) == 0
    rescored = strict_load(run_dir / METRICS_FILE)
    assert rescored["metrics"]["psnr"]["value"] == pytest.approx(trained, abs=1e-4)
    assert rescored["run"]["status"] == "ok" and rescored["train"]["steps"] == 6  # the rest of the record kept
    # the EMA weights (what eval used to load) give another number: the check above can fail
    assert abs(psnr_of(run_dir, use_ema=True) - trained) > 1e-2


def _misfit(state):
    """The checkpoint with the first weight tensor one row too long, in the model and the EMA."""
    key = next(k for k, v in state["model"].items() if v.dim() >= 1 and v.is_floating_point())
    for part in ("model", "ema"):
        tensor = state[part][key]
        state[part][key] = torch.cat([tensor, tensor[:1]])
    return key


def test_a_checkpoint_that_does_not_fit_is_refused_and_the_good_result_kept(run_dir, capsys):
    state = checkpoint.load(run_dir)
    key = _misfit(state)
    torch.save(state, checkpoint.path_in(run_dir))
    good = (run_dir / METRICS_FILE).read_bytes()

    assert cli.main(["eval", str(run_dir)]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and "does not fit its own config" in errors[0] and key in errors[0]

    state["step"] = 3  # as if interrupted: --resume must refuse it too, before training
    torch.save(state, checkpoint.path_in(run_dir))
    assert cli.main(["run", "--resume", str(run_dir), "--no-progress"]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and "does not fit its own config" in errors[0]
    assert (run_dir / METRICS_FILE).read_bytes() == good


def test_resuming_a_finished_run_changes_nothing_and_says_so(run_dir, capsys):
    before = (run_dir / METRICS_FILE).read_bytes()
    weights = checkpoint.load(run_dir)["model"]
    assert cli.main(["run", "--resume", str(run_dir), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "already finished (6 of 6 steps, scored); nothing to resume" in out
    assert f"qbench report {run_dir} --out" in out  # the hint names the resumed folder
    assert (run_dir / METRICS_FILE).read_bytes() == before
    after = checkpoint.load(run_dir)["model"]
    assert all(torch.equal(weights[k], after[k]) for k in weights)


def test_resuming_a_run_stopped_during_evaluation_scores_it_with_its_last_loss(run_dir, capsys):
    (run_dir / METRICS_FILE).unlink()  # killed after the last checkpoint, before metrics.json
    assert cli.main(["run", "--resume", str(run_dir), "--no-progress"]) == 0
    record = strict_load(run_dir / METRICS_FILE)
    logged = checkpoint.load(run_dir)["log"][-1]["loss"]
    assert record["run"]["status"] == "ok" and record["metrics"]["psnr"]["status"] == "ok"
    assert math.isfinite(record["train"]["final_loss"]) and record["train"]["final_loss"] == logged


def test_eval_removes_temporaries_a_killed_writer_left(run_dir, capsys):
    stale = [run_dir / ".metrics.json.k1ll3d.tmp", run_dir / ".checkpoint.pt.x9y8.tmp"]
    stale[0].write_text('{"half": ')
    stale[1].write_bytes(b"\x00" * 10)
    assert cli.main(["eval", str(run_dir), "--metrics", "psnr"]) == 0
    assert not any(p.exists() for p in stale)
    assert strict_load(run_dir / METRICS_FILE)["run"]["status"] == "ok"


def test_eval_keeps_an_ok_result_it_cannot_reproduce_here(run_dir, capsys, tmp_path, monkeypatch):
    record = strict_load(run_dir / METRICS_FILE)
    record["metrics"]["lpips"] = {"status": "ok", "value": 0.25, "reason": ""}
    RunDirectory(run_dir).write_metrics(record)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))  # no AlexNet weights here
    assert cli.main(["eval", str(run_dir), "--metrics", "lpips,psnr"]) == 0
    assert "the earlier result is kept" in capsys.readouterr().out
    assert strict_load(run_dir / METRICS_FILE)["metrics"]["lpips"]["value"] == 0.25


def test_metrics_json_never_holds_bare_nan_or_infinity(tmp_path):
    directory = RunDirectory(tmp_path)
    record = {"run": {"status": "failed"}, "metrics": {"psnr": {"value": float("inf")}},
              "train": {"final_loss": float("nan"), "curve": [1.0, float("-inf")], "np": np.float32("nan"),
                        "t": torch.tensor(float("nan")), "ok": np.float64(2.5)}}
    directory.write_metrics(record)
    written = strict_load(tmp_path / METRICS_FILE)
    assert written["metrics"]["psnr"]["value"] is None
    assert written["train"] == {"final_loss": None, "curve": [1.0, None], "np": None, "t": None, "ok": 2.5}


def test_a_run_stopped_before_its_first_checkpoint_leaves_no_folder(tmp_path, monkeypatch):
    import qbench.engine.train as train_module

    real_fit = train_module.fit

    def interrupted_for_vq(tokenizer, recipe, *args, **kwargs):
        if type(tokenizer.quantizer).__name__ == "VectorQuantizer":
            raise KeyboardInterrupt  # Ctrl-C during the first steps
        return real_fit(tokenizer, recipe, *args, **kwargs)

    monkeypatch.setattr(train_module, "fit", interrupted_for_vq)
    out = tmp_path / "runs"
    with pytest.raises(KeyboardInterrupt):
        runner.run_comparison(["gsq", "vq"], load_recipe("smoke", ["train.steps=2"]), out_root=out, progress=False)
    [kept] = [p for p in (out / "smoke").iterdir()]
    assert kept.name.startswith("gsq-") and strict_load(kept / METRICS_FILE)["run"]["status"] == "ok"


CREATE = """
import sys, time
from qbench.rundir.directory import RunDirectory
while time.time() < float(sys.argv[2]):  # both processes start creating at the same moment
    time.sleep(0.001)
print("\\n".join(RunDirectory.create(sys.argv[1], "race", "gsq", 0).path.name for _ in range(50)))
"""


def test_run_folders_created_at_once_never_collide(tmp_path):
    names, errors = [], []
    start = threading.Barrier(8)

    def create():
        start.wait()
        try:
            names.extend(RunDirectory.create(tmp_path, "race", "gsq", 0).path.name for _ in range(25))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(names) == len(set(names)) == 200

    at = str(time.time() + 3)
    procs = [subprocess.Popen([sys.executable, "-c", CREATE, str(tmp_path / "p"), at], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [proc.communicate(timeout=60) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), [err for _, err in outputs]
    together = [name for out, _ in outputs for name in out.split()]
    assert len(together) == len(set(together)) == 100
    assert len(list((tmp_path / "p" / "race").iterdir())) == 100
