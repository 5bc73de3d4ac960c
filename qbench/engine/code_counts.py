"""How often each code was chosen on the evaluation set, for the loggers' usage histogram.

An evaluation observer (``qbench.engine.evaluate.evaluate(observers=...)``): it rides
along the evaluation pass that scores the metrics, so the histogram costs one
``bincount`` per batch and no extra pass over the data.  Its state is summed
across DDP ranks like a metric's.
"""

from __future__ import annotations

import numpy as np
import torch

from qbench.codebook import DENSE_LIMIT, code_histogram
from qbench.errors import MetricUnavailable
from qbench.metric import EvalBatch, EvalContext, Metric


class CodeCounts(Metric):
    """Per-token code counts (T, V) over the evaluation set."""

    def __init__(self) -> None:
        self.counts: torch.Tensor | None = None
        self.shared = True

    def begin(self, context: EvalContext) -> None:
        # sized from the quantizer, not from the first batch, so every rank holds the same shape
        quantizer = context.tokenizer.quantizer
        if getattr(quantizer, "continuous", False):
            raise MetricUnavailable("continuous latent: no codes to count")
        self.shared = bool(getattr(quantizer, "codebook_shared", True))
        tokens, size = int(getattr(quantizer, "tokens_per_position", 0)), getattr(quantizer, "codebook_size", None)
        if not isinstance(size, int) or size <= 0 or tokens == 0:
            raise MetricUnavailable("no codebook: no usage histogram")
        if tokens * size > DENSE_LIMIT:  # an implicit codebook of 2^40 codes: no histogram a logger could show
            raise MetricUnavailable(f"{tokens} x {size} codes: too many for a usage histogram")
        self.counts = torch.zeros(tokens, size, dtype=torch.int64)

    def update(self, batch: EvalBatch) -> None:
        counts = code_histogram(batch.codes, self.counts.shape[1], shared=False)
        self.counts = self.counts.to(counts.device) + counts

    def state(self) -> dict[str, torch.Tensor]:
        return {"counts": self.counts}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        self.counts = state["counts"]

    def histograms(self) -> dict[str, np.ndarray]:
        """``{"codes": counts}`` pooled over tokens for a shared codebook, else one per token."""
        counts = self.counts.cpu().numpy()
        if self.shared:
            return {"codes": counts.sum(axis=0)}
        return {f"codes/token{t}": row for t, row in enumerate(counts)}
