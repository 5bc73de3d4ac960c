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
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_type_hints

import tomllib

from qbench.errors import ConfigError, suggest, unknown_name_error
from qbench.platform.plugins import Registries, given_or_built
from qbench.recipe import overlay, per_quantizer
from qbench.recipe.checks import LPIPS_NETS, problems  # noqa: F401 (LPIPS_NETS: part of this module's API)

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

RECIPE_PATH_ENV = "QBENCH_RECIPE_PATH"
# recipe keys that cannot change a result: left out of the recipe hash, so that
# watching a run more closely never splits it from its seeds
UNHASHED = ("train.log_every", "train.checkpoint_every", "train.loggers", "train.image_every", "train.threads",
            "data.num_workers", "eval.grid_images", "eval.every", "eval.heldout_images", "eval.heldout_split")
DEFAULT_RECIPE = "cpu-tuned"


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
    schedule: str = "constant"  # constant | cosine | linear (decay to min_lr_ratio over the budget)
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
    # The split the final metrics are scored on.  The default stays "val": a recipe that names no
    # split scores what it always scored (its hash unchanged), and datasets or options without a
    # test split keep working.  Recipes whose numbers are reported set "test" (the shipped ones do).
    split: str = "val"
    metrics: list[str] = field(
        default_factory=lambda: ["psnr", "ssim", "lpips", "rfid", "usage", "perplexity", "bits", "throughput"]
    )
    max_images: int = 0  # 0: the whole split
    batch_size: int = 64
    use_ema: bool = True
    grid_images: int = 16
    every: int = 0  # held-out PSNR, SSIM and usage every N training steps (log.csv rows); 0: off
    heldout_images: int = 64  # the fixed held-out subset those rows are measured on
    # the split of those rows and of the reconstructions shown while training: never "test", since
    # whatever is looked at during training (or used to select) must not see the final numbers' images
    heldout_split: str = "val"


@dataclass
class Recipe:
    name: str = "custom"
    description: str = ""
    note: str = ""  # printed under qbench run's table: what the results of this recipe are (and are not)
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    quantizers: dict[str, dict[str, Any]] = field(default_factory=dict)
    loggers: dict[str, dict[str, Any]] = field(default_factory=dict)  # [loggers.NAME] options
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)  # [metrics.NAME] options

    def quantizer_options(self, name: str) -> dict[str, Any]:
        """Options the recipe gives quantizer ``name``: ``dim`` plus its own table (less its recipe keys)."""
        return {"dim": self.model.latent_dim, **per_quantizer.own_options(self.quantizers.get(name, {}))}

    def for_quantizer(self, name: str) -> Recipe:
        """The recipe ``name`` runs with: its own recipe keys applied (``qbench.recipe.per_quantizer``)."""
        if not any(per_quantizer.recipe_keys(o) for o in self.quantizers.values()):
            return self
        return recipe_from_dict(per_quantizer.resolved_table(self.to_dict(), name, set_dotted))

    def logger_options(self, name: str) -> dict[str, Any]:
        """Options the recipe gives logger ``name``: its ``[loggers.NAME]`` table."""
        return dict(self.loggers.get(name, {}))

    def metric_options(self, name: str) -> dict[str, Any]:
        """Options the recipe gives metric ``name``: its ``[metrics.NAME]`` table."""
        return dict(self.metrics.get(name, {}))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        """Hash of everything that can change a result: not the quantizer tables, seed, names,
        nor the bookkeeping keys in ``UNHASHED`` (logging, checkpoint cadence, loader workers).

        Runs of different quantizers and seeds under one recipe share it (the
        seed is recorded beside it, and seeds become mean ± CI in reports);
        any change to data, model, optimiser, losses, steps or evaluation
        changes it.  The ``[loggers.*]`` option tables, like ``train.loggers``,
        only say where the run is watched.  The ``[metrics.*]`` tables count
        only when a recipe sets one, so recipes without them keep their hash.
        """
        ignored = ("quantizers", "seed", "name", "description", "note", "loggers")
        shared = {k: v for k, v in self.to_dict().items() if k not in ignored}
        if not shared.get("metrics"):
            shared.pop("metrics", None)
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


_ITEMS = {str: "names", int: "integers", float: "numbers", bool: "true/false values"}


def _describe(hint: Any) -> str:
    origin = getattr(hint, "__origin__", None)
    args = getattr(hint, "__args__", ())
    if origin is list:
        return f"a list of {_ITEMS.get(args[0], _describe(args[0]))}" if args else "a list"
    if origin is dict:
        return "a table" if not args or args[1] is Any else f"a table of {_describe(args[1])}s"
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


