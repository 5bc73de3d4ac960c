"""``qbench run``: train and score each quantizer under one recipe.

Every quantizer gets the same recipe; only ``dim`` and its own options differ.
User errors (unknown names, bad options, missing data, weights required by
``--strict-metrics``, an unusable device or output folder) are found by one
validation pass, all at once, before any run directory exists.  A run that
fails (NaN loss, a plugin raising) is recorded as failed and the next one
still runs.

The pieces, each in its own module:
  qbench.comparison.preflight.check_run  the one validation pass before training
  qbench.recipe.identity.resolve         what identifies a run (effective options, plugin versions, hashes)
  qbench.engine.model.build_tokenizer    backbone + quantizer from the registries
  qbench.engine.train.fit                the one training loop (checkpoints, resume, DDP)
  qbench.engine.evaluate.evaluate        streaming metrics on eval.split (held-out rows on eval.heldout_split)
  qbench.rundir.directory.RunDirectory   the run directory (config, metrics, log, grid, checkpoint)

The registries are built once, by the caller or here, and the identity of
each run is computed once, before training, and passed down.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qbench.comparison import tracking
from qbench.comparison.preflight import check_run, name_list_problems
from qbench.comparison.tracking import with_loggers
from qbench.errors import ConfigError, ResumeRefused, RunFailed
from qbench.logger import RunInfo
from qbench.platform.plugins import Registries, given_or_built
from qbench.recipe.config import Recipe
from qbench.recipe.identity import resolve
from qbench.rundir import directory as results


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
    note: str = ""  # said to the user beside the status, e.g. that a resumed run had already finished


def parse_quantizers(text: str) -> list[str]:
    """``"gsq,vq"`` -> ``["gsq", "vq"]``; no name, or a name twice, is a ``ConfigError``."""

    names = [n.strip() for n in text.split(",") if n.strip()]
    problems = name_list_problems(names)
    if problems:
        raise ConfigError("\n".join(problems))
    return names


def recon_samples(model, dataset, count: int, device="cpu"):
    """uint8 originals and reconstructions of ``count`` items spread over a split (the held-out one).

    Evenly spaced indices, so that the grid shows every photo of a split
    that is ordered photo by photo, and every quantizer shows the same items.
    """
    # deferred: loads torch only when this runs
    import torch

    from qbench.engine.evaluate import to_uint8

    picks = torch.linspace(0, len(dataset) - 1, min(count, len(dataset))).round().long().unique()
    items = [dataset[int(i)] for i in picks]
    originals = torch.stack([i if isinstance(i, torch.Tensor) else i[0] for i in items])
    with torch.no_grad():
        x_hat, _ = model(originals.to(device).float().div(127.5).sub(1.0))
    return originals.numpy(), to_uint8(x_hat.float().cpu()).numpy()


HELD_OUT_METRICS = ("psnr", "ssim", "usage")  # cheap, and all a validation curve needs


def heldout_subset(dataset, count: int, max_images: int = 0):
    """A fixed subset of ``count`` images of the held-out split (of its first ``max_images``, 0: all, as
    the final evaluation takes them), evenly spaced so that every photo is in it."""
    # deferred: loads torch only when this runs
    import torch

    total = min(len(dataset), max_images) if max_images else len(dataset)
    picks = torch.linspace(0, total - 1, min(count, total)).round().long().unique().tolist()
    return torch.utils.data.Subset(dataset, picks)


def recon_grid(model, dataset, count: int, device="cpu"):
    """The picture ``recon.png`` holds, as a uint8 (H, W, 3) array (what the loggers are sent)."""
    # deferred: loads numpy and PIL only when this runs
    import numpy as np

    from qbench.rundir.grid import recon_grid_image

    return np.asarray(recon_grid_image(*recon_samples(model, dataset, count, device)))


def _run_info(identity, run_dir: Path, resume_state=None):
    recipe = identity.recipe
    return RunInfo(run_dir=Path(run_dir), recipe=recipe.name, quantizer=identity.quantizer,
                   options=dict(identity.options), seed=recipe.seed, recipe_hash=identity.recipe_hash,
                   config_hash=identity.config_hash, hyperparameters=recipe.to_dict(), steps=recipe.train.steps,
                   start_step=int(resume_state["step"]) if resume_state else 0,
                   history=tuple(dict(row) for row in (resume_state or {}).get("log", ())))


def _train_and_score(identity, regs: Registries, train_set, eval_set, run_dir, *, heldout_set=None, resume_state=None,
                     progress=True, sweep=None):
    """One run, watched by the recipe's loggers (on rank 0), which hear how it ended even if it raised."""
    # deferred: loads torch only when this runs
    from qbench.engine import distributed

    run = _run_info(identity, run_dir, resume_state)
    with tracking.open_loggers(identity.recipe, regs, run, enabled=distributed.is_main_process()) as tracker:
        return _train_and_score_with(tracker, identity, regs, train_set, eval_set, run_dir, heldout_set=heldout_set,
                                     resume_state=resume_state, progress=progress, sweep=sweep)


