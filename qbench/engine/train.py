"""The one training loop every quantizer goes through.

The GSQ paper's recipe (arXiv 2412.02632, section 4 and Tab. 16/18): AdamW
with the recipe's betas and weight decay on every parameter (codebooks
included), constant LR (warm-up and cosine decay as options), gradient
clipping, an EMA of the weights (timm's ``ModelEmaV3``), bf16 autocast when
the recipe asks for it (quantizer lookups stay float32), channels_last.
Optional LPIPS and adversarial losses (the discriminator steps right after
the generator, on the same batch).

Determinism: the model is built after seeding, data batches depend only on
(seed, step) (``qbench.engine.data``), and RNG states are checkpointed, so on CPU a
resumed run ends with exactly the weights of an uninterrupted one.
Under ``torchrun`` the model is wrapped in DDP; only rank 0 writes.
A non-finite loss raises ``RunFailed(reason, step)`` on every rank; the last
good checkpoint is left as it was.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from qbench.codebook import host_code_stats
from qbench.engine import distributed, preemption
from qbench.engine.data import to_model_input, train_batches
from qbench.engine.losses import PerceptualLoss, reconstruction_loss
from qbench.errors import RunFailed
from qbench.platform.progress import progress_bar
from qbench.recipe.config import Recipe
from qbench.rundir import checkpoint
from qbench.rundir.directory import RunDirectory


@dataclass
class TrainResult:
    steps: int
    wall_time_s: float
    final_loss: float
    device: str
    world_size: int
    log: list[dict[str, Any]] = field(default_factory=list)
    eval_model: nn.Module | None = None  # EMA weights when kept (and asked for), else the model
    model: nn.Module | None = None  # the trained (non-EMA) model
    peak_gpu_memory_gib: float | None = None  # this process's peak allocation while training, on a GPU

    def info(self) -> dict[str, Any]:
        info = {"steps": self.steps, "wall_time_s": round(self.wall_time_s, 2), "final_loss": self.final_loss,
                "device": self.device, "world_size": self.world_size}
        if self.peak_gpu_memory_gib is not None:
            info["peak_gpu_memory_gib"] = round(self.peak_gpu_memory_gib, 3)
        return info


def learning_rate(recipe: Recipe, step: int) -> float:
    """LR at (0-based) ``step``: linear warm-up, then constant, or cosine or linear decay to ``min_lr_ratio``."""
    o = recipe.optim
    if o.warmup_steps > 0 and step < o.warmup_steps:
        return o.lr * (step + 1) / o.warmup_steps
    if o.schedule == "cosine":
        span = max(1, recipe.train.steps - o.warmup_steps)
        progress = min(1.0, (step - o.warmup_steps) / span)
        return o.lr * (o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))
    if o.schedule == "linear":
        span = max(1, recipe.train.steps - o.warmup_steps)
        progress = min(1.0, (step - o.warmup_steps) / span)
        return o.lr * (o.min_lr_ratio + (1 - o.min_lr_ratio) * (1 - progress))
    return o.lr


def _autocast(device: torch.device, recipe: Recipe):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=recipe.train.precision == "bf16")


def _progress_bar(total: int, initial: int, enabled: bool):
    if not enabled:
        return None

    return progress_bar(total=total, initial=initial, unit="step", desc="train")


def _batch_stats(quantizer, out) -> dict[str, float]:
    """The batch's usage and perplexity, computed here from its codes: a plugin's own ``stats``
    entries of those names are ignored (they may be fractions, or absent)."""
    stats = host_code_stats(quantizer, getattr(out, "codes", None))
    return {k: stats[k] for k in ("usage", "perplexity") if k in stats}


class _Trainer:
    """State of one run's training; ``fit`` below is the public entry point."""

    def __init__(self, tokenizer: nn.Module, recipe: Recipe, device: torch.device):
        self.recipe, self.device = recipe, device
        self.world, self.rank = distributed.world_size(), distributed.rank()
        memory_format = torch.channels_last if recipe.train.channels_last else torch.contiguous_format
        self.model = tokenizer.to(device=device, memory_format=memory_format)
        o, loss = recipe.optim, recipe.loss
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=o.lr, betas=tuple(o.betas), eps=o.eps,
                                           weight_decay=o.weight_decay)
        self.ema = None
        if o.ema_decay > 0:
            # deferred: loads timm only when this runs
            from timm.utils import ModelEmaV3

            self.ema = ModelEmaV3(self.model, decay=o.ema_decay)
        self.perceptual = PerceptualLoss(loss.lpips_net).to(device) if loss.lpips_weight > 0 else None
        self.disc = self.d_optimizer = None
        if loss.adversarial_weight > 0:
            # deferred: loads torch only when this runs
            from qbench.engine.discriminators import build_discriminator

            self.disc = build_discriminator(loss.discriminator, image_size=recipe.data.image_size).to(device)
            self.d_optimizer = torch.optim.AdamW([p for p in self.disc.parameters() if p.requires_grad],
                                                 lr=o.disc_lr or o.lr, betas=tuple(o.disc_betas), eps=o.eps,
                                                 weight_decay=o.weight_decay)
        self.forward_model: nn.Module = self.model
        self.forward_disc = self.disc
        if self.world > 1:
            # deferred: loads torch only when this runs
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [device.index] if device.type == "cuda" else None
            self.forward_model = DDP(self.model, device_ids=ids)
            if self.disc is not None:
                self.forward_disc = DDP(self.disc, device_ids=ids)
        self.step, self.wall_time, self.log = 0, 0.0, []
        self.preempt = (False, False)  # (checkpoint, stop) asked by a signal on some rank (qbench.engine.preemption)

    # -- checkpoints ---------------------------------------------------------------
    def state(self, identity: dict[str, Any]) -> dict[str, Any]:
        return {
            **identity,
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "ema": self.ema.module.state_dict() if self.ema is not None else None,
            "discriminator": self.disc.state_dict() if self.disc is not None else None,
            "d_optimizer": self.d_optimizer.state_dict() if self.d_optimizer is not None else None,
            "rng": checkpoint.rng_state(self.device),
            "wall_time_s": self.wall_time,
            "log": self.log,
            "world_size": self.world,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.module.load_state_dict(state["ema"])
        if self.disc is not None and state.get("discriminator") is not None:
            self.disc.load_state_dict(state["discriminator"])
            self.d_optimizer.load_state_dict(state["d_optimizer"])
        checkpoint.set_rng_state(state["rng"], self.device)
        self.step, self.wall_time = int(state["step"]), float(state.get("wall_time_s", 0.0))
        self.log = [dict(row) for row in state.get("log", [])]

    # -- one step ------------------------------------------------------------------
    def train_step(self, batch: torch.Tensor) -> dict[str, float]:
        recipe, loss_cfg = self.recipe, self.recipe.loss
        lr = learning_rate(recipe, self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        x = to_model_input(batch, self.device, recipe.train.channels_last)
        adversarial = self.disc is not None and self.step >= loss_cfg.disc_start
        with _autocast(self.device, recipe):
            x_hat, out = self.forward_model(x)
            terms = {"rec": reconstruction_loss(loss_cfg.reconstruction, x_hat, x), "quant": out.loss.float()}
            total = loss_cfg.reconstruction_weight * terms["rec"] + loss_cfg.quantizer_weight * terms["quant"]
            if self.perceptual is not None:
                terms["lpips"] = self.perceptual(x_hat, x)
                total = total + loss_cfg.lpips_weight * terms["lpips"]
            if adversarial:
                # deferred: loads torch only when this runs
                from qbench.engine.diffaug import diff_augment
                from qbench.engine.discriminators import non_saturating_g_loss

                # the unwrapped discriminator: its weights are not updated here, so no DDP sync is needed
                self.disc.requires_grad_(False)
                terms["g_adv"] = non_saturating_g_loss(self.disc(diff_augment(x_hat, loss_cfg.diffaug)).float())
                total = total + loss_cfg.adversarial_weight * terms["g_adv"]
        # one all-reduce for both: a non-finite loss on any rank, and a preemption signal on any rank
        checkpoint_asked, stop_asked = preemption.requests()
        flags = distributed.any_rank_each(torch.tensor([float(not bool(torch.isfinite(total.detach()))),
                                                        float(checkpoint_asked), float(stop_asked)]))
        self.preempt = (bool(flags[1] > 0), bool(flags[2] > 0))
        if flags[0] > 0:
            raise RunFailed(f"non-finite loss ({float(total.detach())}); terms " + ", ".join(
                f"{k}={float(v.detach()):.4g}" for k, v in terms.items()), self.step + 1)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        grad_norm = float("nan")
        if recipe.optim.grad_clip > 0:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), recipe.optim.grad_clip))
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update(self.model, step=self.step)
        if adversarial:
            terms["d_loss"] = self.discriminator_step(x, x_hat.detach(), lr)
        self.step += 1
        row = {"loss": float(total.detach()), **{k: float(v.detach() if torch.is_tensor(v) else v) for k, v in terms.items()}, "lr": lr, "grad_norm": grad_norm}
        row.update(_batch_stats(getattr(self.model, "quantizer", None), out))
        return row

    def eval_model(self) -> nn.Module:
        """What evaluation scores: the EMA weights when kept and asked for, else the model."""
        return self.ema.module if (self.ema is not None and self.recipe.eval.use_ema) else self.model

    def show(self, on_image: Callable[[int, nn.Module], None]) -> None:
        """Hand the evaluation model, in eval mode, to ``on_image`` without disturbing training.

        The RNG state is restored afterwards, so a run that logs images ends
        with the weights of one that does not.
        """
        model = self.eval_model()
        was_training = model.training
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            model.eval()
            try:
                on_image(self.step, model)
            finally:
                model.train(was_training)

    def held_out(self, measure: Callable[[nn.Module], dict[str, float]]) -> dict[str, float]:
        """``measure`` of the evaluation model, in eval mode, on every rank; training is not disturbed.

        The RNG state is restored afterwards, so a run that measures held-out
        rows ends with the weights of one that does not.
        """
        model = self.eval_model()
        was_training = model.training
        devices = [self.device] if self.device.type == "cuda" else []
        started = time.perf_counter()
        with torch.random.fork_rng(devices=devices):
            model.eval()
            try:
                values = dict(measure(model))
            finally:
                model.train(was_training)
        return {**values, "heldout_seconds": time.perf_counter() - started}

    def discriminator_step(self, x: torch.Tensor, x_hat: torch.Tensor, lr: float) -> float:
        # deferred: loads torch only when this runs
        from qbench.engine.diffaug import diff_augment
        from qbench.engine.discriminators import hinge_d_loss

        self.disc.requires_grad_(True)
        if hasattr(self.disc, "backbone"):
            self.disc.backbone.requires_grad_(False)
        for group in self.d_optimizer.param_groups:
            group["lr"] = self.recipe.optim.disc_lr or lr
        policy = self.recipe.loss.diffaug
        with _autocast(self.device, self.recipe):
            real = self.forward_disc(diff_augment(x, policy)).float()
            fake = self.forward_disc(diff_augment(x_hat, policy)).float()
            d_loss = hinge_d_loss(real, fake)
        self.d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        if self.recipe.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.disc.parameters(), self.recipe.optim.grad_clip)
        self.d_optimizer.step()
        return float(d_loss.detach())


