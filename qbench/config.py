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
import os
import tomllib
from importlib import resources
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_type_hints

from .errors import ConfigError, suggest, unknown_name_error

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

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
    loggers: list[str] = field(default_factory=lambda: ["csv"])  # experiment trackers (qbench list loggers)
    image_every: int = 0  # reconstruction grid to the loggers every N steps; 0: off


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
    loggers: dict[str, dict[str, Any]] = field(default_factory=dict)  # [loggers.NAME] options

    def quantizer_options(self, name: str) -> dict[str, Any]:
        """Options the recipe gives quantizer ``name``: ``dim`` plus its own table."""
        return {"dim": self.model.latent_dim, **self.quantizers.get(name, {})}

    def logger_options(self, name: str) -> dict[str, Any]:
        """Options the recipe gives logger ``name``: its ``[loggers.NAME]`` table."""
        return dict(self.loggers.get(name, {}))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        """Hash of everything that can change a result: not the quantizer tables, seed, names,
        nor the bookkeeping keys in ``UNHASHED`` (logging, checkpoint cadence, loader workers).

        Runs of different quantizers and seeds under one recipe share it (the
        seed is recorded beside it, and seeds become mean ± CI in reports);
        any change to data, model, optimiser, losses, steps or evaluation
        changes it.  The ``[loggers.*]`` option tables, like ``train.loggers``,
        only say where the run is watched.
        """
        ignored = ("quantizers", "seed", "name", "description", "loggers")
        shared = {k: v for k, v in self.to_dict().items() if k not in ignored}
        for dotted in UNHASHED:
            section, _, key = dotted.partition(".")
            shared.get(section, {}).pop(key, None)
        blob = json.dumps(shared, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def _coerce(value: Any, hint: Any, key: str) -> Any:
    origin = getattr(hint, "__origin__", None)
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif origin is list:
        if isinstance(value, list):
            return value
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
    elif origin is dict:
        if isinstance(value, dict):
            return value
    else:
        return value
    name = getattr(hint, "__name__", str(hint))
    raise ConfigError(f"{key} must be {name}, got {value!r}")


def _build(cls, table: dict[str, Any], prefix: str):
    hints = get_type_hints(cls)
    allowed = [f.name for f in fields(cls)]
    kwargs = {}
    for key, value in table.items():
        full = f"{prefix}{key}"
        if key not in allowed:
            raise ConfigError(f"unknown recipe key {full!r}{suggest(key, allowed)}; allowed: {', '.join(allowed)}")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise ConfigError(f"{full} must be a table, got {value!r}")
            kwargs[key] = _build(hint, value, f"{full}.")
        else:
            kwargs[key] = _coerce(value, hint, full)
    return cls(**kwargs)


def recipe_from_dict(table: dict[str, Any]) -> Recipe:
    recipe = _build(Recipe, table, "")
    validate(recipe)
    return recipe


LPIPS_NETS = ("alex", "vgg", "squeeze")  # = qbench.weights.LPIPS_NETWORKS (kept in step by a test)


def validate(recipe: Recipe) -> None:
    checks = [
        (recipe.data.image_size > 0, "data.image_size must be positive"),
        (recipe.data.batch_size > 0, "data.batch_size must be positive"),
        (recipe.model.latent_dim > 0, "model.latent_dim must be positive"),
        (recipe.optim.lr > 0, "optim.lr must be positive"),
        (len(recipe.optim.betas) == 2, "optim.betas must have two values"),
        (recipe.optim.schedule in ("constant", "cosine"), "optim.schedule must be constant or cosine"),
        (0.0 <= recipe.optim.ema_decay < 1.0, "optim.ema_decay must be in [0, 1)"),
        (recipe.train.steps >= 0, "train.steps must be >= 0"),
        (recipe.train.image_every >= 0, "train.image_every must be >= 0 (0: off)"),
        (all(isinstance(n, str) and n for n in recipe.train.loggers), "train.loggers must be a list of logger names"),
        (all(isinstance(t, dict) for t in recipe.loggers.values()), "each [loggers.NAME] must be a table of options"),
        (recipe.train.precision in ("fp32", "bf16"), "train.precision must be fp32 or bf16"),
        (recipe.train.device in ("auto", "cpu", "cuda"), "train.device must be auto, cpu or cuda"),
        (recipe.loss.reconstruction in ("mse", "l1"), "loss.reconstruction must be mse or l1"),
        (recipe.loss.discriminator in ("patchgan", "dino"), "loss.discriminator must be patchgan or dino"),
        (recipe.loss.lpips_net in LPIPS_NETS, f"loss.lpips_net must be one of {', '.join(LPIPS_NETS)}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


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
    """Folders of user recipes (``QBENCH_RECIPE_PATH``); their names win over registered ones."""
    return [Path(p) for p in os.environ.get(RECIPE_PATH_ENV, "").split(os.pathsep) if p]


def recipe_resource(spec) -> Traversable:
    """The TOML file a ``RecipeSpec`` names as ``"package:file.toml"``, read through importlib.resources."""
    package, _, filename = spec.factory.partition(":")
    try:
        return resources.files(package) / filename
    except ModuleNotFoundError:
        raise ConfigError(f"recipe {spec.name!r} from {spec.origin or '?'}: no package {package!r}") from None


def available_recipes(registries=None) -> dict[str, Traversable]:
    """Recipe name -> file: ``QBENCH_RECIPE_PATH`` folders first, then recipes registered by plugins."""
    found: dict[str, Traversable] = {}
    for directory in recipe_dirs():
        if directory.is_dir():
            for path in sorted(directory.glob("*.toml")):
                found.setdefault(path.stem, path)
    if registries is None:
        from .plugins import registries as build

        registries = build(strict=False)
    for spec in registries.recipes.list():
        found.setdefault(spec.name, recipe_resource(spec))
    return found


def read_toml(path: Path | Traversable) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"recipe file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"recipe {path} is a folder, not a TOML file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"recipe {path} is not valid TOML: {exc}") from None


def recipe_table(name_or_path: str | None = None, registries=None) -> dict[str, Any]:
    """The raw table of a recipe by name (registered by a plugin or in ``QBENCH_RECIPE_PATH``) or TOML path, named."""
    ref = name_or_path or DEFAULT_RECIPE
    if ref.endswith(".toml") or os.sep in ref:
        path = Path(ref)
    else:
        known = available_recipes(registries)
        if ref not in known:
            raise unknown_name_error("recipe", ref, known)
        path = known[ref]
    table = read_toml(path)
    table.setdefault("name", Path(path.name).stem)
    return table


def load_recipe(name_or_path: str | None = None, overrides: list[str] | None = None, registries=None) -> Recipe:
    """A recipe by name (registered by a plugin or in ``QBENCH_RECIPE_PATH``) or TOML path, with overrides."""
    return recipe_from_dict(apply_overrides(recipe_table(name_or_path, registries), overrides or []))
