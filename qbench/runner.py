"""``qbench run``: train and score each quantizer under one recipe.

Every quantizer gets the same recipe; only ``dim`` and its own options differ.
User errors (unknown names, bad options, missing data, weights required by
``--strict-metrics``) are raised before any training starts.  A run that fails
(NaN loss, a plugin raising) is recorded as failed and the next one still runs.

The pieces, each in its own module:
  qbench.identity.resolve        what identifies a run (effective options, plugin versions, hashes)
  qbench.model.build_tokenizer   backbone + quantizer from the registries
  qbench.train.fit               the one training loop (checkpoints, resume, DDP)
  qbench.evaluate.evaluate       streaming metrics on the validation split
  qbench.results.RunDirectory    the run directory (config, metrics, log, grid, checkpoint)

The registries are built once, by the caller or here, and the identity of
each run is computed once, before training, and passed down.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import Recipe
from .errors import ConfigError, RunFailed


@dataclass
class RunOutcome:
    """What one quantizer's run produced (also what the closing table shows)."""

    quantizer: str
    options: dict[str, Any]
    run_dir: Path | None
    status: str  # ok | failed
    reason: str = ""
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)


def parse_quantizers(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ConfigError("--quantizers needs at least one name, e.g. --quantizers gsq,vq")
    return names


def _registries(registries):
    if registries is not None:
        return registries
    from .plugins import registries as build

    return build()


def _validate(quantizers: list[str], recipe: Recipe, regs, strict_metrics: bool):
    """Every user error we can find, before any training: names, options, data, weights, shapes.

    Returns the identities of the runs and the two datasets.
    """
    import torch

    from .data import build_dataset
    from .evaluate import check_metrics
    from .identity import resolve
    from .losses import check_pretrained
    from .model import build_tokenizer
    from .tracking import check_loggers

    identities = [resolve(recipe, name, regs) for name in quantizers]  # names and option values
    check_loggers(recipe, regs)
    train_set = build_dataset(recipe, "train", registries=regs)
    eval_set = build_dataset(recipe, recipe.eval.split, registries=regs)
    check_pretrained(recipe)
    if strict_metrics:
        missing = check_metrics(recipe.eval.metrics, regs)
        if missing:
            raise ConfigError("--strict-metrics: " + "; ".join(f"{k}: {v}" for k, v in missing.items()))
    probe = eval_set[0] if not isinstance(eval_set[0], tuple) else eval_set[0][0]
    x = probe.unsqueeze(0).float().div(127.5).sub(1.0)
    for identity in identities:
        with torch.no_grad():
            tokenizer = build_tokenizer(identity, registries=regs)  # the factory's own checks raise here
            tokenizer.eval()(x)  # impossible shapes (D vs levels, size vs downsample) raise here
    return identities, train_set, eval_set


def recon_samples(model, dataset, count: int, device="cpu"):
    """uint8 originals and reconstructions of ``count`` validation items spread over the split.

    Evenly spaced indices, so that the grid shows every photo of a split
    that is ordered photo by photo, and every quantizer shows the same items.
    """
    import torch

    from .evaluate import to_uint8

    picks = torch.linspace(0, len(dataset) - 1, min(count, len(dataset))).round().long().unique()
    items = [dataset[int(i)] for i in picks]
    originals = torch.stack([i if isinstance(i, torch.Tensor) else i[0] for i in items])
    with torch.no_grad():
        x_hat, _ = model(originals.to(device).float().div(127.5).sub(1.0))
    return originals.numpy(), to_uint8(x_hat.float().cpu()).numpy()


def recon_grid(model, dataset, count: int, device="cpu"):
    """The picture ``recon.png`` holds, as a uint8 (H, W, 3) array (what the loggers are sent)."""
    import numpy as np

    from .plots import recon_grid_image

    return np.asarray(recon_grid_image(*recon_samples(model, dataset, count, device)))


def _run_info(identity, run_dir: Path, resume_state=None):
    from .logger import RunInfo

    recipe = identity.recipe
    return RunInfo(run_dir=Path(run_dir), recipe=recipe.name, quantizer=identity.quantizer,
                   options=dict(identity.options), seed=recipe.seed, recipe_hash=identity.recipe_hash,
                   config_hash=identity.config_hash, hyperparameters=recipe.to_dict(), steps=recipe.train.steps,
                   start_step=int(resume_state["step"]) if resume_state else 0,
                   history=tuple(dict(row) for row in (resume_state or {}).get("log", ())))


def _train_and_score(identity, regs, train_set, eval_set, run_dir, *, resume_state=None, progress=True,
                     sweep=None):
    """One run, watched by the recipe's loggers (on rank 0), which hear how it ended even if it raised."""
    from . import distributed, tracking

    run = _run_info(identity, run_dir, resume_state)
    with tracking.open_loggers(identity.recipe, regs, run, enabled=distributed.is_main_process()) as tracker:
        return _train_and_score_with(tracker, identity, regs, train_set, eval_set, run_dir,
                                     resume_state=resume_state, progress=progress, sweep=sweep)


def _train_and_score_with(tracker, identity, regs, train_set, eval_set, run_dir, *, resume_state=None,
                          progress=True, sweep=None):
    import torch

    from . import distributed, results
    from .code_counts import CodeCounts
    from .evaluate import dataset_key_for, evaluate
    from .model import build_tokenizer
    from .train import fit

    main = distributed.is_main_process()
    recipe, name, options = identity.recipe, identity.quantizer, identity.options
    directory = results.RunDirectory(run_dir)
    if main and resume_state is None:
        directory.write_config(identity, sweep)
    torch.manual_seed(recipe.seed)
    tokenizer = build_tokenizer(identity, registries=regs)
    model_info = tokenizer.model_info()
    device = distributed.local_device(recipe.train.device)

    def show(step, model):
        tracker.log_images(step, "reconstructions", recon_grid(model, eval_set, recipe.eval.grid_images, device))

    def finish(status, reason="", failed_step=None, metrics=None, train_info=None):
        record = results.build_record(identity, status=status, reason=reason, failed_step=failed_step,
                                      metrics=metrics or {}, model_info=model_info, train_info=train_info or {},
                                      sweep=sweep)
        if main:
            directory.write_metrics(record)
        tracker.log_metrics(metrics or {})
        tracker.finish(status, reason)
        return RunOutcome(name, options, directory.path, status, reason=reason, metrics=metrics or {}, record=record)

    started = time.perf_counter()
    try:
        trained = fit(tokenizer, recipe, train_set, identity={**identity.to_dict(), "sweep": sweep}, run_dir=directory,
                      resume_state=resume_state, progress=progress, on_log=lambda rows: tracker.log_row(rows[-1]),
                      on_image=show if recipe.eval.grid_images > 0 else None, device=device)
    except RunFailed as exc:
        info = {"steps": (exc.step or 1) - 1, "wall_time_s": round(time.perf_counter() - started, 2),
                "final_loss": None, "device": str(device), "world_size": distributed.world_size()}
        return finish("failed", exc.reason, exc.step, train_info=info)
    except (ConfigError, KeyboardInterrupt):
        raise
    except Exception as exc:  # a plugin raising mid-run fails this run only
        info = {"steps": 0, "wall_time_s": round(time.perf_counter() - started, 2), "final_loss": None,
                "device": str(device), "world_size": distributed.world_size()}
        return finish("failed", f"{type(exc).__name__}: {exc}", train_info=info)
    model = trained.eval_model
    observers = {"codes": CodeCounts()}
    metrics = evaluate(model, eval_set, recipe.eval.metrics, registries=regs, batch_size=recipe.eval.batch_size,
                       max_images=recipe.eval.max_images, device=str(device), dataset_key=dataset_key_for(recipe),
                       progress=progress, observers=observers)
    if "codes" in observers:
        tracker.log_histograms(trained.steps, observers["codes"].histograms())
    if main and recipe.eval.grid_images > 0:
        directory.write_recon_grid(*recon_samples(model, eval_set, recipe.eval.grid_images, device))
    report = getattr(train_set, "report", None)
    info = trained.info()
    if callable(report) and report():
        info["data_note"] = report()
    return finish("ok", metrics=metrics, train_info=info)


def run_comparison(
    quantizers: list[str],
    recipe: Recipe,
    *,
    seed: int | None = None,
    out_root: str | Path = "results/runs",
    strict_metrics: bool = False,
    progress: bool = True,
    registries=None,
    sweep: dict[str, Any] | None = None,
) -> list[RunOutcome]:
    """Train and score each quantizer under ``recipe``; one run directory each.

    All user errors are raised (``ConfigError``) before the first step.  A run
    that fails is recorded as failed (``metrics.json`` with status, step and
    reason; its last good checkpoint kept) and the next quantizer still runs.
    ``sweep`` (written by ``qbench sweep``) is recorded in every run's config
    and metrics: the sweep's name, file and this point's swept values.
    """
    import dataclasses

    from . import distributed, results

    regs = _registries(registries)
    if seed is not None:
        recipe = dataclasses.replace(recipe, seed=int(seed))
    distributed.init(distributed.local_device(recipe.train.device))
    identities, train_set, eval_set = _validate(quantizers, recipe, regs, strict_metrics)
    outcomes = []
    for identity in identities:
        run_dir = None
        if distributed.is_main_process():
            run_dir = results.RunDirectory.create(out_root, recipe.name, identity.quantizer, recipe.seed).path
        run_dir = Path(distributed.broadcast_object(str(run_dir) if run_dir else None))
        outcomes.append(_train_and_score(identity, regs, train_set, eval_set, run_dir, progress=progress, sweep=sweep))
    return outcomes


def resume_run(run_dir: str | Path, *, progress: bool = True, registries=None,
               loggers: list[str] | None = None) -> RunOutcome:
    """Continue an interrupted run from its checkpoint, then score it as usual.

    ``loggers`` are added to the checkpoint recipe's ``train.loggers``.
    """
    import dataclasses

    from . import checkpoint, distributed
    from .identity import resolve
    from .tracking import with_loggers

    run_dir = Path(run_dir)
    state = checkpoint.load(run_dir)
    stored = checkpoint.run_identity(state)
    stored = dataclasses.replace(stored, recipe=with_loggers(stored.recipe, loggers or []))  # not in the hash
    if stored.config_hash != state["config_hash"]:
        raise ConfigError(f"checkpoint in {run_dir} does not match its own config hash (edited or from another version)")
    regs = _registries(registries)
    current = resolve(stored.recipe, stored.quantizer, regs)
    if current.config_hash != stored.config_hash:
        raise ConfigError(
            f"cannot resume {run_dir}: its plugins or option defaults changed since it started "
            f"(config hash {stored.config_hash}, now {current.config_hash}); start a new run instead"
        )
    distributed.init(distributed.local_device(stored.recipe.train.device))
    _, train_set, eval_set = _validate([stored.quantizer], stored.recipe, regs, strict_metrics=False)
    sweep = state.get("sweep") or None
    return _train_and_score(stored, regs, train_set, eval_set, run_dir, resume_state=state, progress=progress,
                            sweep=sweep)
