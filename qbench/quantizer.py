"""Shared pieces of qbench's quantizers, public so third-party plugins can reuse them.

The VQ family (VQ-VAE, arXiv 1711.00937; GSQ, arXiv 2412.02632; residual VQ,
arXiv 2107.03312) shares one forward shape: look up the nearest code q of a
(possibly l2-normalised) input z~, output z~ + sg(q - z~) so the decoder sees
q while the gradient flows straight through to the encoder, and train the
codebook with mean((q - sg(z~))^2) + beta * mean((sg(q) - z~)^2).

``Quantizer`` is an ``nn.Module`` base with the contract's properties
(``codebook_size``, ``tokens_per_position``, ``bits_per_position``,
``codebook_shared``) and the ``stats`` of docs/plugins.md section 2, whose names are
documented in :mod:`qbench.codebook` (``usage``, ``perplexity``, ``usage/<t>``,
``perplexity/<t>``).  The helpers validate options with :class:`ConfigError`
*before* any tensor is made, and move between the (B, D, h, w) layout of
feature maps and the (N, D) rows a lookup works on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from qbench.codebook import usage_stats
from qbench.errors import ConfigError


class Quantizer(nn.Module):
    """Base class: subclasses set ``dim``, ``codebook_size``, ``tokens_per_position``
    and ``codebook_shared`` in ``__init__`` and implement ``forward``, ``encode``
    and ``decode``."""

    dim: int
    codebook_size: int
    tokens_per_position: int = 1
    codebook_shared: bool = True
    # True for a ceiling that does not quantize (the built-in ``identity``): no codes
    # (T = 0), infinite bits_per_position; reports keep it off rate axes and out of BD
    continuous: bool = False

    @property
    def bits_per_position(self) -> float:
        return float(self.tokens_per_position * math.log2(self.codebook_size))

    def code_stats(self, codes: torch.Tensor) -> dict[str, torch.Tensor]:
        return usage_stats(codes, self.codebook_size, shared=self.codebook_shared)

    def input_rows(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` (B, D, h, w), checked, as float32 rows (B*h*w, D) in the order of the codes."""
        self.check_input(z)
        return to_rows(z).float()

    def check_input(self, z: torch.Tensor) -> None:
        if z.dim() != 4 or z.shape[1] != self.dim:
            raise ConfigError(
                f"{type(self).__name__} expects latents of shape (B, {self.dim}, h, w), "
                f"got {tuple(z.shape)}"
            )

    def check_codes(self, codes: torch.Tensor) -> tuple[int, int, int]:
        """``codes`` as ``encode`` returns them, (B, h, w, T) with T = ``tokens_per_position``; returns (B, h, w).

        What ``decode`` checks first: codes of another quantizer (or another
        configuration of this one) are a ``ConfigError`` naming this one
        (its ``name`` attribute, else its class), not a shape error later.
        """
        label = getattr(self, "name", "") or type(self).__name__
        if codes.dim() != 4:
            raise ConfigError(f"{label} expects codes of shape (B, h, w, {self.tokens_per_position}), "
                              f"got {tuple(codes.shape)}")
        batch, height, width, tokens = codes.shape
        if tokens != self.tokens_per_position:
            raise ConfigError(f"{label}: codes carry {tokens} tokens per position, expected {self.tokens_per_position}")
        return batch, height, width


# -- option validation (raise before any tensor is made) ---------------------------


def require_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def require_float(name: str, value, low: float, high: float | None = None) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not (number >= low and (high is None or number <= high)):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ConfigError(f"{name} must be {allowed}, got {value!r}")
    return number


def require_choice(name: str, value, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


# -- layout --------------------------------------------------------------------------


def to_rows(z: torch.Tensor) -> torch.Tensor:
    """(B, D, h, w) -> (B*h*w, D), rows in (b, y, x) order like the codes."""
    return z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])


def from_rows(rows: torch.Tensor, batch: int, height: int, width: int) -> torch.Tensor:
    """(B*h*w, D) -> (B, D, h, w)."""
    return rows.reshape(batch, height, width, -1).permute(0, 3, 1, 2)


# -- the straight-through form and the VQ losses -----------------------------------


def straight_through(z_tilde: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """z~ + sg(q - z~): the value of q, the gradient of z~."""
    return z_tilde + (q - z_tilde).detach()


def codebook_loss(z_tilde: torch.Tensor, q: torch.Tensor, beta: float) -> torch.Tensor:
    """mean((q - sg(z~))^2) + beta * mean((sg(q) - z~)^2): codebook + commitment."""
    return F.mse_loss(q, z_tilde.detach()) + beta * commitment_loss(z_tilde, q)


def commitment_loss(z_tilde: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """mean((sg(q) - z~)^2), pulling the encoder towards its code."""
    return F.mse_loss(z_tilde, q.detach())


def float32_lookup():
    """Context for the lookup part of a forward: float32 even inside autocast."""
    return _NoAutocast()


class _NoAutocast:
    def __enter__(self):
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        self._contexts = [torch.autocast(device_type=d, enabled=False) for d in devices]
        for ctx in self._contexts:
            ctx.__enter__()
        return self

    def __exit__(self, *exc):
        for ctx in reversed(self._contexts):
            ctx.__exit__(*exc)
        return False


__all__ = [
    "Quantizer",
    "codebook_loss",
    "commitment_loss",
    "float32_lookup",
    "from_rows",
    "require_choice",
    "require_float",
    "require_int",
    "straight_through",
    "to_rows",
]
