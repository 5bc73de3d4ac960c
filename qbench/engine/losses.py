"""Generator-side losses: reconstruction, LPIPS perceptual, adversarial.

As in the GSQ paper's recipes (arXiv 2412.02632, Tab. 16/18): MSE
reconstruction weight 1, LPIPS (VGG) weight 1, adversarial weight 0.1 with a
non-saturating generator loss and no adaptive weight.  LPIPS is the ``lpips``
package (Zhang et al., arXiv 1801.03924), fed [-1, 1] inputs as it expects.
Pretrained weights are never downloaded here: a missing file is a
``ConfigError`` raised before training starts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from qbench import weights
from qbench.errors import ConfigError, MetricUnavailable


def reconstruction_loss(kind: str, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    if kind == "mse":
        return F.mse_loss(x_hat.float(), x.float())
    if kind == "l1":
        return F.l1_loss(x_hat.float(), x.float())
    raise ConfigError(f"loss.reconstruction must be mse or l1, got {kind!r}")


def require_lpips_weights(net: str) -> None:
    """ConfigError naming the file and how to get it, when LPIPS' backbone is not cached."""

    name = weights.LPIPS_NETWORKS.get(net)
    if name is None:
        raise ConfigError(f"loss.lpips_net must be one of {', '.join(weights.LPIPS_NETWORKS)}, got {net!r}")
    try:
        weights.require(name, "LPIPS perceptual loss")
    except MetricUnavailable as exc:
        raise ConfigError(str(exc)) from None


class PerceptualLoss(nn.Module):
    """LPIPS distance, averaged over the batch; frozen.  ``random_backbone`` is for tests only."""

    def __init__(self, net: str = "vgg", random_backbone: bool = False):
        super().__init__()
        if not random_backbone:
            require_lpips_weights(net)
        # deferred: loads lpips only when this runs
        import lpips

        self.lpips = lpips.LPIPS(net=net, pnet_rand=random_backbone, verbose=False)
        self.lpips.requires_grad_(False).eval()

    def train(self, mode: bool = True):
        return super().train(False)

    def forward(self, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.lpips(x_hat.float(), x.float()).mean()


def _raise(message: str) -> None:
    raise ConfigError(message)


def check_pretrained(recipe) -> None:
    """Raise before training when the recipe's losses need weights that are absent (every one, a line each)."""
    loss = recipe.loss
    checks = []
    if loss.lpips_weight > 0:
        checks.append(lambda: require_lpips_weights(loss.lpips_net))
        size = recipe.data.image_size
        too_small = weights.lpips_size_problem(loss.lpips_net, size, size, "loss.lpips_net")
        if too_small:
            checks.append(lambda: _raise(too_small))
    if loss.adversarial_weight > 0 and loss.discriminator == "dino":
        # deferred: loads torch only when this runs
        from qbench.engine import discriminators

        checks.append(lambda: discriminators.require_dinov2())
    if loss.adversarial_weight > 0:
        # deferred: loads torch only when this runs
        from qbench.engine.diffaug import parse_policy

        checks.append(lambda: parse_policy(loss.diffaug))
    problems = []
    for check in checks:
        try:
            check()
        except ConfigError as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigError("\n".join(problems))
