"""Rate ladders: each quantizer's options at a common set of rates (bits per position).

A ladder is data, one TOML file per ladder in ``benchmarks/sweeps/ladders/``
(``default.toml`` is the one the published studies use; the reasons for each
row are in docs/sweeps.md).  A file names the latent width its rows are
meant for and one table per quantizer, rate -> options::

    latent_dim = 4
    [gsq]
    8 = { groups = 1, codebook_size = 256 }
    10 = { groups = 1, codebook_size = 1024 }

Adding a quantizer is adding a table.  A dotted key in a row is a recipe key
(``"optim.lr" = 1e-3``), applied as it is rather than to ``[quantizers.NAME]``:
``qbench tune`` writes its tuned ladders that way.  A sweep file uses a ladder with
``ladder = "default"`` (a name or a TOML file) and ``rates = [...]``, or with a
``[ladder]`` table whose ``base`` names a ladder and whose
``[ladder.QUANTIZER]`` tables add or replace rows, for quantizers that a
ladder file does not cover.  A rung is the nominal rate; the rate a point
really has is its quantizer's ``bits_per_position`` (FSQ's 10-bit levels
give 9.97 bits), which the dry run shows and every run records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from qbench.errors import ConfigError, unknown_name_error

LADDER_DIR = Path(__file__).resolve().parent.parent.parent / "benchmarks" / "sweeps" / "ladders"
FILE_KEYS = ("description", "latent_dim")


@dataclass(frozen=True)
class Ladder:
    name: str
    latent_dim: int | None  # the width the rows are meant for; None: any
    rows: dict[str, dict[float, dict[str, Any]]] = field(default_factory=dict)  # quantizer -> rate -> options

    def options(self, quantizer: str, rate: float) -> dict[str, Any]:
        """The options ``quantizer`` takes at ``rate``; a ``ConfigError`` saying what to add when missing."""
        rungs = self.rows.get(quantizer)
        if rungs is None:
            covered = ", ".join(sorted(self.rows)) or "none"
            raise ConfigError(
                f"ladder {self.name!r} has no rows for quantizer {quantizer!r} (it covers: {covered}); "
                f"add a [{quantizer}] table to the ladder file, or [ladder.{quantizer}] rows to the sweep file"
            )
        if float(rate) not in rungs:
            shown = ", ".join(f"{r:g}" for r in sorted(rungs))
            raise ConfigError(f"ladder {self.name!r} has no {rate:g}-bit rung for {quantizer!r} (it has: {shown})")
        return dict(rungs[float(rate)])


def available_ladders() -> dict[str, Path]:
    return {p.stem: p for p in sorted(LADDER_DIR.glob("*.toml"))} if LADDER_DIR.is_dir() else {}


def _rows(table: dict[str, Any], where: str) -> dict[str, dict[float, dict[str, Any]]]:
    rows: dict[str, dict[float, dict[str, Any]]] = {}
    for quantizer, rungs in table.items():
        if not isinstance(rungs, dict):
            raise ConfigError(f"{where}: [{quantizer}] must map rates to option tables, got {rungs!r}")
        rows[quantizer] = {}
        for rate, options in rungs.items():
            try:
                bits = float(rate)
            except ValueError:
                raise ConfigError(f"{where}: [{quantizer}] key {rate!r} is not a rate in bits") from None
            if not isinstance(options, dict):
                raise ConfigError(f"{where}: [{quantizer}] {rate} must be an option table, got {options!r}")
            rows[quantizer][bits] = options
    return rows


def read_ladder(ref: str, beside: Path | None = None) -> Ladder:
    """A ladder by name (``benchmarks/sweeps/ladders/NAME.toml``) or TOML path."""
    known = available_ladders()
    if ref in known:
        path = known[ref]
    elif ref.endswith(".toml"):
        path = Path(ref)
        if beside is not None and not path.is_absolute() and (beside / path).exists():
            path = beside / path
    else:
        raise unknown_name_error("ladder", ref, known)
    try:
        with open(path, "rb") as fh:
            table = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"ladder file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"ladder {path} is not valid TOML: {exc}") from None
    latent_dim = table.get("latent_dim")
    if latent_dim is not None and (not isinstance(latent_dim, int) or isinstance(latent_dim, bool) or latent_dim < 1):
        raise ConfigError(f"ladder {path}: latent_dim must be a positive integer, got {latent_dim!r}")
    rows = _rows({k: v for k, v in table.items() if k not in FILE_KEYS}, f"ladder {path}")
    return Ladder(path.stem, latent_dim, rows)


def resolve_ladder(ref: str | dict[str, Any], beside: Path | None = None) -> Ladder:
    """The ladder a sweep file names: ``"default"``, a file, or a table with ``base`` and extra rows."""
    if isinstance(ref, str):
        return read_ladder(ref, beside)
    base_ref = ref.get("base")
    if base_ref is not None and not isinstance(base_ref, str):
        raise ConfigError(f"[ladder] base must be a ladder name or file, got {base_ref!r}")
    base = read_ladder(base_ref, beside) if base_ref else Ladder("sweep file", None)
    extra = _rows({k: v for k, v in ref.items() if k != "base"}, "[ladder]")
    rows = {q: dict(r) for q, r in base.rows.items()}
    for quantizer, rungs in extra.items():
        rows.setdefault(quantizer, {}).update(rungs)
    return Ladder(base.name if base_ref else "sweep file", base.latent_dim, rows)