def _train_and_score_with(tracker, identity, regs: Registries, train_set, eval_set, run_dir, *, heldout_set=None,
                          resume_state=None, progress=True, sweep=None):
    """Train, then score on ``eval_set`` (``eval.split``).  What is looked at comes from ``heldout_set``
    (``eval.heldout_split``, never the test split): the held-out rows, the images logged while training
    and ``recon.png``, so nothing anyone sees or selects by reads the final numbers' images."""
    # deferred: loads torch and numpy only when this runs
    import torch

    from qbench.engine import distributed
    from qbench.engine.code_counts import CodeCounts
    from qbench.engine.evaluate import dataset_key_for, evaluate
    from qbench.engine.model import build_tokenizer
    from qbench.engine.train import fit

    main = distributed.is_main_process()
    recipe, name, options = identity.recipe, identity.quantizer, identity.options
    directory = results.RunDirectory(run_dir)
    if main and resume_state is None:
        directory.write_config(identity, sweep, world_size=distributed.world_size())
    torch.manual_seed(recipe.seed)
    tokenizer = build_tokenizer(identity, regs=regs)
    model_info = tokenizer.model_info()
    device = distributed.local_device(recipe.train.device)

    def held_out(model) -> dict[str, float]:
        values = evaluate(model, heldout_subset(heldout_set, recipe.eval.heldout_images, recipe.eval.max_images), HELD_OUT_METRICS,
                          regs=regs, batch_size=recipe.eval.batch_size, device=str(device),
                          dataset_key=dataset_key_for(recipe, recipe.eval.heldout_split), progress=False)
        return {f"heldout_{name}": float(r["value"]) for name, r in values.items() if r["status"] == "ok"}

    def show(step, model):
        tracker.log_images(step, "reconstructions", recon_grid(model, heldout_set, recipe.eval.grid_images, device))

    def finish(status, reason="", failed_step=None, metrics=None, train_info=None):
        record = results.build_record(identity, status=status, reason=reason, failed_step=failed_step,
                                      metrics=metrics or {}, model_info=model_info, train_info=train_info or {},
                                      sweep=sweep, evaluation=evaluation_info(recipe, eval_set))
        if main:
            directory.write_metrics(record)
        tracker.log_metrics(metrics or {})
        tracker.finish(status, reason)
        return RunOutcome(name, options, directory.path, status, reason=reason, metrics=metrics or {}, record=record)

    started = time.perf_counter()
    try:
        trained = fit(tokenizer, recipe, train_set, identity={**identity.to_dict(), "sweep": sweep}, run_dir=directory,
                      resume_state=resume_state, progress=progress, on_log=lambda rows: tracker.log_row(rows[-1]),
                      on_image=show if recipe.eval.grid_images > 0 and heldout_set is not None else None,
                      held_out=held_out if recipe.eval.every > 0 and heldout_set is not None else None, device=device)
    except RunFailed as exc:
        info = {"steps": (exc.step or 1) - 1, "wall_time_s": round(time.perf_counter() - started, 2),
                "final_loss": None, "device": str(device), "world_size": distributed.world_size()}
        return finish("failed", exc.reason, exc.step, train_info=info)
    except (ConfigError, KeyboardInterrupt):
        raise
    except Exception as exc:  # a plugin raising mid-run fails this run only
        if distributed.world_size() > 1 and distributed.is_peer_failure(exc):
            raise  # another rank died: the run is interrupted, not failed, and resumes from its checkpoint
        info = {"steps": 0, "wall_time_s": round(time.perf_counter() - started, 2), "final_loss": None,
                "device": str(device), "world_size": distributed.world_size()}
        return finish("failed", f"{type(exc).__name__}: {exc}", train_info=info)
    model = trained.eval_model
    observers = {"codes": CodeCounts()}
    metrics = evaluate(model, eval_set, recipe.eval.metrics, regs=regs, batch_size=recipe.eval.batch_size,
                       max_images=recipe.eval.max_images, device=str(device), dataset_key=dataset_key_for(recipe),
                       progress=progress, observers=observers,
                       metric_options=recipe.metrics)
    if "codes" in observers:
        tracker.log_histograms(trained.steps, observers["codes"].histograms())
    if main and recipe.eval.grid_images > 0 and heldout_set is not None:
        directory.write_recon_grid(*recon_samples(model, heldout_set, recipe.eval.grid_images, device))
    info = {**trained.info(), **data_notes(train_set, eval_set, heldout_set)}
    return finish("ok", metrics=metrics, train_info=info)


