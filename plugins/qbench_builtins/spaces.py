"""The built-in quantizers' search spaces: what ``qbench tune`` may vary, at a given rate.

Each function is ``space(rate, dims) -> SearchSpace`` (``qbench.search_space``):
``rate`` the study's bits per position, ``dims`` the latent widths it may use.
Only options the constructors really take appear, with ranges around the
references' defaults (docs/quantizers.md): commitment weights on a log scale
around 0.25, entropy weights around 0.1, temperatures around their defaults.
Options left out on purpose: IBQ's ``init`` (``normal`` collapses at small
widths, docs/quantizers.md), GSQ's and VQ's codebook ``init`` and
``l2_lookup`` (GSQ's is automatic by group width), LFQ/BSQ's
``entropy_group_size`` (an approximation for large L, not a modelling choice).
This module imports no torch.
"""

from __future__ import annotations

import math

from qbench import Choice, ConfigError, FloatRange, SearchSpace

BETA = FloatRange(0.05, 1.0, log=True)  # commitment weight; 0.25 in VQ-VAE, GSQ, RVQ, SimVQ, IBQ
FSQ_PAPER_LEVELS = {8: [8, 6, 5], 10: [8, 5, 5, 5], 12: [7, 5, 5, 5, 5], 14: [8, 8, 8, 6, 5], 16: [8, 8, 8, 5, 5, 5]}
FSQ_MAX_CHANNELS = 6  # longer tuples: levels below 3, the FSQ paper's low end
RATE_SLACK = 0.1  # bits an FSQ tuple may miss the rate by (the paper's 8-bit levels give 7.91)


def whole_bits(name: str, rate: float) -> int:
    if float(rate) != int(rate) or rate < 1:
        raise ConfigError(f"{name} declares layouts at whole bit rates (2^rate codes), got {rate:g}")
    return int(rate)


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def gsq(rate: float, dims: tuple[int, ...]) -> SearchSpace:
    """G groups of width d = D / G, each a code of rate / G bits: every (D, G) with G dividing D and the rate."""
    bits = whole_bits("gsq", rate)
    layouts = [{"dim": d, "groups": g, "codebook_size": 2 ** (bits // g)}
               for d in dims for g in divisors(bits) if d % g == 0]
    return SearchSpace(options={"beta": BETA}, layouts=layouts,
                       note="layouts: latent width D x groups G, codebook 2^(rate/G) per group (GSQ paper section 3)")


def vq(rate: float, dims: tuple[int, ...]) -> SearchSpace:
    bits = whole_bits("vq", rate)
    return SearchSpace(
        options={
            "beta": BETA,
            "dead_code_threshold": FloatRange(0.0, 2.0),  # 0: no restart; the recipes use 1
            "ema_decay": Choice((0.0, 0.9, 0.99)),  # 0: codebook by gradient; else its EMA rate
        },
        layouts=[{"codebook_size": 2 ** bits}],
    )


def rvq(rate: float, dims: tuple[int, ...]) -> SearchSpace:
    """S stages of 2^(rate/S) codes each, at least 4 codes a stage."""
    bits = whole_bits("rvq", rate)
    layouts = [{"stages": s, "codebook_size": 2 ** (bits // s)} for s in divisors(bits) if bits // s >= 2]
    return SearchSpace(options={"beta": BETA}, layouts=layouts)


def _balanced_levels(bits: int, channels: int) -> list[int] | None:
    """The tuple of ``channels`` levels, each floor or ceil of 2^(bits/channels), closest to ``bits`` bits."""
    base = 2 ** (bits / channels)
    low = max(2, math.floor(base))
    best = None
    for high_count in range(channels + 1):
        levels = [low + 1] * high_count + [low] * (channels - high_count)
        miss = abs(sum(math.log2(v) for v in levels) - bits)
        if best is None or miss < best[0] - 1e-12:
            best = (miss, levels)
    return best[1] if best and best[0] <= RATE_SLACK else None


def fsq_levels(bits: int) -> list[list[int]]:
    """Level tuples of about ``bits`` bits: the FSQ paper's (when it has one) and one balanced tuple per length."""
    found = [FSQ_PAPER_LEVELS[bits]] if bits in FSQ_PAPER_LEVELS else []
    for channels in range(2, min(bits, FSQ_MAX_CHANNELS) + 1):
        levels = _balanced_levels(bits, channels)
        if levels is not None and sorted(levels) not in [sorted(f) for f in found]:
            found.append(levels)
    return found


def fsq(rate: float, dims: tuple[int, ...]) -> SearchSpace:
    bits = whole_bits("fsq", rate)
    return SearchSpace(layouts=[{"levels": levels} for levels in fsq_levels(bits)],
                       note="layouts: level tuples within 0.1 bit of the rate (the FSQ paper's first)")


def lfq(rate: float, dims: tuple[int, ...]) -> SearchSpace:
    return SearchSpace(
        options={
            "entropy_weight": FloatRange(0.01, 1.0, log=True),
            "commitment_weight": FloatRange(0.01, 1.0, log=True),
            "diversity_gamma": FloatRange(0.5, 2.0),
            "inv_temperature": FloatRange(10.0, 1000.0, log=True),
        },
        layouts=[{"bits": whole_bits("lfq", rate)}],
    )


def bsq(rate: float, dims: tuple[int, ...]) -> SearchSpace:
    return SearchSpace(
        options={
            "entropy_weight": FloatRange(0.01, 1.0, log=True),
            "commitment_weight": FloatRange(0.0, 0.5),  # the official default is 0
            "diversity_gamma": FloatRange(0.5, 2.0),
            "inv_temperature": FloatRange(0.1, 10.0, log=True),
        },
        layouts=[{"bits": whole_bits("bsq", rate)}],
    )


def simvq(rate: float, dims: tuple[int, ...]) -> SearchSpace:
    return SearchSpace(options={"beta": BETA, "projection_bias": Choice((True, False))},
                       layouts=[{"codebook_size": 2 ** whole_bits("simvq", rate)}])


def ibq(rate: float, dims: tuple[int, ...]) -> SearchSpace:
    return SearchSpace(
        options={
            "beta": BETA,
            "entropy_weight": FloatRange(0.005, 0.5, log=True),
            "inv_temperature": FloatRange(10.0, 1000.0, log=True),
        },
        layouts=[{"codebook_size": 2 ** whole_bits("ibq", rate)}],
    )
