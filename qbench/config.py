"""Recipes: typed dataclasses loaded from TOML, with ``--set KEY=VALUE`` overrides.

A recipe fixes everything except the quantizer: data, backbone, optimiser,
losses, steps and evaluation.  Quantizers get the latent ``dim`` plus their
own options from the recipe's ``[quantizers.NAME]`` table.  The resolved
recipe is hashed; a results table only ever mixes runs with one hash.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from .errors import ConfigError, suggest, unknown_name_error

RECIPE_PATH_ENV = "QBENCH_RECIPE_PATH"
# recipe keys that cannot change a result: left out of the recipe hash, so that
# watching a run more closely never splits it from its seeds
UNHASHED = ("train.log_every", "train.checkpoint_every", "train.loggers", "train.image_every", "train.threads",
            "data.num_workers", "eval.grid_images")
DEFAULT_RECIPE = "cpu-default"


@dataclass
class DataConfig:
    dataset: str = "photos"
    root: str = ""
    image_size: int = 32
    batch_size: int = 64
    num_workers: int = 0
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelConfig:
    backbone: str = "conv"
    latent_dim: int = 8
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    lr: float = 4e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.99])
    eps: float = 1e-8
    weight_decay: float = 0.05
    schedule: str = "constant"  # constant | cosine
    warmup_steps: int = 0
    min_lr_ratio: float = 0.1
    grad_clip: float = 2.0
    ema_decay: float = 0.0  # 0 disables the EMA of weights
    disc_lr: float = 0.0  # 0: same as lr
    disc_betas: list[float] = field(default_factory=lambda: [0.9, 0.99])


@dataclass
class LossConfig:
    reconstruction: str = "mse"  # mse | l1
    reconstruction_weight: float = 1.0
    quantizer_weight: float = 1.0
    lpips_weight: float = 0.0
    lpips_net: str = "vgg"
    adversarial_weight: float = 0.0
    discriminator: str = "patchgan"  # patchgan | dino
    disc_start: int = 0
    diffaug: str = "color,translation,cutout"


@dataclass
class TrainConfig:
    steps: int = 1000
    log_every: int = 50
    checkpoint_every: int = 500
    precision: str = "fp32"  # fp32 | bf16
    channels_last: bool = True
    threads: int = 0  # 0: torch's default
    device: str = "auto"  # auto | cpu | cuda


@dataclass
class EvalConfig:
    split: str = "val"
    metrics: list[str] = field(
        default_factory=lambda: ["psnr", "ssim", "lpips", "rfid", "usage", "perplexity", "bits", "throughput"]
    )
    max_images: int = 0  # 0: the whole split
    batch_size: int = 64
    use_ema: bool = True
    grid_images: int = 16


@dataclass
class Recipe:
    name: str = "custom"
    description: str = ""
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    quantizers: dict[str, dict[str, Any]] = field(default_factory=dict)

    def quantizer_options(self, name: str) -> dict[str, Any]:
        """Options the recipe gives quantizer ``name``: ``dim`` plus its own table."""
        return {"dim": self.model.latent_dim, **self.quantizers.get(name, {})}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        """Hash of everything that can change a result: not the quantizer tables, seed, names,
        nor the bookkeeping keys in ``UNHASHED`` (logging, checkpoint cadence, loader workers).

        Runs of different quantizers and seeds under one recipe share it (the
        seed is recorded beside it, and seeds become mean ± CI in reports);
        any change to data, model, optimiser, losses, steps or evaluation
        changes it.
        """
        shared = {k: v for k, v in self.to_dict().items() if k not in ("quantizers", "seed", "name", "description")}
        for dotted in UNHASHED:
            section, _, key = dotted.partition(".")
            shared.get(section, {}).pop(key, None)
        blob = json.dumps(shared, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def _fits(value: Any, hint: Any) -> bool:
    """Whether a parsed TOML value fits a recipe field's annotation (element types included)."""
    origin = getattr(hint, "__origin__", None)
    args = getattr(hint, "__args__", ())
    if hint is Any:
        return True
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is list:
        return isinstance(value, list) and all(_fits(v, args[0]) for v in value) if args else isinstance(value, list)
    if origin is dict:
        return isinstance(value, dict) and all(isinstance(k, str) and _fits(v, args[1]) for k, v in value.items())
    return True


