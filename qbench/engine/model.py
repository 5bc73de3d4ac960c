"""The tokenizer: encoder -> quantizer -> decoder, assembled from the registries.

The GSQ paper (arXiv 2412.02632) and its baselines share this shape; only the
quantizer differs between the runs of one recipe.  Images enter in [-1, 1].
The quantizer runs in float32 even under autocast (its lookups must not be
rounded to bf16; vector-quantize-pytorch issues #114/#116 show why).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from qbench.errors import ConfigError
from qbench.platform.plugins import Registries, given_or_built


class Tokenizer(nn.Module):
    """``forward(x) -> (x_hat, QuantizerOutput)``; ``encode(x) -> codes``; ``decode(codes) -> x_hat``.

    Images are float tensors ``(B, 3, H, W)`` in [-1, 1], codes integer
    tensors ``(B, h, w, T)`` in ``[0, codebook_size)``; anything else is a
    ``ConfigError`` saying what was expected (docs/python-api.md), before a
    layer deep inside fails with a shape or index error.
    """

    identity = None  # the run's RunIdentity, when loaded from a run directory (load_trained)

    def __init__(self, backbone: nn.Module, quantizer: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.quantizer = quantizer

    @property
    def downsample(self) -> int:
        return int(getattr(self.backbone, "downsample", 1))

    def _quantize(self, z: torch.Tensor):
        # float32 lookups even under autocast; the decoder then sees the dtype it is run in
        with torch.autocast(device_type=z.device.type, enabled=False):
            return self.quantizer(z.float())

    def check_images(self, x: Any, what: str = "images") -> None:
        if not (torch.is_tensor(x) and x.is_floating_point() and x.dim() == 4 and x.shape[1] == 3):
            got = f"{x.dtype} {tuple(x.shape)}" if torch.is_tensor(x) else type(x).__name__
            raise ConfigError(f"{what} must be a float tensor of shape (B, 3, H, W) in [-1, 1], got {got}"
                              + (" (uint8 pixels: x.float() / 127.5 - 1)" if torch.is_tensor(x)
                                 and x.dtype == torch.uint8 else ""))

    def check_codes(self, codes: Any) -> None:
        if not torch.is_tensor(codes) or codes.is_floating_point() or codes.is_complex() or codes.dtype == torch.bool:
            got = str(codes.dtype) if torch.is_tensor(codes) else type(codes).__name__
            raise ConfigError(f"codes must be an integer tensor (B, h, w, T) as encode returns them, got {got}")
        size = int(getattr(self.quantizer, "codebook_size", 0) or 0)
        if size and codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= size):
            raise ConfigError(f"codes must be in [0, {size}) (the codebook size), got values from "
                              f"{int(codes.min())} to {int(codes.max())}")

    def forward(self, x: torch.Tensor):
        self.check_images(x)
        z = self.backbone.encode(x)
        out = self._quantize(z)
        x_hat = self.backbone.decode(out.z_q.to(z.dtype))
        return x_hat, out

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        self.check_images(x)
        z = self.backbone.encode(x)
        with torch.autocast(device_type=z.device.type, enabled=False):
            return self.quantizer.encode(z.float())

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        self.check_codes(codes)
        z_q = self.quantizer.decode(codes)
        return self.backbone.decode(z_q)

    @property
    def continuous(self) -> bool:
        """True for a ceiling quantizer (``identity``): no codes, evaluation goes through the latent."""
        return bool(getattr(self.quantizer, "continuous", False))

    @torch.no_grad()
    def encode_latent(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z_q, codes) of a continuous quantizer: the latent the decoder sees, and its empty codes."""
        z = self.backbone.encode(x)
        with torch.autocast(device_type=z.device.type, enabled=False):
            out = self.quantizer(z.float())
        return out.z_q, out.codes

    @torch.no_grad()
    def decode_latent(self, z_q: torch.Tensor) -> torch.Tensor:
        return self.backbone.decode(z_q)

    def parameter_counts(self) -> dict[str, int]:
        def count(module: nn.Module | None) -> int:
            return sum(p.numel() for p in module.parameters()) if module is not None else 0

        encoder = count(getattr(self.backbone, "encoder", None))
        decoder = count(getattr(self.backbone, "decoder", None))
        backbone_total = count(self.backbone)
        if encoder + decoder != backbone_total:  # a backbone without encoder/decoder attributes
            encoder, decoder = backbone_total, 0
        quantizer = count(self.quantizer)
        return {"encoder": encoder, "decoder": decoder, "quantizer": quantizer, "total": encoder + decoder + quantizer}

    def model_info(self) -> dict[str, Any]:
        q = self.quantizer
        return {
            "bits_per_position": float(getattr(q, "bits_per_position", 0.0)),
            "tokens_per_position": int(getattr(q, "tokens_per_position", 1)),
            "codebook_size": int(getattr(q, "codebook_size", 0)),
            "continuous": bool(getattr(q, "continuous", False)),
            "downsample": self.downsample,
            "parameters": self.parameter_counts(),
        }


def build_tokenizer(identity, regs: Registries | None = None) -> Tokenizer:
    """Backbone ``recipe.model.backbone`` (latent_dim + model options) + the quantizer of ``identity``.

    ``identity`` is a ``qbench.recipe.identity.RunIdentity``: the quantizer is built
    with its effective options, exactly what the run records.
    """
    regs = given_or_built(regs)
    recipe = identity.recipe
    backbone = regs.backbones.create(recipe.model.backbone, latent_dim=recipe.model.latent_dim, **recipe.model.options)
    quantizer = regs.quantizers.create(identity.quantizer, **identity.options)
    return Tokenizer(backbone, quantizer)


def load_trained(run_dir: str | Path, use_ema: bool | None = None, regs: Registries | None = None) -> tuple[Tokenizer, Any]:
    """The tokenizer of a finished (or interrupted) run, in eval mode, and the run's identity.

    Its weights are the ones the run was scored with: the EMA weights when the
    run kept them and its recipe says ``eval.use_ema`` (``use_ema`` overrides
    that).  Needs no data: what ``qbench.load_tokenizer`` returns.
    """
    # deferred: loads torch only when this runs
    from qbench.rundir import checkpoint

    run_dir = Path(run_dir)
    state = checkpoint.load(run_dir)
    identity = checkpoint.run_identity(state)
    tokenizer = build_tokenizer(identity, regs=regs)
    if use_ema is None:
        use_ema = identity.recipe.eval.use_ema
    weights = state["ema"] if use_ema and state.get("ema") is not None else state["model"]
    try:
        tokenizer.load_state_dict(weights)
    except RuntimeError as exc:
        raise ConfigError(f"checkpoint in {run_dir} does not fit its own config: {checkpoint.mismatch(exc)}") from None
    tokenizer.eval()
    return tokenizer, identity


def load_tokenizer(run_dir: str | Path, use_ema: bool | None = None, regs: Registries | None = None):
    """Rebuild a finished (or interrupted) run for re-scoring.

    Returns ``(tokenizer, identity, dataset)``: the tokenizer of
    ``load_trained``, the run's identity, and its evaluation split.
    """
    # deferred: loads torch only when this runs
    from qbench.engine.data import build_dataset

    tokenizer, identity = load_trained(run_dir, use_ema, regs)
    recipe = identity.recipe
    dataset = build_dataset(recipe, recipe.eval.split, regs=regs)
    return tokenizer, identity, dataset
