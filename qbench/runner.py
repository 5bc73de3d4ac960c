"""``qbench run``: train and score each quantizer under one recipe.

Every quantizer gets the same recipe; only ``dim`` and its own options differ.
User errors (unknown names, bad options, missing data, weights required by
``--strict-metrics``) are raised before any training starts.  A run that fails
(NaN loss, a plugin raising) is recorded as failed and the next one still runs.

The pieces, each in its own module:
  qbench.model.build_tokenizer   backbone + quantizer from the registries
  qbench.train.fit               the one training loop (checkpoints, resume, DDP)
  qbench.evaluate.evaluate       streaming metrics on the validation split
  qbench.results.write_run       the run directory (config, metrics, log, grid)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import Recipe
from .errors import ConfigError


@dataclass
class RunOutcome:
    """What one quantizer's run produced (also what the closing table shows)."""

    quantizer: str
    options: dict[str, Any]
    run_dir: Path | None
    status: str  # ok | failed
    reason: str = ""
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)


def parse_quantizers(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ConfigError("--quantizers needs at least one name, e.g. --quantizers gsq,vq")
    return names
