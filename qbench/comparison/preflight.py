"""The one validation pass before training: every user error, each on its own line.

A command that trains for hours must not find a bad metric name, a missing
weights file or an unwritable output folder after the first quantizer has
trained.  ``check_run`` looks at everything a ``qbench run`` (or a resume)
will use, before any run directory exists and before the first step:

- the quantizer names (unknown, or the same name twice);
- the recipe's values and ranges (``qbench.recipe.checks``), seed included;
- every quantizer's options, the backbone's and the dataset's
  (``qbench.recipe.identity.resolve``);
- the metric names, the ``[metrics.NAME]`` options (names and values
  checked against the factory, like a quantizer's), whether each metric
  takes the evaluation crop size (``Metric.check_image_size``: LPIPS'
  backbones, SSIM's window), and whether each metric
  can be built here: a metric
  that cannot be built because of a user error (a corrupt weights file) is a
  problem always, one that is merely unavailable (no weights) only under
  ``--strict-metrics``;
- the pretrained weights the losses need (always: training cannot do without),
  and the LPIPS loss' smallest image size;
- the loggers (unknown names, missing packages, bad options);
- the device (``train.device=cuda`` on a machine without a usable GPU);
- the output folder (not a file, writable);
- the datasets: the training split, the evaluation split (``eval.split``)
  and, when the run measures held-out rows or shows reconstructions, the
  held-out split (``eval.heldout_split``), each existing and non-empty; one
  evaluation image through every tokenizer (impossible shapes fail here, not at step 1);
- on resume, that the checkpoint's tensors fit the model they are loaded into.

Problems are collected, not raised one by one: the ``ConfigError`` holds one
line per problem, and the CLI prints each as ``qbench: error: ...``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qbench.comparison.tracking import check_loggers
from qbench.errors import ConfigError, MetricUnavailable, PluginError, one_line
from qbench.platform.plugins import Registries
from qbench.platform.registry import load_factory
from qbench.recipe import checks as recipe_checks
from qbench.recipe.identity import RunIdentity, resolve
from qbench.rundir.directory import recipe_folder


class Problems:
    """User errors found so far, one line each, in the order found, without repeats."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, message: str) -> None:
        for line in str(message).splitlines():
            if line.strip() and line not in self.lines:
                self.lines.append(line)

    def check(self, function, *args, **kwargs) -> Any:
        """``function(*args, **kwargs)``, or ``None`` with its ``ConfigError`` recorded."""
        try:
            return function(*args, **kwargs)
        except ConfigError as exc:
            self.add(str(exc))
            return None

    def __bool__(self) -> bool:
        return bool(self.lines)

    def raise_if_any(self) -> None:
        if self.lines:
            raise ConfigError("\n".join(self.lines))


@dataclass
class CheckedRun:
    """What the validation pass built and found sound: run identities and the datasets.

    ``eval_set`` is ``eval.split`` (the final metrics); ``heldout_set`` is
    ``eval.heldout_split`` (what is looked at: held-out rows, reconstruction
    images), or ``None`` when the recipe asks for neither.
    """

    identities: list
    train_set: Any
    eval_set: Any
    heldout_set: Any = None


def name_list_problems(names: list[str]) -> list[str]:
    """An empty ``--quantizers`` list, or a name in it twice (imports nothing heavy)."""
    if not names:
        return ["--quantizers needs at least one name, e.g. --quantizers gsq,vq"]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        return [f"--quantizers names {', '.join(repeated)} more than once; each quantizer runs once per command "
                "(more seeds: run again with --seed N)"]
    return []


def quantizer_name_problems(names: list[str], regs: Registries) -> list[str]:
    """``name_list_problems`` plus every name no plugin registers."""
    found = name_list_problems(names)
    for name in dict.fromkeys(names):
        try:
            regs.quantizers.get(name)
        except ConfigError as exc:
            found.append(str(exc))
    return found


def check_device(recipe) -> None:
    """``ConfigError`` when the recipe asks for a GPU this machine does not have."""
    # deferred: loads torch only when this runs
    import torch

    wanted = recipe.train.device
    cuda = torch.cuda.is_available()
    if wanted == "cuda" and not cuda:
        raise ConfigError("train.device=cuda, but torch sees no CUDA GPU here (torch.cuda.is_available() is false); "
                          "use train.device=auto or cpu")
    if wanted in ("cuda", "auto") and cuda:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK {local_rank} needs GPU {local_rank}, but only "
                              f"{torch.cuda.device_count()} are visible; start fewer processes per node")
        # the capability query creates no CUDA context (is_bf16_supported may, on GPU 0, on every rank)
        major, minor = torch.cuda.get_device_capability(local_rank)
        if recipe.train.precision == "bf16" and major < 8:
            raise ConfigError(f"train.precision=bf16 needs a GPU of compute capability 8.0 or newer (Ampere); "
                              f"GPU {local_rank} is {major}.{minor}: use train.precision=fp32")


