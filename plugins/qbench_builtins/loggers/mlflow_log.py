"""``mlflow``: one MLflow run per quantizer, in an experiment named after the recipe.

The store is local unless you say otherwise: the ``tracking_uri`` option,
else ``MLFLOW_TRACKING_URI``, else ``sqlite:///OUT/mlflow.db`` beside the
recipe folders of the run directories (``results/runs/mlflow.db``), with
artifacts in ``OUT/mlartifacts``, so every run written under one ``--out``
lands in one store (``mlflow ui --backend-store-uri sqlite:///results/runs/mlflow.db``).
MLflow's own usage telemetry is off unless ``MLFLOW_DISABLE_TELEMETRY`` says
otherwise: qbench runs make no network calls of their own accord.

The run is named after the run directory and tagged with quantizer,
recipe hash, config hash and seed; its parameters are the flattened run
identity, quantizer options and recipe.  Training scalars are ``train/NAME``,
final metrics ``eval/NAME`` at the last step, images and code counts are
artifacts.  Needs the ``mlflow`` (or ``mlflow-skinny``), ``sqlalchemy`` and
``alembic`` packages.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path

from qbench.logger import FAILED, INTERRUPTED, OK, Logger, RunInfo

MAX_BATCH = 100  # MLflow's limit on parameters per log_batch call
MAX_PARAM_CHARS = 500  # the smallest value limit among MLflow versions still in use
END_STATUS = {OK: "FINISHED", FAILED: "FAILED", INTERRUPTED: "KILLED"}


def default_store(run_dir: Path) -> tuple[str, str]:
    """(tracking URI, artifact location) beside the recipe folders of ``RUN_DIR = OUT/RECIPE/RUN``."""
    out = Path(run_dir).resolve().parent.parent
    return f"sqlite:///{out / 'mlflow.db'}", (out / "mlartifacts").as_uri()


class MLflowLogger(Logger):
    def __init__(self, tracking_uri: str | None = None, experiment: str | None = None,
                 artifact_location: str | None = None):
        self.tracking_uri, self.experiment, self.artifact_location = tracking_uri, experiment, artifact_location

    def start(self, run: RunInfo) -> None:
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        from mlflow.entities import Metric, Param
        from mlflow.tracking import MlflowClient

        self.Metric = Metric
        uri, artifacts = self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"), self.artifact_location
        if not uri:
            uri, default_artifacts = default_store(run.run_dir)
            artifacts = artifacts or default_artifacts
        self.client = MlflowClient(tracking_uri=uri)
        name = self.experiment or run.recipe
        found = self.client.get_experiment_by_name(name)
        if found:
            experiment_id = found.experiment_id
        else:
            experiment_id = self.client.create_experiment(name, artifact_location=artifacts)
        tags = {"quantizer": run.quantizer, "recipe": run.recipe, "recipe_hash": run.recipe_hash,
                "config_hash": run.config_hash, "seed": str(run.seed), "run_dir": str(run.run_dir)}
        self.run_id = self.client.create_run(experiment_id, run_name=run.name, tags=tags).info.run_id
        params = [Param(k, str(v)[:MAX_PARAM_CHARS]) for k, v in run.flat_config().items()]
        for start in range(0, len(params), MAX_BATCH):
            self.client.log_batch(self.run_id, params=params[start : start + MAX_BATCH])
        self.step = run.start_step

    def _log(self, step: int, values: Mapping[str, float], prefix: str) -> None:
        stamp = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[self.Metric(f"{prefix}{k}", float(v), stamp, step)
                                                    for k, v in values.items()])

    def log_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        self.step = step
        self._log(step, scalars, "train/")

    def log_images(self, step: int, name: str, image) -> None:
        self.client.log_image(self.run_id, image, key=name, step=step)

    def log_histogram(self, step: int, name: str, counts) -> None:
        self.client.log_dict(self.run_id, {"step": step, "counts": [int(c) for c in counts]},
                             f"code_counts/{name.replace('/', '_')}-step{step}.json")

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        self._log(self.step, metrics, "eval/")

    def finish(self, status: str, reason: str = "") -> None:
        if reason:
            self.client.set_tag(self.run_id, "reason", reason[:MAX_PARAM_CHARS])
        self.client.set_terminated(self.run_id, END_STATUS.get(status, "FAILED"))

