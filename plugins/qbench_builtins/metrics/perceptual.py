"""LPIPS: learned perceptual image patch similarity (Zhang et al. 2018, arXiv 1801.03924).

The ``lpips`` package (v0.1 calibration heads, which ship inside its wheel)
on a torchvision backbone: AlexNet by default, as the tokenizer papers report
it (GSQ, arXiv 2412.02632), VGG16 as an option.  Inputs are the uint8 images
scaled to [-1, 1]; the score is per image, averaged over images, in float32
outside autocast.  The backbone weights must already be in the torch cache:
the metric never downloads (``qbench weights fetch`` does, when asked).
"""

from __future__ import annotations

import contextlib
import io
import warnings

import torch

from qbench import ConfigError, weights
from qbench.metric import EvalBatch, PerImageMean


class LPIPSMetric(PerImageMean):
    """Mean LPIPS distance between originals and reconstructions (lower is better)."""

    def __init__(self, net: str = "alex"):
        if net not in weights.LPIPS_NETWORKS:
            raise ConfigError(f"lpips net must be one of {', '.join(weights.LPIPS_NETWORKS)}, got {net!r}")
        weights_name = weights.LPIPS_NETWORKS[net]
        path = weights.require(weights_name, f"lpips (net={net})")  # MetricUnavailable when absent
        row = weights.describe(weights_name)
        import lpips

        # torchvision finds the file in the hub cache and loads it without any network access;
        # lpips 0.1.4 still passes torchvision's deprecated ``pretrained=``: silence that noise
        try:
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
                network = lpips.LPIPS(net=net, verbose=False)
        except Exception as exc:  # a corrupt or truncated file in the cache: name it and the way out
            reason = (str(exc).strip().splitlines() or [""])[0]
            raise ConfigError(
                f"lpips (net={net}): cannot load the weights file {path}: {type(exc).__name__}: {reason}; "
                f"delete it and run `qbench weights fetch {weights_name}`, or `qbench weights install FILE` "
                "with a good copy"
            ) from None
        self._setup(network, net, path.name, row["sha256"], row["check"])

    @classmethod
    def check_image_size(cls, height: int, width: int, net: str = "alex", **options) -> None:
        problem = weights.lpips_size_problem(net, height, width)
        if problem:
            raise ConfigError(problem)

    @classmethod
    def from_network(cls, network: torch.nn.Module, net: str = "alex") -> LPIPSMetric:
        """Wrap an already built ``lpips.LPIPS`` (tests use a random backbone).

        Its numbers are not LPIPS unless the backbone is the pretrained one;
        the protocol says ``backbone_weights: supplied``.
        """
        metric = cls.__new__(cls)
        metric._setup(network, net, "supplied", "", "unverified")
        return metric

    def _setup(self, network, net, weights_file, sha256, check) -> None:
        self.network = network.eval().requires_grad_(False)
        self.net = net
        self.weights_file, self.weights_sha256, self.weights_check = weights_file, sha256, check
        PerImageMean.__init__(self)

    def per_image(self, batch: EvalBatch) -> torch.Tensor:
        self.check_image_size(*batch.originals.shape[-2:], net=self.net)  # qbench eval skips the run's checks
        device = batch.originals.device
        if next(self.network.parameters()).device != device:
            self.network.to(device)
        x = batch.originals01() * 2 - 1
        y = batch.reconstructions01() * 2 - 1
        with torch.no_grad(), torch.autocast(device.type, enabled=False):
            return self.network(x, y).flatten()

    def protocol(self) -> dict:
        from importlib.metadata import version

        return {
            "library": f"lpips {version('lpips')}",
            "net": self.net,
            "version": "0.1",
            "backbone_weights": self.weights_file,
            "weights_sha256": self.weights_sha256,
            "weights_check": self.weights_check,
            "inputs": "uint8 images scaled to [-1, 1], float32, no autocast",
            "reduction": "spatial mean per image (lpips default), mean over images",
            "image_size": self.image_size,
        }
