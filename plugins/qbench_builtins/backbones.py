"""The convolutional encoder/decoder of VQGAN and MagViT2, as used by GSQ.

Encoder: conv in, then per level ``num_res_blocks`` residual blocks and a
stride-2 downsample (none after the last level), a middle block with optional
self-attention at the lowest resolution, and GroupNorm + SiLU + 1x1 conv to
``latent_dim`` channels (no projection layer, as in the GSQ reference code).
Decoder: the mirror image, starting from ``latent_dim`` with a 3x3 conv;
optional adaptive GroupNorm (GSQ paper App. B, arXiv 2412.02632) after the
middle block and after each upsample, whose scale and bias are linear maps of
the per-channel spatial std and mean of the quantized latent.

``downsample`` = patch_size * 2 ** (len(channel_mult) - 1).

``patch_size`` p > 1 is a space-to-depth (patchify) stem, as in the
patchify stems of ViT and ConvNeXt: the image is rearranged into p x p
patches (``pixel_unshuffle``) before the first convolution, and the decoder
ends in 3 p^2 channels rearranged back (``pixel_shuffle``).  The first level
then runs at 1/p resolution, which cuts the full-resolution convolutions'
FLOPs by about p^2: the lever that lets CPU recipes train longer
(docs/training.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from qbench import ConfigError


def _groups(channels: int) -> int:
    for groups in (32, 16, 8, 4, 2, 1):
        if channels % groups == 0:
            return groups
    return 1


def norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(_groups(channels), channels, eps=1e-6)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.norm1, self.conv1 = norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2, self.conv2 = norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    """Single-head self-attention over positions (VQGAN's mid-block attention)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(-1, -2).unbind(1)
        a = F.scaled_dot_product_attention(q, k, v)
        return x + self.out(a.transpose(-1, -2).reshape(b, c, h, w))


class AdaptiveGroupNorm(nn.Module):
    """GroupNorm without affine; scale/bias predicted from the latent's channel std/mean."""

    def __init__(self, channels: int, latent_dim: int):
        super().__init__()
        self.norm = nn.GroupNorm(_groups(channels), channels, eps=1e-6, affine=False)
        self.scale = nn.Linear(latent_dim, channels)
        self.bias = nn.Linear(latent_dim, channels)
        nn.init.zeros_(self.scale.weight), nn.init.ones_(self.scale.bias)
        nn.init.zeros_(self.bias.weight), nn.init.zeros_(self.bias.bias)

    def forward(self, x, z):
        zf = z.flatten(2).float()
        std = zf.std(dim=-1, unbiased=False) if zf.shape[-1] > 1 else torch.zeros_like(zf[..., 0])
        scale, bias = self.scale(std.to(x.dtype)), self.bias(zf.mean(-1).to(x.dtype))
        return self.norm(x) * scale[..., None, None] + bias[..., None, None]


class Encoder(nn.Module):
    def __init__(self, latent_dim, channels, channel_mult, num_res_blocks, attention, patch_size=1):
        super().__init__()
        self.patch_size = patch_size
        self.conv_in = nn.Conv2d(3 * patch_size**2, channels, 3, padding=1)
        layers, cin = [], channels
        for level, mult in enumerate(channel_mult):
            cout = channels * mult
            for _ in range(num_res_blocks):
                layers.append(ResBlock(cin, cout))
                cin = cout
            if level < len(channel_mult) - 1:
                layers.append(nn.Conv2d(cin, cin, 3, stride=2, padding=1))
        layers.append(ResBlock(cin, cin))
        if attention:
            layers += [Attention(cin), ResBlock(cin, cin)]
        self.body = nn.Sequential(*layers)
        self.norm_out = norm(cin)
        self.conv_out = nn.Conv2d(cin, latent_dim, 1)

    def forward(self, x):
        if self.patch_size > 1:
            x = F.pixel_unshuffle(x, self.patch_size)
        return self.conv_out(F.silu(self.norm_out(self.body(self.conv_in(x)))))


class Decoder(nn.Module):
    def __init__(self, latent_dim, channels, channel_mult, num_res_blocks, attention, adaptive_groupnorm,
                 patch_size=1):
        super().__init__()
        self.patch_size = patch_size
        cin = channels * channel_mult[-1]
        self.conv_in = nn.Conv2d(latent_dim, cin, 3, padding=1)
        mid = [ResBlock(cin, cin)] + ([Attention(cin), ResBlock(cin, cin)] if attention else [])
        self.mid = nn.Sequential(*mid)
        self.stages = nn.ModuleList()
        self.adagn = nn.ModuleList()
        self.adagn.append(AdaptiveGroupNorm(cin, latent_dim) if adaptive_groupnorm else nn.Identity())
        for level, mult in reversed(list(enumerate(channel_mult))):
            cout = channels * mult
            blocks = []
            for _ in range(num_res_blocks):
                blocks.append(ResBlock(cin, cout))
                cin = cout
            upsample = level > 0
            if upsample:
                blocks += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cin, 3, padding=1)]
            self.stages.append(nn.Sequential(*blocks))
            self.adagn.append(AdaptiveGroupNorm(cin, latent_dim) if adaptive_groupnorm and upsample else nn.Identity())
        self.norm_out = norm(cin)
        self.conv_out = nn.Conv2d(cin, 3 * patch_size**2, 3, padding=1)

    def _adapt(self, i, h, z):
        layer = self.adagn[i]
        return layer(h, z) if isinstance(layer, AdaptiveGroupNorm) else h

    def forward(self, z):
        h = self._adapt(0, self.mid(self.conv_in(z)), z)
        for i, stage in enumerate(self.stages, start=1):
            h = self._adapt(i, stage(h), z)
        x = self.conv_out(F.silu(self.norm_out(h)))
        return F.pixel_shuffle(x, self.patch_size) if self.patch_size > 1 else x


