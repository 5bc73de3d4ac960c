"""qbench's built-in metrics (the pinned protocol of docs/metrics.md).

Each metric is a ``qbench.metric.Metric``: streamed over the evaluation set,
with a sum-reducible state so DDP ranks can be combined exactly.
"""

from .codes import Bits, CodebookUsage, Perplexity
from .fid import ReconstructionFID
from .perceptual import LPIPSMetric
from .pixel import PSNR, SSIM
from .speed import Throughput

__all__ = [
    "Bits",
    "CodebookUsage",
    "LPIPSMetric",
    "PSNR",
    "Perplexity",
    "ReconstructionFID",
    "SSIM",
    "Throughput",
]
