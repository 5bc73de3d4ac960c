"""Statistics over seeds: a mean with its confidence interval, and paired differences.

Seeds are the only source of repetition a benchmark has, and there are few
of them (often 3), so every interval here is a Student t interval, which is
exact for normal data at any n; a bootstrap over 3 values is bounded by
their minimum and maximum and under-covers (docs/statistics.md).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95


@dataclass(frozen=True)
class MeanCI:
    """A sample mean with its two-sided t interval; ``low``/``high`` are NaN when n < 2."""

    mean: float
    low: float
    high: float
    n: int
    std: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def t_quantile(n: int, level: float = LEVEL) -> float:
    """t_{(1+level)/2, n-1}, the multiplier of s/sqrt(n)."""
    # deferred: loads scipy only when this runs
    from scipy import stats

    return float(stats.t.ppf(0.5 + level / 2, n - 1))


def mean_ci(values: Iterable[float], level: float = LEVEL) -> MeanCI | None:
    """mean ± t_{0.975,n-1}·s/√n over the finite ``values``; None when there are none."""
    data = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    n = len(data)
    if n == 0:
        return None
    mean = float(data.mean())
    if n == 1:  # one seed: a number, but no spread to build an interval from
        return MeanCI(mean, math.nan, math.nan, 1, math.nan)
    std = float(data.std(ddof=1))
    half = t_quantile(n, level) * std / math.sqrt(n)
    return MeanCI(mean, mean - half, mean + half, n, std)


@dataclass(frozen=True)
class PairedDifference:
    """test − baseline over the seeds both have: mean, t interval, two-sided p."""

    mean: float
    low: float
    high: float
    pvalue: float
    n: int
    seeds: tuple

    @property
    def significant(self) -> bool:
        """The interval excludes 0 (never with fewer than 2 pairs)."""
        return self.n >= 2 and math.isfinite(self.low) and (self.low > 0 or self.high < 0)

    @property
    def verdict(self) -> str:
        if self.n < 2:
            return "not significant (fewer than 2 pairs)"
        return "significant" if self.significant else "not significant (CI covers 0)"


def paired_difference(test: Mapping, baseline: Mapping, level: float = LEVEL) -> PairedDifference | None:
    """Pair ``{seed: value}`` maps by seed; None when no seed is in both."""
    # deferred: loads scipy only when this runs
    from scipy import stats

    seeds = tuple(sorted(s for s in test if s in baseline))
    if not seeds:
        return None
    a = np.array([test[s] for s in seeds], dtype=float)
    b = np.array([baseline[s] for s in seeds], dtype=float)
    ci = mean_ci(a - b, level)
    pvalue = math.nan
    if len(seeds) >= 2:
        with warnings.catch_warnings():  # identical differences: scipy warns and returns NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            pvalue = float(stats.ttest_rel(a, b, alternative="two-sided").pvalue)
    return PairedDifference(ci.mean, ci.low, ci.high, pvalue, ci.n, seeds)


def one_sample(values: Iterable[float], level: float = LEVEL) -> tuple[MeanCI | None, float]:
    """t interval of ``values`` and the two-sided p of ``mean = 0`` (for per-seed BD values)."""
    # deferred: loads scipy only when this runs
    from scipy import stats

    data = [v for v in values if v is not None and math.isfinite(v)]
    ci = mean_ci(data, level)
    if ci is None or ci.n < 2:
        return ci, math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return ci, float(stats.ttest_1samp(data, 0.0).pvalue)
