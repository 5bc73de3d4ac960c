"""Every shipped recipe runs end to end on CPU, at toy sizes, through ``qbench run``.

The paper recipes (``imagenet128-vae``, ``imagenet256-gan``) are otherwise
only ever run on GPUs; here their code paths run in CI: attention, adaptive
GroupNorm, the LPIPS-VGG loss, the DINOv2 discriminator with DiffAugment,
EMA, bf16 autocast, every quantizer table.  Only sizes change (16x16 images,
8 channels, 2 steps, a generated ImageFolder); the pretrained networks are
replaced by random-weight stand-ins of the same architecture, since CI has
no weights and must not download.
"""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

import qbench.engine.discriminators as discriminators
import qbench.engine.losses as losses
import qbench.engine.train as train_module
from qbench import cli
from qbench.recipe.config import available_recipes, load_recipe
from qbench.rundir import checkpoint

SHIPPED = sorted(available_recipes())
TOY_SIZES = ["data.image_size=16", "data.batch_size=2", "data.num_workers=0", "model.options.channels=8",
             "model.options.num_res_blocks=1", "train.steps=2", "train.log_every=1", "train.checkpoint_every=0",
             "eval.max_images=4", "eval.batch_size=2", "eval.grid_images=2",
             "metrics.lpips.net=vgg"]  # the LPIPS metric's AlexNet needs 31x31 crops, VGG takes 16x16


@pytest.fixture(scope="module")
def pretrained_stand_ins():
    """Built once: a frozen random-weight LPIPS-VGG (shared, it never trains) and a DINOv2 discriminator template."""
    return (losses.PerceptualLoss("vgg", random_backbone=True),
            discriminators.DinoDiscriminator(pretrained=False, input_size=28))


@pytest.fixture
def stand_ins(monkeypatch, tmp_path, pretrained_stand_ins):
    """Random-weight LPIPS and DINOv2 in place of the pretrained ones; empty weight caches; one thread."""
    perceptual, dino = pretrained_stand_ins
    real_build = discriminators.build_discriminator

    def build_discriminator(kind, pretrained=True, image_size=256):
        if kind == "dino":  # the same ViT-S/14 and heads, random weights, a small input; a fresh copy per run
            return copy.deepcopy(dino)
        return real_build(kind, pretrained=pretrained, image_size=image_size)

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(losses, "require_lpips_weights", lambda net: None)
    monkeypatch.setattr(discriminators, "require_dinov2", lambda: None)
    monkeypatch.setattr(discriminators, "build_discriminator", build_discriminator)
    monkeypatch.setattr(train_module, "PerceptualLoss", lambda net: perceptual)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # toy-sized convolutions run fastest on one thread
    yield
    torch.set_num_threads(threads)


def image_folder(root):
    rng = np.random.default_rng(0)
    for split, count in (("train", 8), ("val", 4)):
        folder = root / split / "n0000"
        folder.mkdir(parents=True)
        for i in range(count):
            Image.fromarray((rng.random((20, 24, 3)) * 255).astype(np.uint8)).save(folder / f"{i}.png")
    return root


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_recipe_runs_end_to_end_on_cpu(name, tmp_path, stand_ins, capsys):
    recipe = load_recipe(name)
    sizes = list(TOY_SIZES)
    if recipe.data.dataset == "imagefolder":
        # ImageNet's layout: val/ is scored as test; val is held out of train/ (1% of 8 images is none)
        sizes += [f"data.root='{image_folder(tmp_path / 'data')}'", "data.options.val_fraction=0.25"]
    quantizers = sorted(recipe.quantizers)
    out = tmp_path / "runs"
    args = ["run", "--recipe", name, "--quantizers", ",".join(quantizers), "--out", str(out), "--no-progress"]
    for item in sizes:
        args += ["--set", item]
    assert cli.main(args) == 0, capsys.readouterr().err

    run_dirs = sorted((out / name).iterdir())
    assert [d.name.split("-seed")[0] for d in run_dirs] == quantizers
    for run_dir in run_dirs:
        record = json.loads((run_dir / "metrics.json").read_text())
        assert record["run"]["status"] == "ok", record["run"]["reason"]
        assert record["metrics"]["psnr"]["status"] == "ok" and math.isfinite(record["metrics"]["psnr"]["value"])
        assert record["train"]["steps"] == 2 and math.isfinite(record["train"]["final_loss"])
        assert record["eval"]["split"] == "test"
        if recipe.data.dataset == "imagefolder":
            assert record["eval"]["images"] == 4 and "held out by path hash" in record["train"]["data_note"]
        state = checkpoint.load(run_dir)
        assert (state["ema"] is not None) == (recipe.optim.ema_decay > 0)
        assert (state["discriminator"] is not None) == (recipe.loss.adversarial_weight > 0)
        logged = state["log"][-1]
        assert ("lpips" in logged) == (recipe.loss.lpips_weight > 0)
        assert ("g_adv" in logged and "d_loss" in logged) == (recipe.loss.adversarial_weight > 0)
        assert all(t.dtype != torch.bfloat16 for t in state["model"].values())  # bf16 autocast, fp32 weights