def _describe(hint: Any) -> str:
    origin = getattr(hint, "__origin__", None)
    args = getattr(hint, "__args__", ())
    if origin is list:
        return f"list[{_describe(args[0])}]" if args else "list"
    if origin is dict:
        return "a table" if not args or args[1] is Any else f"a table of {_describe(args[1])}"
    return getattr(hint, "__name__", str(hint))


def _coerce(value: Any, hint: Any, key: str) -> Any:
    origin = getattr(hint, "__origin__", None)
    if origin is list and isinstance(value, str):  # --set eval.metrics=psnr,ssim
        value = [v.strip() for v in value.split(",") if v.strip()]
    if origin is dict and isinstance(value, dict):  # name the entry at fault: quantizers.gsq, not quantizers
        for name, item in value.items():
            if not _fits(item, hint.__args__[1]):
                raise ConfigError(f"{key}.{name} must be {_describe(hint.__args__[1])}, got {item!r}")
    if not _fits(value, hint):
        raise ConfigError(f"{key} must be {_describe(hint)}, got {value!r}")
    try:
        if hint is float:
            return float(value)
        if origin is list and getattr(hint, "__args__", ()) == (float,):
            return [float(v) for v in value]
    except OverflowError:  # an integer with hundreds of digits
        raise ConfigError(f"{key} is too large for a number, got {value!r}") from None
    return value


def _build(cls, table: dict[str, Any], prefix: str, problems: list[str]):
    """``cls`` built from ``table``; every bad key or value is added to ``problems`` (its default kept)."""
    hints = get_type_hints(cls)
    allowed = [f.name for f in fields(cls)]
    kwargs = {}
    for key, value in table.items():
        full = f"{prefix}{key}"
        if key not in allowed:
            problems.append(f"unknown recipe key {full!r}{suggest(key, allowed)}; allowed: {', '.join(allowed)}")
            continue
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                problems.append(f"{full} must be a table, got {value!r}")
                continue
            kwargs[key] = _build(hint, value, f"{full}.", problems)
            continue
        try:
            kwargs[key] = _coerce(value, hint, full)
        except ConfigError as exc:
            problems.append(str(exc))
    return cls(**kwargs)


def recipe_and_problems(table: dict[str, Any]) -> tuple[Recipe, list[str]]:
    """A recipe from plain data and every problem found in it, one line each.

    Bad keys and values are left at their defaults in the returned recipe, so
    a caller can go on looking for problems elsewhere before it reports them.
    """
    if not isinstance(table, dict):
        raise ConfigError(f"a recipe must be a table, got {type(table).__name__}")
    found: list[str] = []
    recipe = _build(Recipe, table, "", found)
    return recipe, list(dict.fromkeys(found + problems(recipe)))


def recipe_from_dict(table: dict[str, Any]) -> Recipe:
    """A recipe from plain data; every problem found is one line of the ``ConfigError``."""
    recipe, found = recipe_and_problems(table)
    if found:
        raise ConfigError("\n".join(found))
    return recipe


MAX_SEED = 2**32 - 1  # numpy's limit; qbench derives per-item seeds from it that must stay within int64


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _betas(name: str, betas: list[float]) -> list[str]:
    if len(betas) != 2:
        return [f"{name} must have two values, got {betas!r}"]
    if not all(_finite(b) and 0.0 <= b < 1.0 for b in betas):
        return [f"{name} must both be in [0, 1), got {betas!r}"]
    return []


