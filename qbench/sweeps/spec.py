"""The sweep file: a TOML description of a study, read and checked for shape.

Only the *shape* is checked here (known keys, types, non-empty lists, equal
zip lengths, no key both fixed and swept); whether a key exists in the
recipe, a quantizer takes an option or a value is valid is checked later,
point by point, by building each point's recipe and quantizer
(``qbench.sweeps.plan``).  Every problem is one ``ConfigError`` line that
starts with the file name.

Swept and fixed keys are dotted recipe keys, as with ``--set``.  Nested TOML
tables are flattened, so ``[grid] model.latent_dim = [4, 8]`` and
``[grid] "model.latent_dim" = [4, 8]`` mean the same.  ``rate`` is a label,
not a recipe key: it is recorded in each point (``point.rate``) and applied
to nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from qbench.errors import ConfigError, suggest
from qbench.recipe.config import parse_value
from qbench.report.studies import parse_report

RATE = "rate"
TOP_KEYS = ("name", "description", "recipe", "quantizers", "seeds", "set", "grid", "zip", "ladder", "rates", "slurm",
            "report")
SLURM_KEYS = {  # key -> (type, meaning), shared by the [slurm] table and the CLI options
    "partition": (str, "Slurm partition"),
    "account": (str, "Slurm account"),
    "qos": (str, "Slurm quality of service"),
    "constraint": (str, "Slurm node constraint"),
    "time": (int, "time limit of each job, minutes"),
    "gpus_per_node": (int, "GPUs per node; one task (rank) per GPU"),
    "nodes": (int, "nodes per job: each point trains on nodes x tasks_per_node ranks (docs/scale.md)"),
    "tasks_per_node": (int, "tasks (ranks) per node (default: gpus_per_node, else 1; for CPU-only nodes)"),
    "cpus_per_task": (int, "CPU cores per task (also its torch threads)"),
    "mem_gb": (int, "memory per job, GB"),
    "array_parallelism": (int, "at most this many jobs of the array run at once"),
}


@dataclass(frozen=True)
class SweepSpec:
    """A sweep file, shape-checked; ``plan`` turns it into points."""

    path: str  # as given on the command line (recorded in each run)
    name: str
    recipe: str
    quantizers: list[str]
    seeds: list[int] | None  # None: the recipe's seed
    fixed: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    zips: list[dict[str, list[Any]]] = field(default_factory=list)
    ladder: str | dict[str, Any] | None = None
    rates: list[float] | None = None
    slurm: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def error(self, message: str) -> ConfigError:
        return ConfigError(f"sweep {self.path}: {message}")


def flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists, scalars and empty tables (``data.options = {}``) are leaves."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def read_toml(path: str, kind: str = "sweep") -> dict[str, Any]:
    """A study file's TOML (``kind`` names it in the messages: sweep, tune); ``ConfigError`` when unreadable."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{kind} file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"{kind} file {path} is a directory, not a TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{kind} {path} is not valid TOML: {exc}") from None


def check_keys(raw: dict[str, Any], allowed, fail) -> None:
    """Refuse a top-level key outside ``allowed``, with a suggestion."""
    for key in raw:
        if key not in allowed:
            raise fail(f"unknown key {key!r}{suggest(key, allowed)}; allowed: {', '.join(allowed)}")


def _swept_lists(raw: Any, where: str, fail) -> dict[str, list[Any]]:
    if not isinstance(raw, dict):
        raise fail(f"[{where}] must be a table of dotted keys and lists, got {raw!r}")
    lists = flatten(raw)
    for key, values in lists.items():
        if not isinstance(values, list):
            raise fail(f"{where} key {key!r} must be a list of values, got {values!r} (write [{values!r}])")
        if not values:
            raise fail(f"{where} key {key!r} has an empty list: nothing to sweep")
        if key == RATE and not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise fail(f"{where} key 'rate' is a label in bits and takes numbers, got {values!r}")
    return lists


def _seeds(raw: Any, fail) -> list[int] | None:
    if raw is None:
        return None
    if isinstance(raw, int) and not isinstance(raw, bool):
        if raw < 1:
            raise fail(f"seeds = {raw}: a count must be at least 1")
        return list(range(raw))
    if isinstance(raw, list) and raw and all(isinstance(s, int) and not isinstance(s, bool) for s in raw):
        if len(set(raw)) != len(raw):
            raise fail(f"seeds {raw} repeat a seed")
        return list(raw)
    raise fail(f"seeds must be a count (seeds = 3 for 0, 1, 2) or a non-empty list of integers, got {raw!r}")