def evaluation_info(recipe, eval_set) -> dict[str, Any]:
    """The run record's ``eval`` block: the split the metrics are scored on and how many images it holds
    (the first ``eval.max_images``, or all), and the split of the held-out rows when there are any."""
    total = len(eval_set) if not recipe.eval.max_images else min(len(eval_set), recipe.eval.max_images)
    info: dict[str, Any] = {"split": recipe.eval.split, "images": int(total)}
    if recipe.eval.every > 0:
        info["heldout_split"] = recipe.eval.heldout_split
    return info


def data_notes(train_set, eval_set, heldout_set=None) -> dict[str, str]:
    """What the datasets had to say (images held out of train/, unreadable images skipped), for the run's
    ``train`` record."""
    notes = {}
    extra = (("heldout_data_note", heldout_set),) if heldout_set is not None and heldout_set is not eval_set else ()
    for key, dataset in (("data_note", train_set), ("eval_data_note", eval_set), *extra):
        report = getattr(dataset, "report", None)
        text = report() if callable(report) else ""
        if text:
            notes[key] = text
    return notes


def _run_in_new_directory(identity, regs: Registries, checked, out_root, *, progress, sweep) -> RunOutcome:
    """Create the run's directory and train there; a run stopped before its first checkpoint leaves none."""
    # deferred: loads torch only when this runs
    from qbench.engine import distributed

    run_dir = None
    if distributed.is_main_process():
        run_dir = results.RunDirectory.create(out_root, identity.recipe.name, identity.quantizer, identity.seed).path
    run_dir = Path(distributed.broadcast_object(str(run_dir) if run_dir else None))
    try:
        return _train_and_score(identity, regs, checked.train_set, checked.eval_set, run_dir,
                                heldout_set=checked.heldout_set, progress=progress, sweep=sweep)
    except BaseException:
        if distributed.is_main_process():
            results.RunDirectory(run_dir).discard_if_unused()
        raise


