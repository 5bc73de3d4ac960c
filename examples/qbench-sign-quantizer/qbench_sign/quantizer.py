"""Lookup-free sign quantization (LFQ without its entropy loss), arXiv 2310.05737.

Each of the D channels is quantised to -1 or +1; the D bits form one token
from an implicit codebook of 2**D entries.
"""


import torch
from torch import nn

import qbench
from qbench.codebook import code_histogram, perplexity, usage


class SignQuantizer(nn.Module):
    def __init__(self, dim: int, beta: float = 0.25):
        super().__init__()
        if not 1 <= dim <= 30:
            raise qbench.ConfigError(f"sign quantizer needs 1 <= dim <= 30, got {dim}")
        self.dim, self.beta = dim, beta
        self.register_buffer("powers", 2 ** torch.arange(dim), persistent=False)

    codebook_shared = True
    tokens_per_position = 1

    @property
    def codebook_size(self) -> int:
        return 2**self.dim

    @property
    def bits_per_position(self) -> float:
        return float(self.dim)

    def encode(self, z):
        bits = (z.float() > 0).long()  # (B, D, h, w)
        return (bits * self.powers.view(1, -1, 1, 1)).sum(1).unsqueeze(-1)

    def decode(self, codes):
        bits = (codes[..., 0].unsqueeze(1) // self.powers.view(1, -1, 1, 1)) % 2
        return bits.float() * 2 - 1

    def forward(self, z):
        q = torch.where(z > 0, 1.0, -1.0).to(z.dtype)
        loss = self.beta * (z - q.detach()).pow(2).mean()
        codes = self.encode(z)
        hist = code_histogram(codes, self.codebook_size)
        stats = {"usage": usage(hist)[0].item(), "perplexity": perplexity(hist)[0].item()}
        return qbench.QuantizerOutput(z + (q - z).detach(), codes, loss, stats)
