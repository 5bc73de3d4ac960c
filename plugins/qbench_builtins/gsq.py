"""Grouped Spherical Quantization (GSQ), arXiv 2412.02632, after its reference code.

Each D-vector is split into G contiguous groups of d = D / G channels (channel
g * d + j belongs to group g).  All groups look up one shared V x d codebook C
(per-group codebooks as an option), whose rows start on the unit sphere
(``init="spherical"``: l2(N(0, I))).  The lookup compares l2-normalised vectors,
k = argmin |l2(z_g) - l2(c)|^2 (paper Eq. 5), and is off automatically for
d <= 2, where normalising would collapse a group to a sign (paper section 3.2).
The output is the codebook row as stored, q = C[k], not re-normalised, in the
straight-through form z~ + sg(q - z~) with z~ = l2(z_g) (or z_g without the
l2 lookup).  The loss is mean((q - sg(z~))^2) + beta * mean((sg(q) - z~)^2),
beta = 0.25, and the codebook learns by gradient only: no EMA, no entropy loss.

Each position carries G tokens, so the effective vocabulary is V^G and the rate
G * log2 V bits.  With G = 1, no l2 lookup and ``init="uniform"`` this is the
VQ-VAE baseline exactly.

Choices where the paper and code leave room: ``init="uniform"`` is U(-1/V, 1/V)
as in qbench's original design, and U(-1, 1) for d = 1 as in the reference code (a 1-d code
in (-1/V, 1/V) would start out all but identical).  Ties in the lookup go to the
lowest index (the reference code breaks them at random; exact ties have
probability zero for real-valued inputs).  ``codebook`` is always a
(books, V, d) parameter, books = 1 when shared, G otherwise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from qbench import ConfigError, QuantizerOutput
from qbench.lookup import nearest_code
from qbench.quantizer import (
    Quantizer,
    codebook_loss,
    float32_lookup,
    from_rows,
    require_choice,
    require_float,
    require_int,
    straight_through,
    to_rows,
)

INITS = ("spherical", "uniform")


def init_codebook(init: str, books: int, size: int, dim: int) -> torch.Tensor:
    if init == "spherical":
        return F.normalize(torch.randn(books, size, dim), dim=-1)
    bound = 1.0 if dim == 1 else 1.0 / size
    return torch.empty(books, size, dim).uniform_(-bound, bound)


class GroupedSphericalQuantizer(Quantizer):
    name = "gsq"  # what its errors call it

    def __init__(
        self,
        dim: int,
        groups: int = 1,
        codebook_size: int = 1024,
        init: str = "spherical",
        l2_lookup: bool | None = None,
        beta: float = 0.25,
        shared_codebook: bool = True,
    ):
        super().__init__()
        require_int("dim", dim, 1)
        require_int("groups", groups, 1)
        if dim % groups:
            # list the divisors only for sizes a latent can have (listing them for a typo like 10**20 never ends)
            divisors = [g for g in range(1, dim + 1) if dim % g == 0] if dim <= 65536 else []
            raise ConfigError(
                f"gsq: dim {dim} is not divisible by groups {groups}"
                + (f"; pick groups among {divisors}" if divisors else "")
            )
        require_int("codebook_size", codebook_size, 2)
        require_choice("init", init, INITS)
        if l2_lookup is not None and not isinstance(l2_lookup, bool):
            raise ConfigError(f"l2_lookup must be true, false or unset (auto), got {l2_lookup!r}")
        self.beta = require_float("beta", beta, 0.0)
        if not isinstance(shared_codebook, bool):
            raise ConfigError(f"shared_codebook must be true or false, got {shared_codebook!r}")

        self.dim = dim
        self.groups = groups
        self.group_dim = dim // groups
        self.codebook_size = codebook_size
        self.tokens_per_position = groups
        self.codebook_shared = shared_codebook
        self.init = init
        # normalising a 1- or 2-d group collapses it to a sign or an angle (paper section 3.2)
        self.l2_lookup = self.group_dim > 2 if l2_lookup is None else l2_lookup
        books = 1 if shared_codebook else groups
        self.codebook = torch.nn.Parameter(init_codebook(init, books, codebook_size, self.group_dim))

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, groups={self.groups}, codebook_size={self.codebook_size}, "
            f"init={self.init!r}, l2_lookup={self.l2_lookup}, beta={self.beta}, "
            f"shared_codebook={self.codebook_shared}"
        )

    def _groups_of(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D, h, w) -> float32 (N, G, d)."""
        self.check_input(z)
        return to_rows(z).float().reshape(-1, self.groups, self.group_dim)

    def _lookup(self, x: torch.Tensor) -> torch.Tensor:
        """(N, G, d) -> int64 (N, G) nearest codes."""
        n = x.shape[0]
        if self.codebook_shared:
            flat = nearest_code(x.reshape(-1, self.group_dim), self.codebook[0], normalize=self.l2_lookup)
            return flat.view(n, self.groups)
        return torch.stack(
            [nearest_code(x[:, g], self.codebook[g], normalize=self.l2_lookup) for g in range(self.groups)],
            dim=1,
        )

    def _rows(self, codes: torch.Tensor) -> torch.Tensor:
        """int64 (N, G) -> the stored codebook rows (N, G, d)."""
        if self.codebook_shared:
            return F.embedding(codes, self.codebook[0])
        book = torch.arange(self.groups, device=codes.device)
        return self.codebook[book, codes]

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        batch, _, height, width = z.shape
        with float32_lookup():
            x = self._groups_of(z)
            z_tilde = F.normalize(x, dim=-1) if self.l2_lookup else x
            codes = self._lookup(x)
            q = self._rows(codes)
            loss = codebook_loss(z_tilde, q, self.beta)
            out = straight_through(z_tilde, q).reshape(-1, self.dim)
        z_q = from_rows(out, batch, height, width).to(z.dtype)
        codes = codes.view(batch, height, width, self.groups)
        return QuantizerOutput(z_q, codes, loss, self.code_stats(codes))

    @torch.no_grad()
    def encode(self, z: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = z.shape
        with float32_lookup():
            codes = self._lookup(self._groups_of(z))
        return codes.view(batch, height, width, self.groups)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        batch, height, width = self.check_codes(codes)
        rows = self._rows(codes.reshape(-1, self.tokens_per_position).long()).reshape(-1, self.dim)
        return from_rows(rows, batch, height, width)