def run_comparison(
    quantizers: list[str],
    recipe: Recipe,
    *,
    seed: int | None = None,
    out_root: str | Path = "results/runs",
    strict_metrics: bool = False,
    progress: bool = True,
    regs: Registries | None = None,
    sweep: dict[str, Any] | None = None,
) -> list[RunOutcome]:
    """Train and score each quantizer under ``recipe``; one run directory each.

    All user errors are found by one validation pass (``qbench.comparison.preflight``) and
    raised together, one line each (``ConfigError``), before any run directory
    exists.  A run that fails is recorded as failed (``metrics.json`` with status, step and
    reason; its last good checkpoint kept) and the next quantizer still runs.
    ``sweep`` (written by ``qbench sweep``) is recorded in every run's config
    and metrics: the sweep's name, file and this point's swept values.
    """
    import dataclasses

    # deferred: loads torch only when this runs
    from qbench.engine import distributed

    regs = given_or_built(regs)
    if seed is not None:
        recipe = dataclasses.replace(recipe, seed=int(seed))
    checked = check_run(quantizers, recipe, regs, strict_metrics=strict_metrics, out_root=out_root)
    distributed.init(distributed.local_device(recipe.train.device))
    return [_run_in_new_directory(identity, regs, checked, out_root, progress=progress, sweep=sweep)
            for identity in checked.identities]


def resume_run(run_dir: str | Path, *, progress: bool = True, regs: Registries | None = None,
               loggers: list[str] | None = None, strict_metrics: bool = False) -> RunOutcome:
    """Continue an interrupted run from its checkpoint, then score it as usual.

    ``loggers`` are added to the checkpoint recipe's ``train.loggers``.  A
    run whose checkpoint is at its last step is not trained again: with a
    good ``metrics.json`` it is left as it is (the outcome's ``note`` says
    so); without one (stopped during evaluation) it is scored.
    """
    import dataclasses

    # deferred: loads torch only when this runs
    from qbench.engine import distributed
    from qbench.rundir import checkpoint

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"--resume {run_dir}: no such run folder")
    state = checkpoint.load(run_dir)
    stored = checkpoint.run_identity(state)
    stored = dataclasses.replace(stored, recipe=with_loggers(stored.recipe, loggers or []))  # not in the hash
    if stored.config_hash != state["config_hash"]:
        raise ConfigError(f"checkpoint in {run_dir} does not match its own config hash (edited or from another version)")
    written, here = int(state.get("world_size", 1)), distributed.env_world_size()
    if written != here:
        raise ResumeRefused(world_size_refusal(run_dir, written, here))
    regs = given_or_built(regs)
    current = resolve(stored.recipe, stored.quantizer, regs)
    if current.config_hash != stored.config_hash:
        raise ConfigError(
            f"cannot resume {run_dir}: its plugins or option defaults changed since it started "
            f"(config hash {stored.config_hash}, now {current.config_hash}); start a new run instead"
        )
    directory = results.RunDirectory(run_dir)
    finished = _finished_outcome(stored, state, directory)
    if finished is not None:
        return finished
    checked = check_run([stored.quantizer], stored.recipe, regs, strict_metrics=strict_metrics, resume_state=state,
                        run_dir=run_dir)
    distributed.init(distributed.local_device(stored.recipe.train.device))
    if distributed.is_main_process():
        directory.remove_stale_temporaries()  # left by a process killed mid-write; this one is the writer now
    sweep = state.get("sweep") or None
    return _train_and_score(stored, regs, checked.train_set, checked.eval_set, run_dir,
                            heldout_set=checked.heldout_set, resume_state=state, progress=progress, sweep=sweep)


def world_size_refusal(run_dir: str | Path, written: int, asked: int) -> str:
    return (f"cannot resume {run_dir}: it was trained on {written} rank(s) and this would continue it on {asked}; "
            f"resume it with {written} rank(s) (the same samples per step, but sums over ranks round "
            "differently), or move the folder away to train afresh")


def _finished_outcome(identity, state, directory) -> RunOutcome | None:
    """The outcome of a run that has nothing left to do (last step reached, good metrics), else ``None``."""
    steps = identity.recipe.train.steps
    if int(state["step"]) < steps:
        return None
    try:
        record = directory.read_metrics()
    except ValueError:
        return None  # trained but never scored: resuming scores it
    if record.get("run", {}).get("status") != "ok":
        return None
    note = (f"already finished ({steps} of {steps} steps, scored); nothing to resume. "
            f"To score it again: qbench eval {directory.path}")
    return RunOutcome(identity.quantizer, identity.options, directory.path, "ok", metrics=record.get("metrics", {}),
                      record=record, note=note)