def check_writable_folder(folder: str | os.PathLike, what: str) -> Path:
    """``ConfigError`` unless ``folder`` is (or can become) a folder this process can write in.

    Tries a real write in the nearest existing folder: permission bits do not
    tell the whole story (root, read-only mounts, ACLs).
    """
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "" if existing == folder else f": {existing}"
        raise ConfigError(f"{what} {folder}{where} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".qbench-write-check-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"{what} {folder}: cannot write in {existing} ({exc.strerror or exc})") from None
    return folder


def metric_option_problems(tables: dict[str, dict[str, Any]], regs: Registries) -> list[str]:
    """Every ``[metrics.NAME]`` table: a known metric, option names and values its factory accepts."""
    found = []
    for name, options in tables.items():
        try:
            regs.metrics.options(name, **options)
        except ConfigError as exc:
            found.append(str(exc) if name not in regs.metrics else f"metrics.{name}: {exc}")
    return found


def light_problems(recipe, regs: Registries, out_root: str | os.PathLike | None) -> list[str]:
    """The problems found without importing torch: unknown metric names (``eval.metrics`` and
    ``[metrics.NAME]``) and an output folder that cannot be used.  ``check_run`` finds them too."""
    problems = Problems()
    for name in dict.fromkeys([*recipe.eval.metrics, *recipe.metrics]):
        problems.check(regs.metrics.get, name)
    if out_root is not None:
        problems.check(check_out_root, out_root, recipe)
    return problems.lines


def check_out_root(out_root: str | os.PathLike, recipe, what: str = "--out") -> None:
    """``ConfigError`` unless new run folders can go under ``out_root``/RECIPE; ``what`` names the setting."""
    check_writable_folder(out_root, what)
    inside = recipe_folder(out_root, recipe.name)
    if inside.exists() and not inside.is_dir():
        raise ConfigError(f"{what} {out_root}: {inside} is a file, not a folder")


def metric_problems(names: list[str], regs: Registries, strict: bool, options: dict[str, dict[str, Any]] | None = None) -> list[str]:
    """Unknown metric names, bad ``[metrics.NAME]`` options, and metrics that cannot be built here
    (see the module docstring)."""
    options = options or {}
    found = metric_option_problems(options, regs)
    for name in dict.fromkeys(names):
        try:
            regs.metrics.get(name)
        except ConfigError as exc:
            found.append(str(exc))
            continue
        if any(line.startswith(f"metrics.{name}:") for line in found):
            continue
        try:
            regs.metrics.create(name, **options.get(name, {}))
        except ConfigError as exc:
            found.append(about(name, str(exc)))
        except MetricUnavailable as exc:
            if strict:
                found.append(f"--strict-metrics: {about(name, str(exc))}")
        except Exception as exc:  # would be recorded as failed after training; strict refuses now
            if strict:
                found.append(f"--strict-metrics: {about(name, f'cannot be built: {one_line(exc)}')}")
    return found


def metric_size_problems(names: list[str], regs: Registries, options: dict[str, dict[str, Any]],
                         height: int, width: int) -> list[str]:
    """One line per metric that cannot score ``height`` x ``width`` images (``Metric.check_image_size``).

    Asked of the factory with the metric's options, without building it, so a
    size problem is said even where the metric's weights are missing.
    Unknown names and bad options are ``metric_problems``' to report.
    """
    found = []
    for name in dict.fromkeys(names):
        if name not in regs.metrics:
            continue
        try:
            given = regs.metrics.options(name, **(options.get(name) or {}))
            check = getattr(load_factory(regs.metrics.get(name)), "check_image_size", None)
        except (ConfigError, PluginError):
            continue
        if not callable(check):
            continue
        try:
            check(height, width, **given)
        except ConfigError as exc:
            found.append(about(name, str(exc)))
        except Exception as exc:  # a plugin's broken check must not pass for a size it accepts
            found.append(about(name, f"check_image_size({height}, {width}) raised {one_line(exc)}"))
    return found


def about(name: str, message: str) -> str:
    """``message`` as one line that starts with ``name`` (plugins' messages may or may not name themselves)."""
    text = "; ".join(line.strip() for line in str(message).splitlines() if line.strip())
    named = text.startswith((f"{name}:", f"{name} ", f"{name!r}")) or f" {name!r}" in text.split(":")[0]
    return text if named else f"{name}: {text}"



