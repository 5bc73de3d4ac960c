"""Codebook usage, perplexity and rate, from the codes of the whole evaluation set.

Usage and perplexity are computed from one histogram over every position of
every evaluation image (not per batch: per-batch perplexity depends on the
batch size), as in the GSQ paper (arXiv 2412.02632, Table 1 and 13).

- Shared codebook (GSQ groups, VQ, FSQ): the T tokens of a position index
  one codebook, so the *pooled* histogram counts all of them against the
  same V codes.  value = usage / perplexity of that pooled histogram.
- Separate codebooks (RVQ stages, per-group GSQ codebooks): each token
  position has its own codebook; value = the mean over tokens.
Per-token (per group or per stage) values are always in the extras.

They come from the codes and ``codebook_size`` alone, whatever the quantizer
plugin reports itself; above ``qbench.codebook.DENSE_LIMIT`` bins (FSQ's 2^40
implicit codes) the counts are kept sparsely, with the same values.

Rate: bits per position is the quantizer's ``bits_per_position`` (T log2 V,
or the exact sum of log2 levels for FSQ); bits per image multiplies by the
h x w positions; the compression ratio is 24 H W / bits per image (uncompressed
8-bit RGB against the token stream).
"""

from __future__ import annotations

import torch

from qbench import ConfigError, MetricUnavailable
from qbench.codebook import DENSE_LIMIT, code_histogram, counts_perplexity, counts_usage
from qbench.metric import EvalBatch, EvalContext, Metric


def _quantizer(tokenizer):
    quantizer = getattr(tokenizer, "quantizer", None)
    if quantizer is None:
        raise ConfigError("codebook metrics need tokenizer.quantizer (codebook_size, bits_per_position)")
    if getattr(quantizer, "continuous", False):
        raise MetricUnavailable("continuous latent: the quantizer has no codes and no rate (an unquantized ceiling)")
    return quantizer


class _CodeHistogram(Metric):
    """Per-token code counts over the evaluation set, computed from the codes and ``codebook_size``.

    Dense (a (T, V) histogram whose shards add up) while T * V is at most
    ``qbench.codebook.DENSE_LIMIT``; above it (FSQ's 2^40 implicit codes) the
    distinct (token, code) keys and their counts, merged by ``merge_gathered``
    across ranks.  A quantizer without a codebook or tokens has no usage: the
    metric is unavailable for it.
    """

    def __init__(self) -> None:
        self.hist: torch.Tensor | None = None
        self.keys: torch.Tensor | None = None  # sparse: distinct token * V + code, sorted
        self.counts: torch.Tensor | None = None
        self.shared = True
        self.tokens = 0
        self.size = 0

    def _allocate(self, tokenizer, tokens: int | None = None) -> None:
        quantizer = _quantizer(tokenizer)
        size = getattr(quantizer, "codebook_size", None)
        tokens = int(quantizer.tokens_per_position if tokens is None else tokens)
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0 or tokens == 0:
            raise MetricUnavailable("this quantizer has no codebook (no codebook_size or no tokens per position)")
        self.shared = bool(getattr(quantizer, "codebook_shared", True))
        self.tokens, self.size = tokens, size
        if tokens * size <= DENSE_LIMIT:
            self.hist = torch.zeros(tokens, size, dtype=torch.int64)
        else:
            self.keys = torch.zeros(0, dtype=torch.int64)
            self.counts = torch.zeros(0, dtype=torch.int64)

    @property
    def sparse(self) -> bool:
        return self.keys is not None

    @property
    def state_adds_up(self) -> bool:  # read by qbench.metric.reduce_states
        return not self.sparse

    def begin(self, context: EvalContext) -> None:
        if context.tokenizer is not None and not self.size:
            self._allocate(context.tokenizer)

    def update(self, batch: EvalBatch) -> None:
        if not self.size:
            self._allocate(batch.tokenizer, batch.codes.shape[-1])
        codes = batch.codes
        if codes.shape[-1] != self.tokens:
            raise ConfigError(f"codes have {codes.shape[-1]} tokens per position, expected {self.tokens}")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.size):
            raise ConfigError(f"codes outside [0, {self.size}): {int(codes.min())}..{int(codes.max())}")
        if not self.sparse:
            counts = code_histogram(codes, self.size, shared=False)
            self.hist = self.hist.to(counts.device) + counts
            return
        flat = codes.reshape(-1, self.tokens).long().cpu()
        keys = (flat + torch.arange(self.tokens) * self.size).reshape(-1)
        found, counts = torch.unique(keys, return_counts=True)
        self._add(found, counts)

    def _add(self, keys: torch.Tensor, counts: torch.Tensor) -> None:
        merged, where = torch.unique(torch.cat([self.keys, keys]), return_inverse=True)
        self.counts = torch.zeros(merged.numel(), dtype=torch.int64).index_add_(0, where, torch.cat([self.counts, counts]))
        self.keys = merged

    def state(self) -> dict[str, torch.Tensor]:
        if not self.size:
            raise ConfigError("no codes were seen: the histogram size is unknown")
        return {"keys": self.keys, "counts": self.counts} if self.sparse else {"hist": self.hist}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        if "hist" in state:
            self.hist = state["hist"]
        else:
            self.keys, self.counts = state["keys"], state["counts"]

    def merge_gathered(self, states: list[dict[str, torch.Tensor]]) -> None:
        """Sparse states of every rank merged into this one (sums of keyed counts, not element-wise)."""
        self.keys, self.counts = torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64)
        for state in states:
            self._add(state["keys"].cpu(), state["counts"].cpu())

    def rows(self, pooled: bool) -> list[torch.Tensor]:
        """Non-zero counts per token, or of the one pooled histogram."""
        if not self.sparse:
            hist = self.hist.sum(dim=0, keepdim=True) if pooled else self.hist
            return [row[row > 0] for row in hist]
        if not pooled:
            return self._per_token()
        found, where = torch.unique(torch.remainder(self.keys, self.size), return_inverse=True)
        return [torch.zeros(found.numel(), dtype=torch.int64).index_add_(0, where, self.counts)]

    def _per_token(self) -> list[torch.Tensor]:
        token = torch.div(self.keys, self.size, rounding_mode="floor")
        return [self.counts[token == t] for t in range(self.tokens)]

    def summary(self, score) -> dict:
        per_token = [score(c) for c in self.rows(pooled=False)]
        value = score(self.rows(pooled=True)[0]) if self.shared else sum(per_token) / len(per_token)
        return {"value": value, "per_token": per_token, "shared_codebook": self.shared}

    def protocol(self) -> dict:
        return {
            "histogram": "all positions of all evaluation images",
            "pooled": "shared codebook: one histogram over all tokens; separate codebooks: mean over tokens",
        }


