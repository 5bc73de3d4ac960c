"""A ViT encoder/decoder built from timm's transformer blocks (ViT-VQGAN style).

Yu et al., "Vector-quantized Image Modeling with Improved VQGAN",
arXiv 2110.04627: the image is cut into p x p patches (p = ``downsample``),
each patch is a token, a stack of transformer blocks encodes the tokens and a
linear layer maps each to ``latent_dim`` channels; the decoder mirrors it and
a linear layer turns each token back into a p x p x 3 patch.  Positions use a
learned 2-D embedding sized for ``image_size`` (resampled for other sizes).
"""

from __future__ import annotations

import torch
from torch import nn

from qbench import ConfigError


class _Stack(nn.Module):
    def __init__(self, width: int, depth: int, heads: int, tokens: int):
        super().__init__()
        from timm.models.vision_transformer import Block

        self.pos = nn.Parameter(torch.randn(1, tokens, width) * 0.02)
        self.blocks = nn.Sequential(*[Block(width, heads, qkv_bias=True) for _ in range(depth)])
        self.norm = nn.LayerNorm(width)

    def forward(self, tokens: torch.Tensor, grid: tuple[int, int], base_grid: tuple[int, int]) -> torch.Tensor:
        pos = self.pos
        if grid != base_grid:
            from timm.layers import resample_abs_pos_embed

            pos = resample_abs_pos_embed(pos, list(grid), list(base_grid), num_prefix_tokens=0)
        return self.norm(self.blocks(tokens + pos))


class ViTBackbone(nn.Module):
    """``encode(x) -> (B, latent_dim, H/p, W/p)``, ``decode(z) -> x``; p = ``downsample``."""

    def __init__(self, *, latent_dim: int, image_size: int = 32, downsample: int = 4, width: int = 128,
                 depth: int = 4, heads: int = 4):
        super().__init__()
        for name, value in (("latent_dim", latent_dim), ("image_size", image_size), ("downsample", downsample),
                            ("width", width), ("depth", depth), ("heads", heads)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"vit backbone: {name} must be a positive integer, got {value!r}")
        if depth > 256:  # a typo past this would build blocks until memory runs out
            raise ConfigError(f"vit backbone: depth must be at most 256, got {depth}")
        if image_size % downsample:
            raise ConfigError(f"vit backbone: image_size {image_size} is not divisible by downsample {downsample}")
        if width % heads:
            raise ConfigError(f"vit backbone: width {width} is not divisible by heads {heads}")
        self.latent_dim, self.downsample = latent_dim, downsample
        self.base_grid = (image_size // downsample, image_size // downsample)
        tokens, patch = self.base_grid[0] * self.base_grid[1], 3 * downsample * downsample
        self.encoder = nn.ModuleDict({
            "embed": nn.Conv2d(3, width, downsample, stride=downsample),
            "stack": _Stack(width, depth, heads, tokens),
            "out": nn.Linear(width, latent_dim),
        })
        self.decoder = nn.ModuleDict({
            "embed": nn.Linear(latent_dim, width),
            "stack": _Stack(width, depth, heads, tokens),
            "out": nn.Linear(width, patch),
        })

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        p = self.downsample
        if x.shape[-1] % p or x.shape[-2] % p:
            raise ConfigError(f"vit backbone: image size {tuple(x.shape[-2:])} is not divisible by the patch size {p}")
        h = self.encoder["embed"](x)
        grid = (h.shape[2], h.shape[3])
        tokens = self.encoder["stack"](h.flatten(2).transpose(1, 2), grid, self.base_grid)
        return self.encoder["out"](tokens).transpose(1, 2).reshape(x.shape[0], self.latent_dim, *grid)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        b, _, h, w = z.shape
        p = self.downsample
        tokens = self.decoder["stack"](self.decoder["embed"](z.flatten(2).transpose(1, 2)), (h, w), self.base_grid)
        patches = self.decoder["out"](tokens).reshape(b, h, w, 3, p, p)
        return patches.permute(0, 3, 1, 4, 2, 5).reshape(b, 3, h * p, w * p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))