def _probe_image(eval_set):
    """The first validation image as a model input of batch 1."""
    # deferred: loads torch only when this runs
    import torch

    item = eval_set[0]
    image = item[0] if isinstance(item, (tuple, list)) else item
    if not (torch.is_tensor(image) and image.dtype == torch.uint8 and image.dim() == 3 and image.shape[0] == 3):
        got = f"{image.dtype} {tuple(image.shape)}" if torch.is_tensor(image) else type(image).__name__
        raise ConfigError(f"dataset items must be uint8 (3, H, W) tensors, got {got}")
    return image.unsqueeze(0).float().div(127.5).sub(1.0)


def check_tokenizer(identity, regs: Registries, image) -> None:
    """Build ``identity``'s tokenizer and pass one image through it (shapes, option combinations)."""
    # deferred: loads torch only when this runs
    import torch

    from qbench.engine.model import build_tokenizer

    name = identity.quantizer
    try:
        tokenizer = build_tokenizer(identity, regs=regs)  # the factories' own checks raise ConfigError
    except ConfigError as exc:
        raise ConfigError(about(name, str(exc))) from None
    try:
        with torch.no_grad():
            tokenizer.eval()(image)
    except ConfigError:
        raise
    except Exception as exc:
        shape = "x".join(str(s) for s in image.shape[-2:])
        raise ConfigError(f"{identity.quantizer} with options {identity.options}: the tokenizer fails on one "
                          f"{shape} image: {one_line(exc)}") from None


def check_checkpoint_fits(state: dict[str, Any], identity, regs: Registries, run_dir) -> None:
    """The checkpoint's model (and EMA) tensors load into the model its identity builds."""
    # deferred: loads torch only when this runs
    from qbench.engine.model import build_tokenizer
    from qbench.rundir.checkpoint import mismatch

    tokenizer = build_tokenizer(identity, regs=regs)
    for key in ("model", "ema"):
        weights = state.get(key)
        if weights is None:
            continue
        try:
            tokenizer.load_state_dict(weights)
        except Exception as exc:
            raise ConfigError(f"checkpoint in {run_dir} does not fit its own config ({key} weights): "
                              f"{mismatch(exc)}") from None


def _evaluation_size_problem(eval_set, recipe, ranks: int, split: str | None = None, what: str = "evaluation") -> str:
    if recipe.eval.max_images < 0:  # already reported as a recipe value
        return ""
    split = recipe.eval.split if split is None else split
    total = len(eval_set) if not recipe.eval.max_images else min(recipe.eval.max_images, len(eval_set))
    if total == 0:
        return f"the {what} split {split!r} is empty"
    if total < ranks:
        return f"the {what} split {split!r} has {total} images, fewer than the {ranks} ranks"
    return ""


def shows_heldout(recipe) -> bool:
    """Whether the run reads the held-out split: ``eval.every`` rows, or reconstruction images (logged
    while training, and ``recon.png``)."""
    return recipe.eval.every > 0 or recipe.eval.grid_images > 0


def _memoised(memo: dict | None, key: Any, function, *args, **kwargs):
    """``function(*args, **kwargs)``, computed once per ``key`` when a ``memo`` is given (exceptions too)."""
    if memo is None:
        return function(*args, **kwargs)
    key = json.dumps([function.__name__, key], sort_keys=True, default=str)
    if key not in memo:
        try:
            memo[key] = (True, function(*args, **kwargs))
        except ConfigError as exc:
            memo[key] = (False, exc)
    ok, value = memo[key]
    if not ok:
        raise value
    return value


def _compared(identity, given, own):
    """The identity, naming the recipe as given where the quantizer's own keys changed it (one table)."""
    if identity is None or own is given or own.hash() == given.hash():
        return identity
    return dataclasses.replace(identity, comparison_hash=given.hash())


