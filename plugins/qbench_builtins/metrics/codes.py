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

Rate: bits per position is the quantizer's ``bits_per_position`` (T log2 V,
or the exact sum of log2 levels for FSQ); bits per image multiplies by the
h x w positions; the compression ratio is 24 H W / bits per image (uncompressed
8-bit RGB against the token stream).
"""

from __future__ import annotations

import torch

from qbench import ConfigError, MetricUnavailable
from qbench.codebook import code_histogram, perplexity, usage
from qbench.metric import EvalBatch, EvalContext, Metric


def _quantizer(tokenizer):
    quantizer = getattr(tokenizer, "quantizer", None)
    if quantizer is None:
        raise ConfigError("codebook metrics need tokenizer.quantizer (codebook_size, bits_per_position)")
    if getattr(quantizer, "continuous", False):
        raise MetricUnavailable("continuous latent: the quantizer has no codes and no rate (an unquantized ceiling)")
    return quantizer


class _CodeHistogram(Metric):
    """Per-token code histogram (T, V), summed over the evaluation set."""

    def __init__(self) -> None:
        self.hist: torch.Tensor | None = None
        self.shared = True

    def _allocate(self, tokenizer, tokens: int | None = None) -> None:
        quantizer = _quantizer(tokenizer)
        tokens = tokens or int(quantizer.tokens_per_position)
        self.shared = bool(getattr(quantizer, "codebook_shared", True))
        self.hist = torch.zeros(tokens, int(quantizer.codebook_size), dtype=torch.int64)

    def begin(self, context: EvalContext) -> None:
        if context.tokenizer is not None and self.hist is None:
            self._allocate(context.tokenizer)

    def update(self, batch: EvalBatch) -> None:
        if self.hist is None:
            self._allocate(batch.tokenizer, batch.codes.shape[-1])
        codes = batch.codes
        if codes.shape[-1] != self.hist.shape[0]:
            raise ConfigError(f"codes have {codes.shape[-1]} tokens per position, expected {self.hist.shape[0]}")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.hist.shape[1]):
            raise ConfigError(f"codes outside [0, {self.hist.shape[1]}): {int(codes.min())}..{int(codes.max())}")
        counts = code_histogram(codes, self.hist.shape[1], shared=False)
        self.hist = self.hist.to(counts.device) + counts

    def state(self) -> dict[str, torch.Tensor]:
        if self.hist is None:
            raise ConfigError("no codes were seen: the histogram size is unknown")
        return {"hist": self.hist}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        self.hist = state["hist"]

    def pooled(self) -> torch.Tensor:
        return self.hist.sum(dim=0, keepdim=True)

    def protocol(self) -> dict:
        return {
            "histogram": "all positions of all evaluation images",
            "pooled": "shared codebook: one histogram over all tokens; separate codebooks: mean over tokens",
        }


class CodebookUsage(_CodeHistogram):
    """Percentage of codebook entries used at least once on the evaluation set."""

    def compute(self) -> dict:
        per_token = usage(self.hist).tolist()
        value = float(usage(self.pooled())[0]) if self.shared else sum(per_token) / len(per_token)
        return {"value": value, "per_token": per_token, "shared_codebook": self.shared, "unit": "%"}


class Perplexity(_CodeHistogram):
    """exp(entropy) of the code histogram (natural log), at most the codebook size."""

    def compute(self) -> dict:
        per_token = perplexity(self.hist).tolist()
        value = float(perplexity(self.pooled())[0]) if self.shared else sum(per_token) / len(per_token)
        return {"value": value, "per_token": per_token, "shared_codebook": self.shared}


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
