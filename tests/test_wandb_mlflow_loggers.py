"""The wandb and mlflow loggers: offline W&B and a local MLflow store receive the log.csv scalars."""

from __future__ import annotations

import csv
import json

import pytest

from qbench.comparison import runner
from qbench.recipe.config import load_recipe


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """One smoke run with csv, wandb and mlflow, nothing configured: the defaults must stay local."""
    pytest.importorskip("wandb", reason="the wandb logger needs: pip install 'qbench[wandb]'")
    pytest.importorskip("mlflow", reason="the mlflow logger needs: pip install 'qbench[mlflow]'")
    out = tmp_path_factory.mktemp("tracked")
    with pytest.MonkeyPatch.context() as env:
        for name in ("WANDB_MODE", "WANDB_DIR", "MLFLOW_TRACKING_URI"):
            env.delenv(name, raising=False)
        for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):  # keep the home directory clean
            env.setenv(name, str(out / "wandb-home"))
        recipe = load_recipe("smoke", ["train.loggers=['csv', 'wandb', 'mlflow']"])
        [outcome] = runner.run_comparison(["gsq"], recipe, out_root=out / "runs", progress=False)
    assert outcome.status == "ok"
    with open(outcome.run_dir / "log.csv", newline="") as fh:
        rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]
    return outcome, rows, out / "runs"


def test_wandb_offline_run_holds_the_log_csv_scalars(tracked):
    from wandb_records import history, run_record, summary

    outcome, rows, _ = tracked
    [offline] = (outcome.run_dir / "wandb").glob("offline-run-*")  # offline: nothing was sent anywhere
    [run_file] = offline.glob("run-*.wandb")
    logged = history(run_file)
    assert [r["_step"] for r in logged] == [int(r["step"]) for r in rows]
    for row, entry in zip(rows, logged):
        assert {k: entry[f"train/{k}"] for k in row if k != "step"} == pytest.approx({k: v for k, v in row.items() if k != "step"})

    record = outcome.record["run"]
    run = run_record(run_file)
    assert run.run_group == f"smoke-{record['recipe_hash']}" and run.display_name == outcome.run_dir.name
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    assert config["run"]["quantizer"] == "gsq" and config["run"]["config_hash"] == record["config_hash"]
    assert config["options"] == record["options"] and config["recipe"]["optim"]["lr"] == 0.001

    final = summary(run_file)
    assert final["eval/psnr"] == pytest.approx(outcome.metrics["psnr"]["value"]) and final["status"] == "ok"


def test_mlflow_local_store_holds_the_log_csv_scalars(tracked):
    from mlflow.tracking import MlflowClient

    outcome, rows, out = tracked
    assert (out / "mlflow.db").is_file()  # the default store: beside the recipe folders
    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    [run] = client.search_runs([client.get_experiment_by_name("smoke").experiment_id])
    assert run.info.run_name == outcome.run_dir.name and run.info.status == "FINISHED"
    assert run.data.tags["quantizer"] == "gsq" and run.data.tags["recipe_hash"] == outcome.record["run"]["recipe_hash"]
    assert run.data.params["recipe.optim.lr"] == "0.001" and run.data.params["options.codebook_size"] == "16"
    for column in rows[0]:
        if column == "step":
            continue
        history = client.get_metric_history(run.info.run_id, f"train/{column}")
        assert [(m.step, m.value) for m in history] == [(int(r["step"]), pytest.approx(r[column])) for r in rows], column
    [psnr] = client.get_metric_history(run.info.run_id, "eval/psnr")
    assert (psnr.step, psnr.value) == (6, pytest.approx(outcome.metrics["psnr"]["value"]))


def test_wandb_and_mlflow_received_the_same_scalars(tracked):
    from mlflow.tracking import MlflowClient
    from wandb_records import history

    outcome, rows, out = tracked
    [run_file] = (outcome.run_dir / "wandb").glob("offline-run-*/run-*.wandb")
    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    [run] = client.search_runs([client.get_experiment_by_name("smoke").experiment_id])
    from_mlflow = {(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "train/loss")}
    from_wandb = {(r["_step"], r["train/loss"]) for r in history(run_file)}
    assert from_wandb == from_mlflow and len(from_wandb) == len(rows)
