"""The VQ-VAE baseline (van den Oord et al., arXiv 1711.00937), as the GSQ paper compares it.

A V x D codebook initialised U(-1/V, 1/V), Euclidean nearest-code lookup, the
straight-through output z + sg(q - z), and the loss
mean((q - sg(z))^2) + beta * mean((sg(q) - z)^2) with beta = 0.25; the codebook
learns by gradient.  This is GSQ with G = 1, no l2 lookup and uniform init.

Opt-in options, all off by default so the default is the classic baseline:

- ``l2_lookup``: compare l2-normalised vectors (ViT-VQGAN / LlamaGen style); as
  in GSQ, the straight-through base is l2(z) and the output the stored row.
- ``ema_decay`` > 0: the codebook is a buffer updated by exponential moving
  averages (VQ-VAE appendix A.1): N_i <- decay N_i + (1 - decay) n_i,
  m_i <- decay m_i + (1 - decay) sum of the inputs assigned to i, and
  c_i = m_i / N~_i with Laplace smoothing N~_i = (N_i + eps) / (N + V eps) N.
  The loss is then beta * commitment only.  N starts at 1 and m at the initial
  codebook, so an unused code keeps its place instead of jumping to m / eps.
  Under ``torch.distributed`` every rank gathers the rows and codes of the
  whole global batch (in rank order, which is the order one process would see
  them in), so the statistics are exactly those of one process on that batch.
- ``dead_code_threshold`` > 0: dead-code restart.  Every training step keeps an
  exponential moving average of how many inputs each code was assigned (decay
  ``ema_decay``, or 0.99 for a gradient-learned codebook; the average starts at 0).
  A code whose average falls below the threshold is moved to a randomly chosen
  input of the current (global) batch and its average reset to the threshold;
  under ``torch.distributed`` rank 0 draws the inputs and broadcasts them.  The first training step therefore restarts every code
  from the data, as vector-quantize-pytorch's ``threshold_ema_dead_code`` does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from qbench import ConfigError, QuantizerOutput
from qbench.lookup import nearest_code
from qbench.quantizer import (
    Quantizer,
    codebook_loss,
    commitment_loss,
    float32_lookup,
    from_rows,
    require_float,
    require_int,
    straight_through,
)

COUNT_DECAY_WITHOUT_EMA = 0.99


def _gather(tensor: torch.Tensor) -> torch.Tensor:
    """Every rank's rows of ``tensor`` concatenated in rank order; ``tensor`` itself in one process.

    Ranks may hold different numbers of rows: each pads to the longest and the padding is cut off.
    """
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    world = dist.get_world_size()
    count = torch.tensor([tensor.shape[0]], dtype=torch.int64, device=tensor.device)
    counts = [torch.zeros_like(count) for _ in range(world)]
    dist.all_gather(counts, count)
    sizes = [int(c.item()) for c in counts]
    padded = tensor.new_zeros((max(sizes), *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    pieces = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(pieces, padded.contiguous())
    return torch.cat([piece[:size] for piece, size in zip(pieces, sizes)])


def _broadcast(tensor: torch.Tensor) -> torch.Tensor:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        dist.broadcast(tensor, src=0)
    return tensor


class VectorQuantizer(Quantizer):
    name = "vq"  # what its errors call it

    def __init__(
        self,
        dim: int,
        codebook_size: int = 1024,
        beta: float = 0.25,
        l2_lookup: bool = False,
        ema_decay: float = 0.0,
        dead_code_threshold: float = 0.0,
        ema_epsilon: float = 1e-5,
    ):
        super().__init__()
        require_int("dim", dim, 1)
        require_int("codebook_size", codebook_size, 2)
        self.beta = require_float("beta", beta, 0.0)
        if not isinstance(l2_lookup, bool):
            raise ConfigError(f"l2_lookup must be true or false, got {l2_lookup!r}")
        self.ema_decay = require_float("ema_decay", ema_decay, 0.0, 1.0)
        if self.ema_decay >= 1.0:
            raise ConfigError("ema_decay must be in [0, 1): 0 learns the codebook by gradient")
        self.dead_code_threshold = require_float("dead_code_threshold", dead_code_threshold, 0.0)
        self.ema_epsilon = require_float("ema_epsilon", ema_epsilon, 0.0)

        self.dim = dim
        self.codebook_size = codebook_size
        self.tokens_per_position = 1
        self.codebook_shared = True
        self.l2_lookup = l2_lookup
        weight = torch.empty(codebook_size, dim).uniform_(-1.0 / codebook_size, 1.0 / codebook_size)
        if self.ema_decay > 0:
            self.register_buffer("codebook", weight)
            self.register_buffer("ema_count", torch.ones(codebook_size))
            self.register_buffer("ema_sum", weight.clone())
        else:
            self.codebook = torch.nn.Parameter(weight)
        if self.dead_code_threshold > 0:
            self.register_buffer("usage_count", torch.zeros(codebook_size))

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, codebook_size={self.codebook_size}, beta={self.beta}, "
            f"l2_lookup={self.l2_lookup}, ema_decay={self.ema_decay}, "
            f"dead_code_threshold={self.dead_code_threshold}"
        )

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        batch, _, height, width = z.shape
        with float32_lookup():
            x = self.input_rows(z)
            z_tilde = F.normalize(x, dim=-1) if self.l2_lookup else x
            codes = nearest_code(x, self.codebook, normalize=self.l2_lookup)
            q = F.embedding(codes, self.codebook)
            if self.ema_decay > 0:
                loss = self.beta * commitment_loss(z_tilde, q)
            else:
                loss = codebook_loss(z_tilde, q, self.beta)
            out = straight_through(z_tilde, q)
            if self.training:
                self._update(z_tilde.detach(), codes)
        z_q = from_rows(out, batch, height, width).to(z.dtype)
        codes = codes.view(batch, height, width, 1)
        return QuantizerOutput(z_q, codes, loss, self.code_stats(codes))

    @torch.no_grad()
    def _update(self, x: torch.Tensor, codes: torch.Tensor) -> None:
        """EMA codebook step and dead-code restart (training only)."""
        if self.ema_decay <= 0 and self.dead_code_threshold <= 0:
            return
        # the global batch on every rank: summing per-rank partial sums instead would round differently
        x, codes = _gather(x), _gather(codes)
        counts = torch.bincount(codes, minlength=self.codebook_size).float()
        if self.ema_decay > 0:
            sums = torch.zeros_like(self.ema_sum).index_add_(0, codes, x)
            decay = self.ema_decay
            self.ema_count.mul_(decay).add_(counts, alpha=1 - decay)
            self.ema_sum.mul_(decay).add_(sums, alpha=1 - decay)
            total = self.ema_count.sum()
            eps = self.ema_epsilon
            smoothed = (self.ema_count + eps) / (total + self.codebook_size * eps) * total
            self.codebook.copy_(self.ema_sum / smoothed.unsqueeze(1))
        if self.dead_code_threshold > 0:
            decay = self.ema_decay if self.ema_decay > 0 else COUNT_DECAY_WITHOUT_EMA
            self.usage_count.mul_(decay).add_(counts, alpha=1 - decay)
            self._restart_dead_codes(x)

    def _restart_dead_codes(self, x: torch.Tensor) -> None:
        dead = self.usage_count < self.dead_code_threshold
        n_dead = int(dead.sum())  # identical on every rank: the counts come from the same global batch
        if n_dead == 0:
            return
        picks = torch.randint(x.shape[0], (n_dead,), device=x.device)
        new_rows = _broadcast(x[picks].contiguous())
        self.codebook.data[dead] = new_rows
        self.usage_count[dead] = self.dead_code_threshold
        if self.ema_decay > 0:
            self.ema_count[dead] = self.dead_code_threshold
            self.ema_sum[dead] = new_rows * self.dead_code_threshold

    @torch.no_grad()
    def encode(self, z: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = z.shape
        with float32_lookup():
            codes = nearest_code(self.input_rows(z), self.codebook, normalize=self.l2_lookup)
        return codes.view(batch, height, width, 1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        batch, height, width = self.check_codes(codes)
        rows = F.embedding(codes.reshape(-1).long(), self.codebook)
        return from_rows(rows, batch, height, width)
