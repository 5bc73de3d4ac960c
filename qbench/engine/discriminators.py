"""Discriminators for the adversarial loss: PatchGAN and a frozen-DINOv2 one.

PatchGAN: the N-layer discriminator of pix2pix / VQGAN (Isola et al.,
arXiv 1611.07004; Esser et al., arXiv 2012.09841).
DINOv2 discriminator: the GSQ paper's choice (arXiv 2412.02632, Tab. 7 and
19), in the projected-GAN style of StyleGAN-T / ADD: a frozen DINOv2 ViT-S/14
(timm ``vit_small_patch14_reg4_dinov2``) feeds the patch embedding and blocks
2, 5, 8, 11 to small trainable heads (Conv1d + BatchNorm + LeakyReLU, then a
spectral-normalised Conv1d to one logit per token).  Losses: hinge for the
discriminator, non-saturating for the generator (the paper's "NH").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from qbench.errors import ConfigError
from qbench.weights import DINOV2_MODEL, _dinov2_status

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class PatchGAN(nn.Module):
    """N-layer PatchGAN: one real/fake logit per receptive-field patch."""

    def __init__(self, channels: int = 64, n_layers: int = 3):
        super().__init__()
        layers = [nn.Conv2d(3, channels, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        cin = channels
        for i in range(1, n_layers + 1):
            cout = channels * min(2**i, 8)
            stride = 2 if i < n_layers else 1
            layers += [nn.Conv2d(cin, cout, 4, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, True)]
            cin = cout
        layers.append(nn.Conv2d(cin, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class DinoHead(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv1d(channels, channels, 1), nn.BatchNorm1d(channels), nn.LeakyReLU(0.2, True))
        self.out = spectral_norm(nn.Conv1d(channels, 1, 1))

    def forward(self, tokens):  # (B, N, C)
        return self.out(self.body(tokens.transpose(1, 2)))


class DinoDiscriminator(nn.Module):
    """Frozen DINOv2 features + trainable heads.  ``pretrained=False`` only for tests."""

    def __init__(self, pretrained: bool = True, input_size: int = 224, blocks=(2, 5, 8, 11)):
        super().__init__()
        # deferred: loads timm only when this runs
        import timm

        if pretrained:
            require_dinov2()
        self.backbone = timm.create_model(DINOV2_MODEL, pretrained=pretrained, img_size=input_size, num_classes=0)
        self.backbone.requires_grad_(False).eval()
        self.input_size, self.blocks = input_size, tuple(blocks)
        width = self.backbone.embed_dim
        self.heads = nn.ModuleList(DinoHead(width) for _ in range(len(self.blocks) + 1))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True):
        super().train(mode)
        self.backbone.eval()  # frozen: its dropout / norms never switch to training mode
        return self

    def forward(self, x):
        x = (x.float() + 1) / 2
        x = F.interpolate(x, size=(self.input_size, self.input_size), mode="area")
        x = (x - self.mean) / self.std
        vit = self.backbone
        tokens = vit.patch_embed(x)
        tokens = vit._pos_embed(tokens)
        features = [tokens]
        for i, block in enumerate(vit.blocks):
            tokens = block(tokens)
            if i in self.blocks:
                features.append(tokens)
        return torch.cat([head(f).flatten(1) for head, f in zip(self.heads, features)], dim=1)


def require_dinov2() -> None:
    """ConfigError (before training) when the DINOv2 weights are not in the local cache."""

    row = _dinov2_status()
    if not row["present"]:
        raise ConfigError(
            f"the DINOv2 discriminator needs pretrained weights {row['file']} in the Hugging Face cache; "
            f"run `qbench weights fetch` with internet access (source: {row['url']}), "
            "or use loss.discriminator=\"patchgan\""
        )


def build_discriminator(kind: str, pretrained: bool = True, image_size: int = 256) -> nn.Module:
    if kind == "patchgan":
        # 3 layers (70x70 patches) from 32 pixels up; fewer on tiny crops, which 3 would shrink to nothing
        return PatchGAN(n_layers=max(1, min(3, image_size.bit_length() - 3)))
    if kind == "dino":
        return DinoDiscriminator(pretrained=pretrained)
    raise ConfigError(f"unknown discriminator {kind!r}; allowed: patchgan, dino")


def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return 0.5 * (F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean())


def non_saturating_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    return F.softplus(-fake_logits).mean()
