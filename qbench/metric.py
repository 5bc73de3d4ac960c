"""The streaming metric interface that metric plugins implement.

A metric sees the evaluation set batch by batch (``update``), keeps its
running state as tensors that *add up* across data shards (``state``), and
turns the summed state into numbers at the end (``compute``).  Because every
state is a sum, splitting the evaluation set over DDP ranks and all-reducing
the states (``reduce_states``) gives exactly the single-process result: the
same design as the float64 running sums used by TiTok's and flex_gen's
evaluators (see the GSQ paper, arXiv 2412.02632, section 4 for the metrics).

    class MyMetric(Metric):
        def __init__(self):
            self.total = torch.zeros((), dtype=torch.float64)
            self.count = torch.zeros((), dtype=torch.float64)
        def update(self, batch): ...
        def state(self): return {"total": self.total, "count": self.count}
        def load_state(self, state): self.total, self.count = state["total"], state["count"]
        def compute(self): return {"value": float(self.total / self.count)}

A metric that cannot run here (pretrained weights missing) raises
``qbench.MetricUnavailable`` from its constructor, before any data is seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from qbench.errors import ConfigError


@dataclass
class EvalContext:
    """What a metric may want to know before the first batch.

    ``dataset_key`` names the evaluation set (dataset, split, crop size), e.g.
    ``"photos/val/32"``; empty when unknown (then nothing is cached).
    ``num_images`` is the number of images that will be evaluated (all ranks).
    ``tokenizer`` is the model under evaluation (codebook metrics size their
    state from ``tokenizer.quantizer`` here, so every rank has the same state).
    """

    dataset_key: str = ""
    num_images: int = 0
    device: str = "cpu"
    tokenizer: Any = None


@dataclass
class EvalBatch:
    """One batch as every metric sees it.

    originals, reconstructions: uint8 (B, 3, H, W), the exact pixels that are
        scored (reconstructions are clamped to [-1, 1], mapped to [0, 255] and
        rounded, as a saved PNG would be).
    codes: int64 (B, h, w, T).
    tokenizer: the model (``tokenizer.quantizer`` has ``codebook_size``,
        ``tokens_per_position``, ``bits_per_position``, ``codebook_shared``).
    encode_seconds, decode_seconds: wall-clock time spent encoding and
        decoding this batch (for throughput).
    """

    originals: torch.Tensor
    reconstructions: torch.Tensor
    codes: torch.Tensor
    tokenizer: Any = None
    encode_seconds: float = 0.0
    decode_seconds: float = 0.0
    _float_cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for name in ("originals", "reconstructions"):
            images = getattr(self, name)
            if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
                raise ConfigError(
                    f"EvalBatch.{name} must be uint8 (B, 3, H, W), got {images.dtype} {tuple(images.shape)}"
                )
        if self.originals.shape != self.reconstructions.shape:
            raise ConfigError(
                f"originals {tuple(self.originals.shape)} and reconstructions "
                f"{tuple(self.reconstructions.shape)} differ in shape"
            )

    @property
    def batch_size(self) -> int:
        return int(self.originals.shape[0])

    def originals01(self) -> torch.Tensor:
        """Originals as float32 in [0, 1] (computed once per batch)."""
        return self._unit("originals")

    def reconstructions01(self) -> torch.Tensor:
        """Reconstructions as float32 in [0, 1] (computed once per batch)."""
        return self._unit("reconstructions")

    def _unit(self, name: str) -> torch.Tensor:
        if name not in self._float_cache:
            self._float_cache[name] = getattr(self, name).to(torch.float32) / 255.0
        return self._float_cache[name]


class Metric:
    """Base class of streaming metrics (see the module docstring).

    Subclasses implement ``update``, ``state``, ``load_state`` and
    ``compute``; ``protocol``, ``begin`` and ``check_image_size`` are optional.
    """

    @classmethod
    def check_image_size(cls, height: int, width: int, **options: Any) -> None:
        """Raise ``ConfigError`` when images of ``height`` x ``width`` cannot be scored with ``options``.

        Called before training with the evaluation crop size and the metric's
        options, without building the metric (so even when its weights are
        missing here): a size the metric cannot take is a configuration error,
        not a metric that fails after the training.  The default accepts any size.
        """

    def begin(self, context: EvalContext) -> None:
        """Called once before the first ``update`` (caching, devices)."""

    def update(self, batch: EvalBatch) -> None:
        raise NotImplementedError

    def state(self) -> dict[str, torch.Tensor]:
        """The running state: tensors whose element-wise sum over shards is the total."""
        raise NotImplementedError

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        """Replace the running state (for example by the all-reduced one)."""
        raise NotImplementedError

    def compute(self) -> dict[str, Any]:
        """``{"value": float, ...extras}`` from the current state."""
        raise NotImplementedError

    def protocol(self) -> dict[str, Any]:
        """What exactly was measured: extractor, weights and hash, image size, images."""
        return {}


class PerImageMean(Metric):
    """A metric that is the mean over images of a per-image score (PSNR, SSIM, LPIPS).

    Subclasses implement ``per_image(batch) -> (B,) tensor``; the running
    state is a float64 total, a float64 sum of squares and an image count, so
    shards sum exactly.  Besides the mean, ``compute`` gives the spread over
    images (``image_sd``, n - 1 in the denominator) and the standard error of
    the mean (``standard_error`` = image_sd / sqrt(n)): the evaluation noise
    of the score, to set against the noise between training seeds.
    """

    def __init__(self) -> None:
        self.total = torch.zeros((), dtype=torch.float64)
        self.total_squares = torch.zeros((), dtype=torch.float64)
        self.count = torch.zeros((), dtype=torch.int64)
        self.image_size: list[int] = []

    def per_image(self, batch: EvalBatch) -> torch.Tensor:
        raise NotImplementedError

    def update(self, batch: EvalBatch) -> None:
        scores = self.per_image(batch).to(torch.float64).flatten()
        self.total = self.total.to(scores.device) + scores.sum()
        self.total_squares = self.total_squares.to(scores.device) + scores.pow(2).sum()
        self.count = self.count.to(scores.device) + scores.numel()
        self.image_size = list(batch.originals.shape[-2:])

    def state(self) -> dict[str, torch.Tensor]:
        return {"total": self.total, "total_squares": self.total_squares, "count": self.count}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        self.total, self.count = state["total"], state["count"]
        self.total_squares = state.get("total_squares", torch.full((), math.nan, dtype=torch.float64))

    def compute(self) -> dict[str, Any]:
        n = int(self.count)
        if n == 0:
            raise ConfigError(f"{type(self).__name__}: no images were evaluated")
        mean = float(self.total / n)
        out: dict[str, Any] = {"value": mean}
        if n > 1 and math.isfinite(float(self.total_squares)):
            # sum of squared deviations from the two sums; clamped: rounding can take it a hair below 0
            deviations = max(float(self.total_squares) - n * mean * mean, 0.0)
            sd = math.sqrt(deviations / (n - 1))
            out.update(image_sd=sd, standard_error=sd / math.sqrt(n))
        return out


def merge_states(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise sum of several states of one metric (what an all-reduce gives)."""
    if not states:
        raise ValueError("merge_states needs at least one state")
    keys = states[0].keys()
    return {key: sum((s[key] for s in states[1:]), states[0][key].clone()) for key in keys}


