"""The training loop: resume equals uninterrupted, NaN runs fail alone, checkpoints, schedules, losses."""

from __future__ import annotations

import math

import pytest
import torch

import qbench
from qbench import QuantizerOutput, QuantizerSpec, hookimpl
from qbench.comparison import runner
from qbench.engine.data import StepBatchSampler, build_dataset
from qbench.engine.model import build_tokenizer
from qbench.engine.train import fit, learning_rate
from qbench.recipe.config import load_recipe
from qbench.recipe.identity import resolve
from qbench.rundir import checkpoint


class NaNAfter(torch.nn.Module):
    """A test quantizer: identity with a zero loss that turns NaN at step ``after``."""

    codebook_size, tokens_per_position, bits_per_position = 2, 1, 1.0

    def __init__(self, dim: int, after: int = 5):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.after, self.calls = after, 0

    def forward(self, z):
        if self.training:
            self.calls += 1
        loss = self.scale * 0 + (float("nan") if self.calls >= self.after else 0.0)
        codes = torch.zeros(z.shape[0], z.shape[2], z.shape[3], 1, dtype=torch.long)
        return QuantizerOutput(z * self.scale, codes, loss, {})

    def encode(self, z):
        return torch.zeros(z.shape[0], z.shape[2], z.shape[3], 1, dtype=torch.long)


class Plugin:
    @hookimpl
    def qbench_register_quantizers(self):
        return [QuantizerSpec(name="nan_after", factory=f"{__name__}:NaNAfter")]


def smoke(*overrides):
    return load_recipe("smoke", list(overrides))


def results_log(run_dir):
    import csv

    with open(run_dir / "log.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def weights_of(run_dir, key="model"):
    return checkpoint.load(run_dir)[key]


def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path):
    recipe = smoke()
    [whole] = runner.run_comparison(["gsq"], recipe, out_root=tmp_path / "a", progress=False)
    assert whole.status == "ok"

    # the same run, interrupted after 4 of 6 steps (checkpoint at step 3, then 4)...
    regs = qbench.registries()
    run_dir = tmp_path / "b"
    run_dir.mkdir()
    identity = resolve(recipe, "gsq", regs)
    torch.manual_seed(recipe.seed)
    tokenizer = build_tokenizer(identity, regs=regs)
    fit(tokenizer, recipe, build_dataset(recipe, "train", regs), identity=identity.to_dict(),
        run_dir=run_dir, progress=False, stop_after=4)
    assert checkpoint.load(run_dir)["step"] == 4
    # ...and resumed, in a model rebuilt from a different RNG state
    torch.manual_seed(1234)
    resumed = runner.resume_run(run_dir, progress=False)
    assert resumed.status == "ok"
    for key in ("model", "ema"):
        a, b = weights_of(whole.run_dir, key), weights_of(run_dir, key)
        assert a.keys() == b.keys()
        for name in a:
            assert torch.equal(a[name], b[name]), (key, name)
    assert checkpoint.load(run_dir)["step"] == recipe.train.steps
    # log.csv (the csv logger) keeps the rows up to the checkpoint and continues: the same steps and losses
    whole_log, resumed_log = (results_log(d) for d in (whole.run_dir, run_dir))
    assert [(r["step"], r["loss"]) for r in resumed_log] == [(r["step"], r["loss"]) for r in whole_log]


def test_nan_run_is_marked_failed_and_the_next_one_completes(tmp_path):
    regs = qbench.registries(extra_plugins={"nan": Plugin()})
    outcomes = runner.run_comparison(["nan_after", "gsq"], smoke(), out_root=tmp_path, progress=False, regs=regs)
    failed, ok = outcomes
    assert failed.status == "failed" and "non-finite loss" in failed.reason
    assert failed.record["run"]["failed_step"] == 5 and failed.record["run"]["status"] == "failed"
    assert (failed.run_dir / "metrics.json").is_file()
    assert checkpoint.load(failed.run_dir)["step"] == 3  # the last good checkpoint is kept
    assert ok.status == "ok" and ok.metrics["psnr"]["status"] == "ok"


def test_unknown_quantizer_and_bad_options_fail_before_training(tmp_path):
    with pytest.raises(qbench.ConfigError, match="did you mean"):
        runner.run_comparison(["gsqq"], smoke(), out_root=tmp_path, progress=False)
    with pytest.raises(qbench.ConfigError, match="divisible"):
        runner.run_comparison(["gsq"], smoke("quantizers.gsq.groups=3"), out_root=tmp_path, progress=False)
    assert not any(tmp_path.rglob("checkpoint.pt"))