def check_run(quantizers: list[str], recipe, regs: Registries, *, strict_metrics: bool = False,
              out_root: str | os.PathLike | None = None, resume_state: dict[str, Any] | None = None,
              run_dir: str | os.PathLike | None = None, memo: dict | None = None,
              device_here: bool = True, world_size: int | None = None) -> CheckedRun:
    """Every problem of a run configuration at once (see the module docstring), or what it builds.

    ``out_root``: the folder new run directories go into; ``run_dir`` and
    ``resume_state``: the run being resumed and its checkpoint.  ``memo``: a
    dict shared by the calls for many runs (a sweep's points), so that the
    same datasets, metrics and device are built and checked once.
    ``device_here=False``: the run will train on another machine (a Slurm
    job), so this machine's GPUs say nothing about it.  ``world_size``: the
    ranks the run will train on (default: this process group's).
    """
    # deferred: loads torch only when this runs
    from qbench.engine.data import build_dataset, check_stream_layout
    from qbench.engine.distributed import env_world_size
    from qbench.engine.losses import check_pretrained

    ranks = env_world_size() if world_size is None else world_size

    problems = Problems()
    for line in quantizer_name_problems(list(quantizers), regs):
        problems.add(line)
    for line in recipe_checks.problems(recipe):
        problems.add(line)
    known = [n for n in dict.fromkeys(quantizers) if n in regs.quantizers]
    # each quantizer's own recipe: the recipe with its optim.* / model.latent_dim keys (qbench.recipe.per_quantizer)
    own = {name: (problems.check(recipe.for_quantizer, name) if not problems else None) or recipe for name in known}
    options = {name: problems.check(regs.quantizers.effective_options, name, **own[name].quantizer_options(name))
               for name in known}
    # options that shadow the recipe's own arguments are reported above; building with them cannot work
    backbone_ok = "latent_dim" not in recipe.model.options and all(problems.check(
        regs.backbones.effective_options, recipe.model.backbone, latent_dim=width,
        **recipe.model.options) is not None for width in
        dict.fromkeys([recipe.model.latent_dim, *(r.model.latent_dim for r in own.values())]))
    data_ok = not set(recipe_checks.DATASET_ARGUMENTS) & set(recipe.data.options)
    problems.check(regs.datasets.get, recipe.data.dataset)
    for line in _memoised(memo, [recipe.eval.metrics, recipe.metrics, strict_metrics], metric_problems,
                          list(recipe.eval.metrics), regs, strict_metrics, recipe.metrics):
        problems.add(line)
    problems.check(_memoised, memo, [recipe.loss, recipe.data.image_size], check_pretrained, recipe)
    problems.check(check_loggers, recipe, regs)
    if device_here:
        problems.check(_memoised, memo, [recipe.train.device, recipe.train.precision], check_device, recipe)
    problems.add(recipe_checks.batch_problem(recipe.data.batch_size, ranks))
    if resume_state is not None and int(resume_state.get("world_size", 1)) != ranks:
        problems.add(f"the checkpoint was written by {resume_state.get('world_size', 1)} rank(s) and this "
                     f"process group has {ranks}; resume with the same world size (the same "
                     "samples, but sums over ranks round differently)")
    if out_root is not None:
        problems.check(check_out_root, out_root, recipe)
    if run_dir is not None:
        problems.check(check_writable_folder, run_dir, "run folder")

    data_key = [recipe.data, recipe.seed]
    train_set = problems.check(_memoised, memo, [data_key, "train"], build_dataset, recipe, "train",
                               regs=regs) if data_ok else None
    eval_set = problems.check(_memoised, memo, [data_key, recipe.eval.split], build_dataset, recipe,
                              recipe.eval.split, regs=regs) if data_ok else None
    if train_set is not None and not recipe_checks.batch_problem(recipe.data.batch_size, ranks):
        problems.check(check_stream_layout, train_set, recipe.data.batch_size, ranks, recipe.data.num_workers)
    heldout_split, heldout_set = recipe.eval.heldout_split, None
    if heldout_split == recipe.eval.split:
        heldout_set = eval_set
    elif data_ok and shows_heldout(recipe) and heldout_split.strip() and heldout_split != recipe_checks.TEST_SPLIT:
        heldout_set = problems.check(_memoised, memo, [data_key, heldout_split], build_dataset, recipe,
                                     heldout_split, regs=regs)
        if heldout_set is not None:
            problems.add(_evaluation_size_problem(heldout_set, recipe, ranks, heldout_split, "held-out"))
    image = None
    if eval_set is not None:
        problems.add(_evaluation_size_problem(eval_set, recipe, ranks))
        image = problems.check(_probe_image, eval_set)
    if image is not None:
        height, width = (int(s) for s in image.shape[-2:])
        for line in _memoised(memo, [recipe.eval.metrics, recipe.metrics, height, width], metric_size_problems,
                              list(recipe.eval.metrics), regs, recipe.metrics, height, width):
            problems.add(line)
    if image is not None and backbone_ok:
        for name, effective in options.items():  # shapes and option combinations, even beside other problems
            if effective is not None:
                problems.check(check_tokenizer, RunIdentity(own[name], name, effective), regs, image)
    identities = [] if problems else [_compared(problems.check(resolve, own[name], name, regs), recipe, own[name])
                                      for name in known]
    if resume_state is not None and not problems:
        problems.check(check_checkpoint_fits, resume_state, identities[0], regs, run_dir)
    problems.raise_if_any()
    return CheckedRun(identities, train_set, eval_set, heldout_set if shows_heldout(recipe) else None)
