"""The conv backbone: shapes, downsample factor, attention, adaptive GroupNorm, errors."""

from __future__ import annotations

import pytest
import torch

import qbench
from qbench_builtins.backbones import AdaptiveGroupNorm, ConvBackbone


@pytest.mark.parametrize("mult,factor", [((1,), 1), ((1, 2), 2), ((1, 2, 2), 4), ((1, 1, 2, 2), 8)])
def test_downsample_is_two_to_the_levels(mult, factor):
    net = ConvBackbone(latent_dim=5, channels=8, channel_mult=mult)
    x = torch.randn(2, 3, 16, 16)
    z = net.encode(x)
    assert net.downsample == factor and z.shape == (2, 5, 16 // factor, 16 // factor)
    assert net.decode(z).shape == x.shape


def test_attention_and_adaptive_groupnorm_variants_run_and_learn():
    net = ConvBackbone(latent_dim=4, channels=8, channel_mult=(1, 2), attention=True, adaptive_groupnorm=True)
    x = torch.randn(2, 3, 8, 8)
    net(x).square().mean().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_adaptive_groupnorm_matches_its_formula():
    layer = AdaptiveGroupNorm(8, latent_dim=3)
    torch.nn.init.normal_(layer.scale.weight), torch.nn.init.normal_(layer.bias.weight)
    x, z = torch.randn(2, 8, 4, 4), torch.randn(2, 3, 2, 2)
    normed = torch.nn.functional.group_norm(x, 8, eps=1e-6)
    zf = z.flatten(2)
    scale = zf.std(-1, unbiased=False) @ layer.scale.weight.T + layer.scale.bias
    bias = zf.mean(-1) @ layer.bias.weight.T + layer.bias.bias
    torch.testing.assert_close(layer(x, z), normed * scale[..., None, None] + bias[..., None, None])


def test_through_the_registry():
    net = qbench.registries().backbones.create("conv", latent_dim=4, channels=8, channel_mult=[1, 2])
    assert net.encode(torch.zeros(1, 3, 8, 8)).shape == (1, 4, 4, 4)


@pytest.mark.parametrize("kwargs", [{"latent_dim": 0}, {"channels": 0}, {"channel_mult": []}, {"num_res_blocks": 0}])
def test_bad_options(kwargs):
    with pytest.raises(qbench.ConfigError):
        ConvBackbone(**{"latent_dim": 4, **kwargs})


def test_size_not_divisible_by_downsample():
    with pytest.raises(qbench.ConfigError, match="divisible"):
        ConvBackbone(latent_dim=4, channels=8, channel_mult=(1, 2, 2)).encode(torch.zeros(1, 3, 10, 10))