def check_slurm(options: dict[str, Any], fail) -> dict[str, Any]:
    for key, value in options.items():
        if key not in SLURM_KEYS:
            raise fail(f"unknown [slurm] key {key!r}{suggest(key, SLURM_KEYS)}; allowed: {', '.join(SLURM_KEYS)}")
        kind = SLURM_KEYS[key][0]
        if not isinstance(value, kind) or isinstance(value, bool) or (kind is int and value < 1):
            shown = "a positive integer" if kind is int else "a string"
            raise fail(f"[slurm] {key} must be {shown}, got {value!r}")
    return dict(options)


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and shape-check a sweep file; ``ConfigError`` naming the file and the problem."""
    path = str(path)
    raw = read_toml(path)

    def fail(message: str) -> ConfigError:
        return ConfigError(f"sweep {path}: {message}")

    check_keys(raw, TOP_KEYS, fail)
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise fail("needs a name, e.g. name = \"rd-cpu\" (it names the study in every run and report)")
    recipe = raw.get("recipe", "cpu-default")
    if not isinstance(recipe, str):
        raise fail(f"recipe must be a recipe name or a TOML file, got {recipe!r}")
    if recipe.endswith(".toml") and not Path(recipe).is_absolute():
        beside = Path(path).parent / recipe  # a recipe file is found beside the sweep file first
        recipe = str(beside) if beside.exists() else recipe
    quantizers = raw.get("quantizers")
    if not isinstance(quantizers, list) or not quantizers or not all(isinstance(q, str) for q in quantizers):
        raise fail(f"quantizers must be a non-empty list of names, e.g. [\"gsq\", \"vq\"], got {quantizers!r}")
    if len(set(quantizers)) != len(quantizers):
        raise fail(f"quantizers {quantizers} repeat a name")

    fixed = raw.get("set", {})
    if not isinstance(fixed, dict):
        raise fail(f"set must be a table of dotted recipe keys, got {fixed!r}")
    fixed = flatten(fixed)
    grid = _swept_lists(raw.get("grid", {}), "grid", fail)
    zip_raw = raw.get("zip", [])
    zips = [_swept_lists(group, "zip", fail) for group in (zip_raw if isinstance(zip_raw, list) else [zip_raw])]
    for group in zips:
        lengths = {key: len(values) for key, values in group.items()}
        if len(set(lengths.values())) > 1:
            raise fail(f"zip lists move together and need one length, got {lengths}")

    ladder, rates = raw.get("ladder"), raw.get("rates")
    if (ladder is None) != (rates is None):
        raise fail("a rate ladder needs both ladder = \"default\" (or a [ladder] table) and rates = [...]")
    if ladder is not None and not isinstance(ladder, (str, dict)):
        raise fail(f"ladder must be a ladder name, a TOML file or a table, got {ladder!r}")
    if rates is not None:
        if not isinstance(rates, list) or not rates or not all(
            isinstance(r, (int, float)) and not isinstance(r, bool) and r > 0 for r in rates
        ):
            raise fail(f"rates must be a non-empty list of bits per position, e.g. [8, 10, 12], got {rates!r}")
        if len(set(rates)) != len(rates):
            raise fail(f"rates {rates} repeat a rate")

    seen: dict[str, str] = {}
    sources = [("set", fixed), ("grid", grid)] + [("zip", group) for group in zips]
    for source, keys in sources:
        for key in keys:
            if key in seen:
                raise fail(f"key {key!r} is given twice (in {seen[key]} and in {source}); give each key once")
            seen[key] = source
    if RATE in fixed:
        raise fail("rate is a label of swept points; put it in [grid] or [zip], or use a ladder")
    if rates is not None and RATE in seen:
        raise fail("rate comes from the ladder's rates; do not also sweep it in [grid] or [zip]")
    for key in seen:
        parts = key.split(".")
        if parts[0] == "quantizers" and (len(parts) < 3 or parts[1] not in quantizers):
            what = f"quantizer {parts[1]!r} is not among the sweep's quantizers {quantizers}" if len(parts) > 2 else \
                "quantizer keys read quantizers.NAME.OPTION"
            raise fail(f"key {key!r}: {what}")

    slurm = raw.get("slurm", {})
    if not isinstance(slurm, dict):
        raise fail(f"[slurm] must be a table, got {slurm!r}")
    description = raw.get("description", "")
    if "report" in raw:  # what the study will claim: checked now, read by qbench report (qbench.report.studies)
        parse_report(raw["report"], name.strip(), path, fail)
    return SweepSpec(path=path, name=name.strip(), recipe=recipe, quantizers=list(quantizers),
                     seeds=_seeds(raw.get("seeds"), fail), fixed=fixed, grid=grid, zips=zips, ladder=ladder,
                     rates=list(rates) if rates else None,
                     slurm=check_slurm(slurm, fail), description=str(description))


def with_overrides(spec: SweepSpec, items: list[str]) -> SweepSpec:
    """``spec`` with ``--set KEY=VALUE`` items added to its fixed keys (a swept key cannot be fixed)."""
    import dataclasses

    fixed = dict(spec.fixed)
    swept = set(spec.grid).union(*spec.zips) if spec.zips else set(spec.grid)
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r} (e.g. --set train.steps=20)")
        if key in swept or key == RATE:
            raise spec.error(f"--set {key}: the sweep varies this key; it cannot also be fixed")
        fixed[key] = parse_value(text.strip())
    return dataclasses.replace(spec, fixed=fixed)