def _build(cls, table: dict[str, Any], prefix: str, found: list[str]):
    """``cls`` built from ``table``; every bad key or value is added to ``found`` (its default kept)."""
    hints = get_type_hints(cls)
    allowed = [f.name for f in fields(cls)]
    kwargs = {}
    for key, value in table.items():
        full = f"{prefix}{key}"
        if key not in allowed:
            found.append(f"unknown recipe key {full!r}{suggest(key, allowed)}; allowed: {', '.join(allowed)}")
            continue
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                found.append(f"{full} must be a table, got {value!r}")
                continue
            kwargs[key] = _build(hint, value, f"{full}.", found)
            continue
        try:
            kwargs[key] = _coerce(value, hint, full)
        except ConfigError as exc:
            found.append(str(exc))
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
    found += per_quantizer.key_problems(recipe.quantizers)
    if not found:  # each quantizer's own values must make a valid recipe too
        for name, options in recipe.quantizers.items():
            if per_quantizer.recipe_keys(options):
                _, theirs = recipe_and_problems(per_quantizer.resolved_table(recipe.to_dict(), name, set_dotted))
                found += [f"quantizers.{name}: {line}" for line in theirs]
    return recipe, list(dict.fromkeys(found + problems(recipe)))


def recipe_from_dict(table: dict[str, Any]) -> Recipe:
    """A recipe from plain data; every problem found is one line of the ``ConfigError``."""
    recipe, found = recipe_and_problems(table)
    if found:
        raise ConfigError("\n".join(found))
    return recipe


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
    parsed = []
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r} (e.g. --set train.steps=200)")
        parsed.append((key, parse_value(text.strip())))
    drop_replaced_dataset_options(table, dict(parsed))
    per_quantizer.drop_overridden(table, [key for key, _ in parsed])
    for key, value in parsed:
        set_dotted(table, key, value, what="--set ")
    return table


def drop_replaced_dataset_options(table: dict[str, Any], values: dict[str, Any]) -> None:
    """When ``values`` (dotted keys) switch ``data.dataset`` to another dataset, the recipe's ``data.options`` go.

    They are the old dataset's (``photos``' ``scales`` mean nothing to ``webdataset``, which would refuse
    them); options given beside the switch (``data.options.KEY``) apply to the new dataset.
    """
    data = table.get("data")
    new = values.get("data.dataset")
    if new is not None and isinstance(data, dict) and new != data.get("dataset", DataConfig.dataset):
        data["options"] = {}


def set_dotted(table: dict[str, Any], key: str, value: Any, what: str = "key ") -> None:
    """``table["a"]["b"] = value`` for ``key = "a.b"``, creating tables on the way."""
    parts = key.split(".")
    node = table
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{what}{key}: {part!r} is not a table")
        node = child
    node[parts[-1]] = value


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


def available_recipes(regs: Registries | None = None) -> dict[str, Traversable]:
    """Recipe name -> file: ``QBENCH_RECIPE_PATH`` folders first, then recipes registered by plugins."""
    found: dict[str, Traversable] = {}
    for directory in recipe_dirs():
        if directory.is_dir():
            for path in sorted(directory.glob("*.toml")):
                found.setdefault(path.stem, path)
    regs = given_or_built(regs, strict=False)
    for spec in regs.recipes.list():
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


def recipe_table(name_or_path: str | None = None, regs: Registries | None = None, _depth: int = 0) -> dict[str, Any]:
    """The raw table of a recipe by name (registered by a plugin or in ``QBENCH_RECIPE_PATH``) or TOML path, named;
    an overlay (``extends = BASE``, ``qbench.recipe.overlay``) merged into its base."""
    ref = name_or_path or DEFAULT_RECIPE
    if ref.endswith(".toml") or os.sep in ref:
        path = Path(ref)
    else:
        known = available_recipes(regs)
        if ref not in known:
            raise unknown_name_error("recipe", ref, known)
        path = known[ref]
    table = read_toml(path)
    if overlay.EXTENDS in table:
        table = _extended(table, path, regs, _depth)
    table.setdefault("name", Path(path.name).stem)
    return table


def _extended(table: dict[str, Any], path, regs: Registries | None, depth: int) -> dict[str, Any]:
    base_ref = table.pop(overlay.EXTENDS)
    if not isinstance(base_ref, str) or not base_ref:
        raise ConfigError(f"recipe {path}: extends must name a recipe or a TOML file, got {base_ref!r}")
    if depth >= overlay.MAX_DEPTH:
        raise ConfigError(f"recipe {path}: extends recipes {overlay.MAX_DEPTH} deep (a cycle?)")
    beside = Path(str(path)).parent / base_ref
    if base_ref.endswith(".toml") and not Path(base_ref).is_absolute() and beside.exists():
        base_ref = str(beside)
    base = recipe_table(base_ref, regs, depth + 1)
    base.pop("name", None)  # the overlay is its own recipe: named after its file unless it says otherwise
    return overlay.merge(base, table)


def load_recipe(name_or_path: str | None = None, overrides: list[str] | None = None, regs: Registries | None = None) -> Recipe:
    """A recipe by name (registered by a plugin or in ``QBENCH_RECIPE_PATH``) or TOML path, with overrides."""
    recipe, found = load_recipe_and_problems(name_or_path, overrides, regs)
    if found:
        raise ConfigError("\n".join(found))
    return recipe


def load_recipe_and_problems(name_or_path: str | None = None, overrides: list[str] | None = None,
                             regs: Registries | None = None) -> tuple[Recipe, list[str]]:
    """``load_recipe`` that returns the problems of the recipe's values instead of raising them.

    A recipe that cannot be read at all (unknown name, missing file, invalid
    TOML, a ``--set`` without ``=``) still raises ``ConfigError``.
    """
    return recipe_and_problems(apply_overrides(recipe_table(name_or_path, regs), overrides or []))
