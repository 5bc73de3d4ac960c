"""The ranges a recipe's values must lie in, checked all at once.

``qbench.recipe.config`` parses a recipe (keys and value types); this module says
which parsed values cannot work: a beta of 1.5, a batch size of 0, a NaN
learning rate, a seed torch cannot take.  Every problem is one line, so a
user sees all of them in one attempt.
"""

from __future__ import annotations

import math
from typing import Any

LPIPS_NETS = ("alex", "vgg", "squeeze")  # = qbench.weights.LPIPS_NETWORKS (kept in step by a test)
DATASET_ARGUMENTS = ("split", "image_size", "root", "seed")  # given to every dataset by the recipe itself
TEST_SPLIT = "test"  # final numbers only: nothing computed during training may read it
MAX_SEED = 2**32 - 1  # numpy's limit; qbench derives per-item seeds from it that must stay within int64


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def batch_problem(batch_size: int, world_size: int) -> str:
    """Why a recipe's global batch cannot be split over ``world_size`` ranks ("" when it can)."""
    if world_size > 1 and batch_size % world_size:
        return (f"data.batch_size {batch_size} (the global batch) is not divisible by the {world_size} ranks; "
                f"use a multiple of {world_size}")
    return ""


def _betas(name: str, betas: list[float]) -> list[str]:
    if len(betas) != 2:
        return [f"{name} must have two values, got {betas!r}"]
    if not all(_finite(b) and 0.0 <= b < 1.0 for b in betas):
        return [f"{name} must both be in [0, 1), got {betas!r}"]
    return []


def problems(recipe) -> list[str]:
    """Every value of ``recipe`` out of its range, one line each (empty when all are fine)."""
    d, m, o, loss, t, e = recipe.data, recipe.model, recipe.optim, recipe.loss, recipe.train, recipe.eval
    checks = [
        (0 <= recipe.seed <= MAX_SEED, f"seed must be in 0..{MAX_SEED}, got {recipe.seed}"),
        (d.image_size > 0, "data.image_size must be positive"),
        (d.batch_size > 0, "data.batch_size must be positive"),
        (0 <= d.num_workers <= 1024, f"data.num_workers must be in 0..1024, got {d.num_workers}"),
        (m.latent_dim > 0, "model.latent_dim must be positive"),
        (_finite(o.lr) and o.lr > 0, "optim.lr must be positive"),
        (_finite(o.eps) and o.eps >= 0, f"optim.eps must be >= 0, got {o.eps}"),
        (_finite(o.weight_decay) and o.weight_decay >= 0, f"optim.weight_decay must be >= 0, got {o.weight_decay}"),
        (o.schedule in ("constant", "cosine", "linear"), "optim.schedule must be constant, cosine or linear"),
        (o.warmup_steps >= 0, f"optim.warmup_steps must be >= 0, got {o.warmup_steps}"),
        (_finite(o.min_lr_ratio) and 0.0 <= o.min_lr_ratio <= 1.0, f"optim.min_lr_ratio must be in [0, 1], got {o.min_lr_ratio}"),
        (_finite(o.grad_clip) and o.grad_clip >= 0, f"optim.grad_clip must be >= 0 (0: off), got {o.grad_clip}"),
        (_finite(o.ema_decay) and 0.0 <= o.ema_decay < 1.0, "optim.ema_decay must be in [0, 1)"),
        (_finite(o.disc_lr) and o.disc_lr >= 0, f"optim.disc_lr must be >= 0 (0: optim.lr), got {o.disc_lr}"),
        (t.steps >= 0, "train.steps must be >= 0"),
        (t.image_every >= 0, "train.image_every must be >= 0 (0: off)"),
        (all(isinstance(n, str) and n for n in t.loggers), "train.loggers must be a list of logger names"),
        (all(isinstance(v, dict) for v in recipe.loggers.values()), "each [loggers.NAME] must be a table of options"),
        (t.log_every >= 0, f"train.log_every must be >= 0, got {t.log_every}"),
        (t.checkpoint_every >= 0, f"train.checkpoint_every must be >= 0 (0: only at the end), got {t.checkpoint_every}"),
        (t.precision in ("fp32", "bf16"), "train.precision must be fp32 or bf16"),
        (t.device in ("auto", "cpu", "cuda"), "train.device must be auto, cpu or cuda"),
        (0 <= t.threads <= 4096, f"train.threads must be in 0..4096 (0: torch's default), got {t.threads}"),
        (loss.reconstruction in ("mse", "l1"), "loss.reconstruction must be mse or l1"),
        (loss.discriminator in ("patchgan", "dino"), "loss.discriminator must be patchgan or dino"),
        (loss.lpips_net in LPIPS_NETS, f"loss.lpips_net must be one of {', '.join(LPIPS_NETS)}"),
        (loss.disc_start >= 0, f"loss.disc_start must be >= 0, got {loss.disc_start}"),
        (e.batch_size >= 1, f"eval.batch_size must be >= 1, got {e.batch_size}"),
        (e.max_images >= 0, f"eval.max_images must be >= 0 (0: the whole split), got {e.max_images}"),
        (e.grid_images >= 0, f"eval.grid_images must be >= 0, got {e.grid_images}"),
        (e.every >= 0, f"eval.every must be >= 0 (0: off), got {e.every}"),
        (e.heldout_images >= 1, f"eval.heldout_images must be >= 1, got {e.heldout_images}"),
        (bool(e.metrics), "eval.metrics must name at least one metric"),
        (bool(e.split.strip()), "eval.split must name a split (train, val or test)"),
        (e.heldout_split.strip() not in ("", TEST_SPLIT), f"eval.heldout_split must name a split other than "
         f"{TEST_SPLIT} (the held-out curves are looked at during training), got {e.heldout_split!r}; use val"),
    ]
    found = [message for ok, message in checks if not ok]
    found += _betas("optim.betas", o.betas) + _betas("optim.disc_betas", o.disc_betas)
    reserved = sorted(set(DATASET_ARGUMENTS) & set(d.options))
    if reserved:
        found.append(f"data.options cannot set {', '.join(reserved)}: use data.image_size, data.root or seed")
    for name, table in recipe.quantizers.items():
        if isinstance(table, dict) and "dim" in table and table["dim"] != m.latent_dim:
            found.append(f"quantizers.{name}.dim: every quantizer gets dim = model.latent_dim "
                         f"({m.latent_dim}); set model.latent_dim instead")
    if "latent_dim" in m.options:
        found.append("model.options cannot set latent_dim: use model.latent_dim")
    for key in ("reconstruction_weight", "quantizer_weight", "lpips_weight", "adversarial_weight"):
        value = getattr(loss, key)
        if not (_finite(value) and value >= 0):
            found.append(f"loss.{key} must be a finite number >= 0, got {value}")
    return found
