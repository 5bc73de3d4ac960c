"""``wandb``: one Weights & Biases run per quantizer, grouped by recipe and recipe hash.

Offline by default: the run is written under ``RUN_DIR/wandb`` and nothing
leaves the machine until you ``wandb sync`` it.  ``WANDB_MODE`` (or the
``mode`` option) chooses otherwise.  The run is named after the run
directory, its group is ``RECIPE-RECIPE_HASH`` (the runs one qbench report
table compares), its config holds the run identity, the quantizer options
and the resolved recipe.  Training scalars are ``train/NAME``, the final
metrics go to the run summary as ``eval/NAME``.  Needs the ``wandb`` package.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from qbench import ConfigError
from qbench.logger import OK, Logger, RunInfo, code_buckets

MODES = ("offline", "online", "disabled")


class WandbLogger(Logger):
    def __init__(self, project: str = "qbench", entity: str | None = None, mode: str | None = None,
                 dir: str | None = None, tags: Sequence[str] = ()):
        if mode is not None and mode not in MODES:
            raise ConfigError(f"logger 'wandb': mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.project, self.entity, self.mode, self.dir, self.tags = project, entity, mode, dir, list(tags)

    def start(self, run: RunInfo) -> None:
        import wandb

        self.wandb = wandb
        self.run = wandb.init(
            project=self.project, entity=self.entity, group=f"{run.recipe}-{run.recipe_hash}", name=run.name,
            job_type="train", config=run.config(), tags=[run.quantizer, run.recipe, *self.tags],
            dir=str(Path(self.dir) if self.dir else Path(run.run_dir)),
            mode=self.mode or os.environ.get("WANDB_MODE") or "offline",
            settings=wandb.Settings(console="off"),  # leave qbench's own output and progress bars alone
        )
        self.step = run.start_step

    def log_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        self.step = step
        self.run.log({f"train/{k}": v for k, v in scalars.items()}, step=step)

    def log_images(self, step: int, name: str, image) -> None:
        self.run.log({name: self.wandb.Image(image)}, step=step)

    def log_histogram(self, step: int, name: str, counts) -> None:
        edges, buckets = code_buckets(counts, max_buckets=512)
        self.run.log({f"eval/{name}": self.wandb.Histogram(np_histogram=(buckets, edges))}, step=step)

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        self.run.summary.update({f"eval/{k}": v for k, v in metrics.items()})

    def finish(self, status: str, reason: str = "") -> None:
        self.run.summary.update({"status": status, "reason": reason})
        self.run.finish(exit_code=0 if status == OK else 1)
