"""Training checkpoints: everything needed to continue a run bit for bit.

One file, ``checkpoint.pt`` in the run directory, written atomically (a
crash mid-write leaves the previous checkpoint intact).  It holds the model,
optimiser(s), the EMA weights, the discriminator, the step, the RNG states,
the log so far, and the run's identity (recipe, quantizer, effective
options, plugin provenance, config hash).  It contains only tensors and plain data, so it loads with
``torch.load(weights_only=True)``: no pickled code runs on load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from qbench.atomic import torch_save
from qbench.errors import ConfigError
from qbench.recipe.identity import RunIdentity

CHECKPOINT_FILE = "checkpoint.pt"
FORMAT = "qbench-checkpoint"
VERSION = 2  # 2: the identity holds effective options and plugin provenance


def path_in(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINT_FILE


def rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def save(run_dir: str | Path, state: dict[str, Any]) -> Path:
    """Atomically write ``state`` (see module doc) to ``run_dir/checkpoint.pt``."""
    return torch_save(path_in(run_dir), {"format": FORMAT, "version": VERSION, **state})


def load(run_dir_or_file: str | Path) -> dict[str, Any]:
    """Load and check a checkpoint; any problem is a ``ConfigError`` saying which."""
    path = Path(run_dir_or_file)
    if path.is_dir():
        path = path / CHECKPOINT_FILE
    if not path.is_file():
        raise ConfigError(f"no checkpoint at {path}: was this run directory written by `qbench run`?")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(f"checkpoint {path} is corrupt or not loadable safely ({type(exc).__name__}: "
                          f"{load_error_line(exc)})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ConfigError(f"{path} is not a qbench checkpoint (a foreign file or another tool's format)")
    if state.get("version") != VERSION:
        raise ConfigError(f"checkpoint {path} has format version {state.get('version')}; this qbench reads {VERSION}")
    missing = [k for k in ("step", "model", "recipe", "quantizer", "options", "config_hash") if k not in state]
    if missing:
        raise ConfigError(f"checkpoint {path} is incomplete: missing {', '.join(missing)}")
    return state


def load_error_line(exc: BaseException) -> str:
    """The telling line of ``torch.load``'s multi-line error (the unpickler's reason when it gives one)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    reason = next((line for line in lines if "WeightsUnpickler error" in line), lines[0] if lines else "")
    return reason[:300]


def mismatch(exc: BaseException) -> str:
    """One line out of ``load_state_dict``'s multi-line error: the first mismatch and how many more."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    details = [line for line in lines if not line.startswith("Error(s) in loading state_dict")]
    if not details:
        return lines[0] if lines else type(exc).__name__
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    return details[0].rstrip(".") + more


def run_identity(state: dict[str, Any]):
    """The ``qbench.recipe.identity.RunIdentity`` stored in a checkpoint."""

    try:
        return RunIdentity.from_dict(state)
    except ConfigError as exc:
        raise ConfigError(f"checkpoint holds a recipe this qbench cannot read: {exc}") from None
