"""The logger contract: what an experiment tracker receives during one run.

A logger plugin registers a ``qbench.LoggerSpec`` whose factory returns a
``Logger``.  qbench creates one logger per run (one per quantizer), on rank 0
only, and calls, in this order:

    start(run)                                 run identity and hyperparameters
    log_scalars(step, scalars)                 every train.log_every steps (the log.csv row)
    log_images(step, name, image)              every train.image_every steps (reconstruction grid)
    log_histogram(step, name, counts)          at evaluation (codebook usage)
    log_metrics(metrics)                       the final metrics that have a value
    finish(status, reason)                     ok, failed or interrupted

Every method is a no-op here, so a logger overrides only what its tracker
shows.  The constructor takes the logger's options (the recipe's
``[loggers.NAME]`` table); it is called before training to check them, so it
must only store and check them (raise ``qbench.ConfigError`` for a bad
value) and leave files, imports of the tracker's package and connections to
``start``.  A logger that raises is reported once and switched off for the
rest of the run; training goes on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# finish() statuses
OK, FAILED, INTERRUPTED = "ok", "failed", "interrupted"


@dataclass(frozen=True)
class RunInfo:
    """Who the run is: what ``start`` receives.

    ``hyperparameters`` is the resolved recipe as a nested dict (what
    ``config.toml`` records); ``start_step`` is above 0 when the run resumes
    from a checkpoint taken at that step, and ``history`` then holds the
    log rows (``step`` plus scalars) the checkpoint kept.
    """

    run_dir: Path
    recipe: str
    quantizer: str
    options: Mapping[str, Any]
    seed: int
    recipe_hash: str
    config_hash: str
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    steps: int = 0
    start_step: int = 0
    history: tuple[Mapping[str, float], ...] = ()

    @property
    def name(self) -> str:
        """The run directory's name, e.g. ``gsq-seed0-20250101-120000``: unique and readable."""
        return Path(self.run_dir).name

    def config(self) -> dict[str, Any]:
        """Identity, quantizer options and recipe, nested (for trackers that take a config dict)."""
        return {
            "run": {"quantizer": self.quantizer, "recipe": self.recipe, "seed": self.seed,
                    "recipe_hash": self.recipe_hash, "config_hash": self.config_hash, "run_dir": str(self.run_dir)},
            "options": dict(self.options),
            "recipe": dict(self.hyperparameters),
        }

    def flat_config(self) -> dict[str, Any]:
        """``config()`` with dotted keys (``recipe.optim.lr``), for trackers whose parameters are flat."""
        return flatten(self.config())


def flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


class Logger:
    """Base class of loggers; see the module docstring for when each method is called."""

    def start(self, run: RunInfo) -> None:
        """The run begins (or resumes at ``run.start_step``)."""

    def log_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        """Training scalars at ``step``: loss terms, lr, grad_norm, usage, perplexity, steps_per_s."""

    def log_images(self, step: int, name: str, image: Any) -> None:
        """An RGB picture, a uint8 numpy array of shape (H, W, 3)."""

    def log_histogram(self, step: int, name: str, counts: Any) -> None:
        """Code counts: ``counts[i]`` (an int64 numpy array) is how often code ``i`` was chosen."""

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        """Final evaluation metrics (those computed; unavailable or failed ones are left out)."""

    def finish(self, status: str, reason: str = "") -> None:
        """The run ended with ``status`` (ok, failed or interrupted) and, unless ok, a reason."""


def code_buckets(counts: Any, max_buckets: int = 512):
    """``(edges, bucket_counts)``: per-code counts summed over runs of neighbouring codes.

    One bucket per code while the codebook has at most ``max_buckets``
    codes; larger codebooks are grouped, because trackers cap their bins
    (W&B at 512).  ``edges`` has one more entry than ``bucket_counts``:
    bucket ``j`` holds codes ``edges[j] <= i < edges[j + 1]``.
    """
    # deferred: loads numpy only when this runs
    import numpy as np

    counts = np.asarray(counts, dtype=np.int64).reshape(-1)
    width = max(1, -(-len(counts) // max_buckets))  # ceil
    padded = np.zeros(-(-len(counts) // width) * width, dtype=np.int64)
    padded[: len(counts)] = counts
    buckets = padded.reshape(-1, width).sum(axis=1)
    edges = np.minimum(np.arange(len(buckets) + 1) * width, len(counts))
    return edges, buckets
