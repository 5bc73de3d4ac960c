"""DiffAugment: differentiable augmentation for data-efficient GAN training.

Zhao et al., "Differentiable Augmentation for Data-Efficient GAN Training",
arXiv 2006.10738.  The same random colour, translation and cutout are applied
to real and fake images before the discriminator; the GSQ paper (arXiv
2412.02632, Tab. 8) uses cutout + colour + translation with its DINOv2
discriminator.  Inputs are images in [-1, 1], shape (B, C, H, W).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from qbench.errors import ConfigError


def color(x: torch.Tensor) -> torch.Tensor:
    b = x.shape[0]
    x = x + (torch.rand(b, 1, 1, 1, device=x.device, dtype=x.dtype) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (torch.rand(b, 1, 1, 1, device=x.device, dtype=x.dtype) * 2) + mean
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (torch.rand(b, 1, 1, 1, device=x.device, dtype=x.dtype) + 0.5) + mean


def translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    b, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = torch.randint(-sh, sh + 1, (b, 1, 1), device=x.device)
    tx = torch.randint(-sw, sw + 1, (b, 1, 1), device=x.device)
    gy, gx = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    gy = torch.clamp(gy.unsqueeze(0) + ty + 1, 0, h + 1)
    gx = torch.clamp(gx.unsqueeze(0) + tx + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1])
    idx = torch.arange(b, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[idx, gy, gx].permute(0, 3, 1, 2).contiguous()


def cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), device=x.device)
    ox = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), device=x.device)
    gy, gx = torch.meshgrid(torch.arange(ch, device=x.device), torch.arange(cw, device=x.device), indexing="ij")
    gy = torch.clamp(gy.unsqueeze(0) + oy - ch // 2, 0, h - 1)
    gx = torch.clamp(gx.unsqueeze(0) + ox - cw // 2, 0, w - 1)
    mask = torch.ones(b, h, w, device=x.device, dtype=x.dtype)
    mask[torch.arange(b, device=x.device)[:, None, None], gy, gx] = 0
    return x * mask.unsqueeze(1)


POLICIES = {"color": color, "translation": translation, "cutout": cutout}


def parse_policy(policy: str) -> list[str]:
    names = [p.strip() for p in policy.split(",") if p.strip()]
    for name in names:
        if name not in POLICIES:
            raise ConfigError(f"unknown DiffAugment policy {name!r}; allowed: {', '.join(POLICIES)}")
    return names


def diff_augment(x: torch.Tensor, policy: str = "color,translation,cutout") -> torch.Tensor:
    for name in parse_policy(policy):
        x = POLICIES[name](x)
    return x