def fit(
    tokenizer: nn.Module,
    recipe: Recipe,
    train_dataset,
    *,
    identity: dict[str, Any],
    run_dir: str | Path | None = None,
    resume_state: dict[str, Any] | None = None,
    progress: bool = True,
    on_log: Callable[[list[dict[str, Any]]], None] | None = None,
    on_image: Callable[[int, nn.Module], None] | None = None,
    held_out: Callable[[nn.Module], dict[str, float]] | None = None,
    device: torch.device | None = None,
    stop_after: int | None = None,
) -> TrainResult:
    """Train ``tokenizer`` for ``recipe.train.steps`` steps (continuing ``resume_state``).

    ``identity`` (recipe dict, quantizer, options, config hash) is stored in
    every checkpoint.  ``on_log(rows)`` is called on rank 0 at each log step
    with all rows so far; ``on_image(step, model)`` every ``train.image_every``
    steps and at the last step, with the model evaluation would score (rank
    0 only; nothing collective may happen in it).  ``held_out(model)`` every
    ``eval.every`` steps and at the last step, on every rank (it may be
    collective), returns scalars that become a log row of their own.  ``stop_after`` ends the loop early after that many
    steps of this call, writing a checkpoint first (simulates an interruption).
    Raises ``RunFailed`` on a non-finite loss.
    """
    device = device or distributed.local_device(recipe.train.device)
    distributed.init(device)
    if recipe.train.threads > 0:
        torch.set_num_threads(recipe.train.threads)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    trainer = _Trainer(tokenizer, recipe, device)
    directory = run_dir if run_dir is None or isinstance(run_dir, RunDirectory) else RunDirectory(run_dir)
    if resume_state is not None:
        trainer.restore(resume_state)
    main = distributed.is_main_process()
    total_steps = recipe.train.steps
    end = total_steps if stop_after is None else min(total_steps, trainer.step + stop_after)
    batches = train_batches(train_dataset, recipe.data.batch_size, seed=recipe.seed, start_step=trainer.step,
                            rank=trainer.rank, world_size=trainer.world, num_workers=recipe.data.num_workers)
    bar = _progress_bar(total_steps, trainer.step, progress and main)
    trainer.model.train()
    last, window_start, window_steps = {}, time.perf_counter(), 0

    def save() -> None:
        if main and run_dir is not None:
            directory.save_checkpoint(trainer.state(identity))
        distributed.barrier()

    try:
        with preemption.listening():
            while trainer.step < end:
                t0 = time.perf_counter()
                last = trainer.train_step(next(batches))
                trainer.wall_time += time.perf_counter() - t0
                window_steps += 1
                if bar is not None:
                    bar.set_postfix(loss=f"{last['loss']:.4f}", usage=f"{last.get('usage', float('nan')):.1f}%", refresh=False)
                    bar.update(1)
                if trainer.step % max(1, recipe.train.log_every) == 0 or trainer.step == total_steps:
                    elapsed = time.perf_counter() - window_start
                    row = {"step": trainer.step, **last, "steps_per_s": window_steps / max(elapsed, 1e-9)}
                    row["loss"] = distributed.all_reduce_mean(row["loss"], device)
                    trainer.log.append(row)
                    window_start, window_steps = time.perf_counter(), 0
                    if main and on_log is not None:
                        on_log(trainer.log)
                eval_every = recipe.eval.every
                if held_out is not None and eval_every > 0 and (
                        trainer.step % eval_every == 0 or trainer.step == total_steps):
                    trainer.log.append({"step": trainer.step, **trainer.held_out(held_out)})
                    if main and on_log is not None:
                        on_log(trainer.log)
                image_every = recipe.train.image_every
                if main and on_image is not None and image_every > 0 and (
                        trainer.step % image_every == 0 or trainer.step == total_steps):
                    trainer.show(on_image)
                every = recipe.train.checkpoint_every
                checkpoint_asked, stop_asked = trainer.preempt
                if checkpoint_asked:  # the cluster takes the job back: keep what was done
                    save()
                    preemption.served(stop_asked)
                    if main:
                        print(f"preemption signal: checkpoint written at step {trainer.step}; " + (
                            "stopping, the job is to be requeued" if stop_asked else
                            "training goes on until the job is ended"), file=sys.stderr, flush=True)
                    if stop_asked:
                        raise preemption.Preempted(trainer.step)
                elif every > 0 and trainer.step % every == 0 and trainer.step < end:
                    save()
        save()
    finally:
        if bar is not None:
            bar.close()
    eval_model = trainer.eval_model()
    eval_model.eval()
    if last:  # the global batch's loss, as log.csv shows it, not this rank's share of the batch
        final_loss = distributed.all_reduce_mean(last["loss"], device)
    else:  # a resumed run with no step left ends with the loss it logged last, not with "no loss"
        final_loss = next((row["loss"] for row in reversed(trainer.log) if "loss" in row), float("nan"))
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return TrainResult(steps=trainer.step, wall_time_s=trainer.wall_time, final_loss=float(final_loss),
                       device=str(device), world_size=trainer.world, log=trainer.log, eval_model=eval_model,
                       model=trainer.model, peak_gpu_memory_gib=peak)
