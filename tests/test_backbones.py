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


def test_vit_backbone_shapes_and_position_resampling():
    net = qbench.registries().backbones.create("vit", latent_dim=4, image_size=16, downsample=4, width=16, depth=1, heads=2)
    x = torch.randn(2, 3, 16, 16)
    z = net.encode(x)
    assert net.downsample == 4 and z.shape == (2, 4, 4, 4) and net.decode(z).shape == x.shape
    assert net(torch.randn(1, 3, 24, 24)).shape == (1, 3, 24, 24)  # another size: positions resampled
    # a single token decodes to a single 4x4 patch (positions resampled to a 1x1 grid)
    patches = net.decode(torch.zeros(1, 4, 1, 1))
    assert patches.shape == (1, 3, 4, 4)


def test_vit_backbone_trains_through_the_loop(tmp_path):
    from qbench.comparison import runner
    from qbench.recipe.config import load_recipe

    recipe = load_recipe("smoke", ["model.backbone='vit'", "model.options={image_size=16, downsample=2, width=16, depth=1, heads=2}",
                                   "train.steps=2"])
    [outcome] = runner.run_comparison(["fsq"], recipe, out_root=tmp_path, progress=False)
    assert outcome.status == "ok" and outcome.record["model"]["downsample"] == 2


def test_vit_backbone_bad_options():
    from qbench_builtins.vit_backbone import ViTBackbone

    with pytest.raises(qbench.ConfigError, match="divisible"):
        ViTBackbone(latent_dim=4, image_size=18, downsample=4)
    with pytest.raises(qbench.ConfigError, match="heads"):
        ViTBackbone(latent_dim=4, width=10, heads=4)


@pytest.mark.parametrize("patch_size", [2, 4])
def test_patchify_stem_multiplies_the_downsample_factor_and_keeps_shapes(patch_size):
    backbone = qbench.registries().backbones.create("conv", latent_dim=4, channels=8, channel_mult=[1, 2],
                                                    patch_size=patch_size)
    assert backbone.downsample == 2 * patch_size
    x = torch.randn(2, 3, 16, 16)
    z = backbone.encode(x)
    assert z.shape == (2, 4, 16 // (2 * patch_size), 16 // (2 * patch_size))
    assert backbone.decode(z).shape == x.shape
    # the stem sees each p x p patch as channels: a first convolution over the unshuffled image
    stem = backbone.encoder.conv_in
    assert stem.in_channels == 3 * patch_size**2


def test_a_bad_patch_size_is_a_config_error():
    with pytest.raises(qbench.ConfigError, match="patch_size"):
        qbench.registries().backbones.create("conv", latent_dim=4, patch_size=0)