def test_corrupt_and_foreign_checkpoints_are_config_errors(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"garbage")
    with pytest.raises(qbench.ConfigError, match="corrupt"):
        checkpoint.load(tmp_path)
    torch.save({"state_dict": {}}, tmp_path / "checkpoint.pt")
    with pytest.raises(qbench.ConfigError, match="not a qbench checkpoint"):
        runner.resume_run(tmp_path, progress=False)
    with pytest.raises(qbench.ConfigError, match="no checkpoint"):
        checkpoint.load(tmp_path / "missing")


def test_learning_rate_schedules():
    recipe = smoke("optim.lr=1.0", "optim.warmup_steps=4", "train.steps=14", "optim.schedule='cosine'",
                   "optim.min_lr_ratio=0.1")
    assert [learning_rate(recipe, s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert learning_rate(recipe, 9) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert learning_rate(recipe, 14) == pytest.approx(0.1)
    assert learning_rate(smoke("optim.lr=0.5"), 100) == 0.5
    linear = smoke("optim.lr=1.0", "optim.warmup_steps=4", "train.steps=14", "optim.schedule='linear'",
                   "optim.min_lr_ratio=0.0")
    assert [learning_rate(linear, s) for s in (4, 9, 14)] == [pytest.approx(1.0), pytest.approx(0.5), 0.0]


def test_batches_are_disjoint_across_ranks_and_resume_where_they_stopped():
    # the recipe's batch (8) is the global batch: each of 2 ranks takes 4 samples per step
    rank0 = StepBatchSampler(50, 8, seed=3, rank=0, world_size=2)
    rank1 = StepBatchSampler(50, 8, seed=3, rank=1, world_size=2)
    assert len(rank0.indices(0)) == len(rank1.indices(0)) == 4
    seen = [i for step in range(6) for s in (rank0, rank1) for i in s.indices(step)]
    assert len(set(seen[:48])) == 48  # no sample twice within one epoch of 50
    one = StepBatchSampler(50, 8, seed=3)  # one process on the same global batch sees the same samples
    assert all(one.indices(step) == rank0.indices(step) + rank1.indices(step) for step in range(8))
    later = StepBatchSampler(50, 8, seed=3, start_step=4, rank=1, world_size=2)
    assert next(iter(later)) == rank1.indices(4)
    with pytest.raises(qbench.ConfigError, match="not divisible by the 3 ranks"):
        StepBatchSampler(50, 8, seed=3, rank=0, world_size=3)


def test_missing_pretrained_weights_fail_before_training(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    with pytest.raises(qbench.ConfigError, match="vgg16-397923af.pth.*qbench weights"):
        runner.run_comparison(["gsq"], smoke("loss.lpips_weight=1.0"), out_root=tmp_path, progress=False)
    with pytest.raises(qbench.ConfigError, match="DINOv2"):
        runner.run_comparison(["gsq"], smoke("loss.adversarial_weight=0.1", "loss.discriminator='dino'"),
                              out_root=tmp_path, progress=False)


def test_adversarial_patchgan_and_lpips_plumbing(tmp_path, monkeypatch):
    """Random-weight LPIPS and a PatchGAN: the loop trains both sides and checkpoints the discriminator."""
    import qbench.engine.train as train_module
    from qbench.engine.losses import PerceptualLoss

    monkeypatch.setattr(train_module, "PerceptualLoss", lambda net: PerceptualLoss(net, random_backbone=True))
    recipe = smoke("data.image_size=32", "loss.adversarial_weight=0.1", "loss.lpips_weight=0.5", "loss.lpips_net='alex'",
                   "train.steps=2", "train.checkpoint_every=0")
    regs = qbench.registries()
    torch.manual_seed(0)
    identity = resolve(recipe, "gsq", regs)
    tokenizer = build_tokenizer(identity, regs=regs)
    result = fit(tokenizer, recipe, build_dataset(recipe, "train", regs), progress=False, run_dir=tmp_path,
                 identity=identity.to_dict())
    state = checkpoint.load(tmp_path)
    assert state["discriminator"] is not None and state["d_optimizer"] is not None
    assert {"g_adv", "d_loss", "lpips"} <= set(result.log[-1])


def test_dino_discriminator_plumbing_with_random_weights():
    from qbench.engine.discriminators import DinoDiscriminator, hinge_d_loss, non_saturating_g_loss

    disc = DinoDiscriminator(pretrained=False, input_size=28)
    logits = disc(torch.rand(2, 3, 16, 16) * 2 - 1)
    assert logits.shape[0] == 2 and torch.isfinite(logits).all()
    assert not any(p.requires_grad for p in disc.backbone.parameters())
    assert hinge_d_loss(torch.full((2,), 2.0), torch.full((2,), -2.0)) == 0
    assert non_saturating_g_loss(torch.zeros(3)) == pytest.approx(math.log(2))


def test_diffaugment_keeps_shapes_and_cutout_removes_the_expected_area():
    from qbench.engine.diffaug import cutout, diff_augment, translation

    x = torch.rand(4, 3, 16, 16)
    assert diff_augment(x).shape == x.shape
    assert torch.equal(translation(x, ratio=0.0), x)
    torch.manual_seed(0)
    masked = cutout(torch.ones(4000, 1, 16, 16))
    # an 8x8 hole centred uniformly on 0..16 per axis covers 116/17 rows (and columns) on average
    expected = 1 - (116 / 17 / 16) ** 2
    assert masked.mean().item() == pytest.approx(expected, abs=0.005)
    with pytest.raises(qbench.ConfigError):
        diff_augment(x, "color,zoom")


def test_load_tokenizer_rebuilds_the_trained_model(tmp_path):
    from qbench.engine.model import load_tokenizer

    [run] = runner.run_comparison(["vq"], smoke(), out_root=tmp_path, progress=False)
    tokenizer, identity, dataset = load_tokenizer(run.run_dir, use_ema=True)
    assert identity.recipe_hash == smoke().hash() and identity.quantizer == "vq"
    assert identity.config_hash == run.record["run"]["config_hash"]
    state = checkpoint.load(run.run_dir)["ema"]
    for name, value in tokenizer.state_dict().items():
        assert torch.equal(value, state[name]), name
    x = torch.stack([dataset[i] for i in range(4)]).float() / 127.5 - 1
    codes = tokenizer.encode(x)
    # the forward pass decodes z + (q - z).detach() (straight-through), which can round an ulp of z away
    # from q; through the decoder that is up to ~1e-5 on the test crops
    torch.testing.assert_close(tokenizer.decode(codes), tokenizer(x)[0], atol=1e-4, rtol=1e-4)


def test_cpu_default_quantizers_share_the_rate():
    recipe = load_recipe("cpu-default")
    regs = qbench.registries()
    bits = {n: regs.quantizers.create(n, **recipe.quantizer_options(n)).bits_per_position for n in ("gsq", "vq", "rvq", "fsq", "lfq", "bsq", "simvq", "ibq")}
    assert max(bits.values()) <= 1.1 * min(bits.values()), bits
    assert bits["gsq"] == 10.0


def test_worker_processes_give_the_same_batches_as_the_main_process():
    from qbench.engine.data import train_batches

    dataset = build_dataset(smoke(), "train")
    inline = train_batches(dataset, 4, seed=7, start_step=2)
    workers = train_batches(dataset, 4, seed=7, start_step=2, num_workers=1)
    for _ in range(3):
        assert torch.equal(next(inline), next(workers))


def test_bf16_autocast_is_opt_in_on_cpu(tmp_path):
    recipe = smoke("train.precision='bf16'", "train.steps=2", "train.checkpoint_every=0")
    regs = qbench.registries()
    torch.manual_seed(0)
    identity = resolve(recipe, "gsq", regs)
    tokenizer = build_tokenizer(identity, regs=regs)
    result = fit(tokenizer, recipe, build_dataset(recipe, "train", regs), progress=False,
                 identity=identity.to_dict())
    assert result.steps == 2 and math.isfinite(result.final_loss)
    assert all(p.dtype == torch.float32 for p in result.model.parameters())  # weights stay float32


@pytest.mark.parametrize("size,layers", [(8, 1), (16, 2), (32, 3), (256, 3)])
def test_patchgan_depth_fits_the_crop_size(size, layers):
    from qbench.engine.discriminators import build_discriminator

    disc = build_discriminator("patchgan", image_size=size)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in disc.net) == layers
    assert disc(torch.zeros(1, 3, size, size)).numel() > 0