def reduce_states(metric: Metric, process_group=None) -> None:
    """Sum ``metric.state()`` over all ranks and load the result into ``metric``.

    A no-op unless ``torch.distributed`` is initialised.  Tensors travel on
    the backend's device (CUDA for NCCL) and come back on their own device and
    dtype; integer counts are reduced as int64 so that nothing is rounded.
    A metric whose state does not add element-wise (sparse keyed counts)
    sets ``state_adds_up`` false and defines ``merge_gathered(states)``: it
    then receives every rank's state.
    """
    # deferred: loads torch only when this runs
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    merge = getattr(metric, "merge_gathered", None)
    if callable(merge) and not getattr(metric, "state_adds_up", True):  # keyed (sparse) counts: gather them all
        gathered: list = [None] * dist.get_world_size(process_group)
        dist.all_gather_object(gathered, {k: v.detach().cpu() for k, v in metric.state().items()}, group=process_group)
        merge(gathered)
        return
    comm_device = torch.device("cpu")
    if dist.get_backend(process_group) == "nccl":
        comm_device = torch.device("cuda", torch.cuda.current_device())
    state = metric.state()
    reduced = {}
    for key in sorted(state):  # same order on every rank
        tensor = state[key]
        wire_dtype = torch.float64 if tensor.is_floating_point() else torch.int64
        buffer = tensor.detach().to(device=comm_device, dtype=wire_dtype).clone()
        dist.all_reduce(buffer, op=dist.ReduceOp.SUM, group=process_group)
        reduced[key] = buffer.to(device=tensor.device, dtype=tensor.dtype)
    metric.load_state(reduced)