def problems(recipe: Recipe) -> list[str]:
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
        (o.schedule in ("constant", "cosine"), "optim.schedule must be constant or cosine"),
        (o.warmup_steps >= 0, f"optim.warmup_steps must be >= 0, got {o.warmup_steps}"),
        (_finite(o.min_lr_ratio) and 0.0 <= o.min_lr_ratio <= 1.0, f"optim.min_lr_ratio must be in [0, 1], got {o.min_lr_ratio}"),
        (_finite(o.grad_clip) and o.grad_clip >= 0, f"optim.grad_clip must be >= 0 (0: off), got {o.grad_clip}"),
        (_finite(o.ema_decay) and 0.0 <= o.ema_decay < 1.0, "optim.ema_decay must be in [0, 1)"),
        (_finite(o.disc_lr) and o.disc_lr >= 0, f"optim.disc_lr must be >= 0 (0: optim.lr), got {o.disc_lr}"),
        (t.steps >= 0, "train.steps must be >= 0"),
        (t.log_every >= 0, f"train.log_every must be >= 0, got {t.log_every}"),
        (t.checkpoint_every >= 0, f"train.checkpoint_every must be >= 0 (0: only at the end), got {t.checkpoint_every}"),
        (t.precision in ("fp32", "bf16"), "train.precision must be fp32 or bf16"),
        (t.device in ("auto", "cpu", "cuda"), "train.device must be auto, cpu or cuda"),
        (0 <= t.threads <= 4096, f"train.threads must be in 0..4096 (0: torch's default), got {t.threads}"),
        (loss.reconstruction in ("mse", "l1"), "loss.reconstruction must be mse or l1"),
        (loss.discriminator in ("patchgan", "dino"), "loss.discriminator must be patchgan or dino"),
        (loss.lpips_net in ("alex", "vgg", "squeeze"), "loss.lpips_net must be alex, vgg or squeeze"),
        (loss.disc_start >= 0, f"loss.disc_start must be >= 0, got {loss.disc_start}"),
        (e.batch_size >= 1, f"eval.batch_size must be >= 1, got {e.batch_size}"),
        (e.max_images >= 0, f"eval.max_images must be >= 0 (0: the whole split), got {e.max_images}"),
        (e.grid_images >= 0, f"eval.grid_images must be >= 0, got {e.grid_images}"),
        (bool(e.metrics), "eval.metrics must name at least one metric"),
    ]
    found = [message for ok, message in checks if not ok]
    found += _betas("optim.betas", o.betas) + _betas("optim.disc_betas", o.disc_betas)
    reserved = sorted({"split", "image_size", "root", "seed"} & set(d.options))
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


def validate(recipe: Recipe) -> None:
    """``ConfigError`` listing every out-of-range value of ``recipe``, one per line."""
    found = problems(recipe)
    if found:
        raise ConfigError("\n".join(found))


# ---- --set KEY=VALUE ----------------------------------------------------------------


def parse_value(text: str) -> Any:
    """A ``--set`` value as TOML (numbers, booleans, lists, quoted strings), else a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(table: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``KEY=VALUE`` strings (dotted keys) to a raw recipe table."""
    table = json.loads(json.dumps(table))  # deep copy of plain data
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r} (e.g. --set train.steps=200)")
        parts = key.split(".")
        node = table
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: {part!r} is not a table")
            node = child
        node[parts[-1]] = parse_value(text.strip())
    return table


# ---- finding recipes ------------------------------------------------------------------


def recipe_dirs() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get(RECIPE_PATH_ENV, "").split(os.pathsep) if p]
    dirs.append(Path(__file__).resolve().parent.parent / "benchmarks" / "recipes")
    return dirs


def available_recipes() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for directory in recipe_dirs():
        if directory.is_dir():
            for path in sorted(directory.glob("*.toml")):
                found.setdefault(path.stem, path)
    return found


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"recipe file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"recipe {path} is not valid TOML: {exc}") from None


def load_recipe(name_or_path: str | None = None, overrides: list[str] | None = None) -> Recipe:
    """A recipe by name (``benchmarks/recipes/NAME.toml``) or TOML path, with overrides."""
    recipe, found = load_recipe_and_problems(name_or_path, overrides)
    if found:
        raise ConfigError("\n".join(found))
    return recipe


def load_recipe_and_problems(name_or_path: str | None = None,
                             overrides: list[str] | None = None) -> tuple[Recipe, list[str]]:
    """``load_recipe`` that returns the problems of the recipe's values instead of raising them.

    A recipe that cannot be read at all (unknown name, missing file, invalid
    TOML, a ``--set`` without ``=``) still raises ``ConfigError``.
    """
    ref = name_or_path or DEFAULT_RECIPE
    known = available_recipes()
    if ref in known:
        path = known[ref]
    elif ref.endswith(".toml") or os.sep in ref:
        path = Path(ref)
    else:
        raise unknown_name_error("recipe", ref, known)
    table = read_toml(path)
    table.setdefault("name", path.stem)
    return recipe_and_problems(apply_overrides(table, overrides or []))