class CodebookUsage(_CodeHistogram):
    """Percentage of codebook entries used at least once on the evaluation set."""

    def compute(self) -> dict:
        return {**self.summary(lambda counts: counts_usage(counts, self.size)), "unit": "%"}


class Perplexity(_CodeHistogram):
    """exp(entropy) of the code histogram (natural log), at most the codebook size."""

    def compute(self) -> dict:
        return self.summary(counts_perplexity)


class Bits(Metric):
    """Bits per position (value), bits per image and compression ratio vs 24-bit RGB."""

    def begin(self, context: EvalContext) -> None:
        if context.tokenizer is not None:
            _quantizer(context.tokenizer)  # unavailable for a continuous latent

    def __init__(self) -> None:
        self.images = torch.zeros((), dtype=torch.int64)
        self.positions = torch.zeros((), dtype=torch.int64)
        self.pixels = torch.zeros((), dtype=torch.int64)
        self.bits = torch.zeros((), dtype=torch.float64)
        self.tokens_per_position = 0

    def update(self, batch: EvalBatch) -> None:
        quantizer = _quantizer(batch.tokenizer)
        per_position = float(quantizer.bits_per_position)
        b, h, w, _ = batch.codes.shape
        height, width = batch.originals.shape[-2:]
        self.images = self.images + b
        self.positions = self.positions + b * h * w
        self.pixels = self.pixels + b * height * width
        self.bits = self.bits + per_position * b * h * w
        self.tokens_per_position = int(batch.codes.shape[-1])

    def state(self) -> dict[str, torch.Tensor]:
        return {"images": self.images, "positions": self.positions, "pixels": self.pixels, "bits": self.bits}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        self.images, self.positions = state["images"], state["positions"]
        self.pixels, self.bits = state["pixels"], state["bits"]

    def compute(self) -> dict:
        if int(self.images) == 0:
            raise ConfigError("bits: no images were evaluated")
        bits = float(self.bits)
        return {
            "value": bits / int(self.positions),
            "bits_per_image": bits / int(self.images),
            "positions_per_image": int(self.positions) / int(self.images),
            "compression_ratio": 24.0 * int(self.pixels) / bits if bits else float("nan"),
        }

    def protocol(self) -> dict:
        return {"definition": "quantizer.bits_per_position; per image x h*w; ratio 24*H*W / bits per image"}
