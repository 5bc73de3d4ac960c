"""``check_logger``: the logger contract of docs/plugins.md, as assertions.

    from qbench.testing import check_logger
    def test_my_logger(tmp_path):
        check_logger("mytracker", tmp_path, project="test")

Checked, with the calls a run makes (``qbench.logger``'s module docstring):

- the factory returns a ``qbench.Logger``;
- building it with the options touches nothing: no file or folder appears in
  the working directory (it is built before training only to check options);
- ``start``, ``log_scalars``, ``log_images`` (a uint8 (H, W, 3) array),
  ``log_histogram`` (int64 counts), ``log_metrics`` and ``finish("ok")`` all
  run, in that order, for a fresh run;
- a resumed run (``start_step`` > 0 with the kept ``history``) and a failed
  one (``finish("failed", reason)``) run too.

The tracker's own output is the plugin's to test; this kit checks the calls.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from qbench.logger import FAILED, OK, Logger, RunInfo
from qbench.platform.plugins import registries as make_registries


def _run_info(run_dir: Path, start_step: int = 0) -> RunInfo:
    history = tuple({"step": s, "loss": 1.0 / s, "usage": 50.0} for s in range(1, start_step + 1))
    return RunInfo(run_dir=run_dir, recipe="smoke", quantizer="gsq", options={"dim": 8, "codebook_size": 16},
                   seed=0, recipe_hash="0" * 12, config_hash="1" * 12,
                   hyperparameters={"train": {"steps": 4}, "optim": {"lr": 1e-3}}, steps=4,
                   start_step=start_step, history=history)


def _build(name_or_factory, registries, options):
    if isinstance(name_or_factory, str):
        regs = registries or make_registries()
        return regs.loggers.create(name_or_factory, **options)
    return name_or_factory(**options)


def _one_run(logger: Logger, run: RunInfo, status: str) -> None:
    logger.start(run)
    for step in range(run.start_step + 1, run.steps + 1):
        logger.log_scalars(step, {"loss": 1.0 / step, "rec": 0.5 / step, "lr": 1e-3, "usage": 40.0 + step,
                                  "perplexity": 10.0, "steps_per_s": 3.0})
    logger.log_images(run.steps, "reconstructions", np.zeros((8, 16, 3), dtype=np.uint8))
    logger.log_histogram(run.steps, "codes", np.arange(16, dtype=np.int64))
    if status == OK:
        logger.log_metrics({"psnr": 20.0, "usage": 50.0})
        logger.finish(OK)
    else:
        logger.finish(FAILED, "non-finite loss at step 3")


def check_logger(name_or_factory, run_root: str | os.PathLike, *, registries=None, **options) -> None:
    """Assert that a logger honours the qbench contract (see module docstring).

    ``name_or_factory``: a registered logger name (created with ``options``)
    or a factory (a ``Logger`` subclass or function); ``run_root``: an empty
    folder the stand-in runs may write into (pytest's ``tmp_path``).
    """
    root = Path(run_root)
    root.mkdir(parents=True, exist_ok=True)
    quiet = root / "built-here"
    quiet.mkdir()
    before = os.getcwd()
    os.chdir(quiet)
    try:
        logger = _build(name_or_factory, registries, options)
    finally:
        os.chdir(before)
    assert isinstance(logger, Logger), f"the factory must return a qbench.logger.Logger, got {type(logger).__name__}"
    made = sorted(p.name for p in quiet.iterdir())
    assert not made, f"building the logger created {made}: leave files and connections to start()"
    for index, (start_step, status) in enumerate(((0, OK), (2, OK), (0, FAILED))):
        run_dir = root / f"run{index}"
        run_dir.mkdir()
        logger = logger if index == 0 else _build(name_or_factory, registries, options)
        try:
            _one_run(logger, _run_info(run_dir, start_step), status)
        except Exception as exc:  # name the call and the case, not just the exception
            case = ("a fresh run", "a run resumed at step 2", "a failed run")[index]
            raise AssertionError(f"{case}: {type(exc).__name__}: {exc}") from exc