class ConvBackbone(nn.Module):
    """Encoder + decoder pair; ``encode(x) -> (B, latent_dim, H/f, W/f)``, ``decode(z) -> x``."""

    def __init__(
        self,
        *,
        latent_dim: int,
        channels: int = 64,
        channel_mult: list[int] | tuple[int, ...] = (1, 2, 2),
        num_res_blocks: int = 1,
        attention: bool = False,
        adaptive_groupnorm: bool = False,
        patch_size: int = 1,
    ):
        super().__init__()
        channel_mult = tuple(int(m) for m in channel_mult)
        if not isinstance(latent_dim, int) or latent_dim < 1:
            raise ConfigError(f"conv backbone: latent_dim must be a positive integer, got {latent_dim!r}")
        if not isinstance(channels, int) or channels < 1:
            raise ConfigError(f"conv backbone: channels must be a positive integer, got {channels!r}")
        if not channel_mult or any(m < 1 for m in channel_mult):
            raise ConfigError(f"conv backbone: channel_mult must be positive integers, got {channel_mult!r}")
        if isinstance(patch_size, bool) or not isinstance(patch_size, int) or not 1 <= patch_size <= 16:
            raise ConfigError(f"conv backbone: patch_size must be an integer in 1..16, got {patch_size!r}")
        if not isinstance(num_res_blocks, int) or num_res_blocks < 1:
            raise ConfigError(f"conv backbone: num_res_blocks must be >= 1, got {num_res_blocks!r}")
        # far beyond any published tokenizer; a typo past these would build layers until memory runs out
        limits = (("channels", channels, 16384), ("num_res_blocks", num_res_blocks, 64),
                  ("len(channel_mult)", len(channel_mult), 16), ("channel_mult", max(channel_mult), 64))
        for name, value, limit in limits:
            if value > limit:
                raise ConfigError(f"conv backbone: {name} must be at most {limit}, got {value}")
        self.latent_dim = latent_dim
        self.downsample = patch_size * 2 ** (len(channel_mult) - 1)
        self.encoder = Encoder(latent_dim, channels, channel_mult, num_res_blocks, attention, patch_size)
        self.decoder = Decoder(latent_dim, channels, channel_mult, num_res_blocks, attention, adaptive_groupnorm,
                               patch_size)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % self.downsample or x.shape[-2] % self.downsample:
            raise ConfigError(
                f"conv backbone: image size {tuple(x.shape[-2:])} is not divisible by the downsample factor {self.downsample}"
            )
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))
