"""``tensorboard``: TensorBoard event files in ``RUN_DIR/tensorboard``.

Each run writes inside its own run directory, so ``tensorboard --logdir
results/runs`` lists every run by its path (recipe, quantizer, seed, time)
and overlays their curves.  Training scalars are ``train/NAME`` (the log.csv
columns), final metrics ``eval/NAME`` at the last step, the reconstruction
grid an image, the code counts a histogram over code indices, and the run's
identity and end a text entry.  Needs the ``tensorboard`` package.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from qbench import ConfigError
from qbench.logger import Logger, RunInfo, code_buckets


class TensorBoardLogger(Logger):
    def __init__(self, subdir: str = "tensorboard", flush_secs: int = 30):
        if not subdir or Path(subdir).is_absolute() or ".." in Path(subdir).parts:
            raise ConfigError(f"logger 'tensorboard': subdir must be a folder inside the run directory, got {subdir!r}")
        if flush_secs <= 0:
            raise ConfigError(f"logger 'tensorboard': flush_secs must be positive, got {flush_secs!r}")
        self.subdir, self.flush_secs = subdir, flush_secs

    def start(self, run: RunInfo) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # purge_step: a resumed run drops the events past its checkpoint, which it is about to log again
        self.writer = SummaryWriter(log_dir=str(Path(run.run_dir) / self.subdir), flush_secs=self.flush_secs,
                                    purge_step=run.start_step or None)
        self.step = run.start_step
        config = json.dumps(run.config(), indent=2, default=str)
        self.writer.add_text("run", f"{run.quantizer} under recipe {run.recipe} (hash {run.recipe_hash}), "
                                    f"seed {run.seed}\n\n    " + config.replace("\n", "\n    "), run.start_step)

    def log_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        self.step = step
        for name, value in scalars.items():
            self.writer.add_scalar(f"train/{name}", value, step)

    def log_images(self, step: int, name: str, image) -> None:
        self.writer.add_image(name, image, step, dataformats="HWC")

    def log_histogram(self, step: int, name: str, counts) -> None:
        import numpy as np

        counts = np.asarray(counts, dtype=np.int64)
        used = np.flatnonzero(counts)
        if used.size == 0:
            return
        edges, buckets = code_buckets(counts, max_buckets=1024)
        index = np.arange(len(counts), dtype=np.float64)
        # the histogram of the code indices chosen at evaluation; bucket j holds indices in (limit[j-1], limit[j]]
        self.writer.add_histogram_raw(
            f"eval/{name}", min=float(used[0]), max=float(used[-1]), num=int(counts.sum()),
            sum=float((index * counts).sum()), sum_squares=float((index**2 * counts).sum()),
            bucket_limits=edges[1:] - 0.5, bucket_counts=buckets.astype(np.float64), global_step=step)

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(f"eval/{name}", value, self.step)

    def finish(self, status: str, reason: str = "") -> None:
        self.writer.add_text("status", status + (f": {reason}" if reason else ""), self.step)
        self.writer.close()
