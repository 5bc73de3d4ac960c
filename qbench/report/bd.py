"""Bjøntegaard delta: the average gap between two rate-distortion curves.

VCEG-M33 (Bjøntegaard 2001) fits a cubic polynomial through the points of
each curve and averages the difference of the two fits over the range both
curves cover:

- BD-rate: log-rate as a cubic in the metric, averaged over the common
  metric range; ``(10**avg - 1) * 100`` percent.  Negative = the test curve
  needs fewer bits for the same quality.
- BD-metric (BD-PSNR for PSNR): the metric as a cubic in log-rate, averaged
  over the common log-rate range, in the metric's own unit (test − anchor).

``method="pchip"`` replaces the cubic by a monotone piecewise-cubic Hermite
interpolant (the later common-test-condition variant).  For a
lower-is-better metric (rFID, LPIPS) BD-rate is computed on the negated
metric, so that quality still grows with rate and the sign keeps its
meaning; BD-metric stays test − anchor in the metric's unit, so there a
negative value is better.  The log base cancels in both numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

METHODS = ("cubic", "pchip")
MIN_OVERLAP = 0.75
CUBIC_POINTS = 4


@dataclass(frozen=True)
class BDResult:
    """``value`` is NaN when it cannot be computed; ``notes`` say why, or what to be wary of."""

    value: float
    overlap: float
    notes: tuple[str, ...] = field(default_factory=tuple)


def _integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float, method: str) -> float:
    order = np.argsort(x)
    x, y = x[order], y[order]
    if method == "cubic":
        # with more than 4 points polyfit is the least-squares cubic, as in VCEG-M33's spreadsheet
        antiderivative = np.polyint(np.polyfit(x, y, 3))
        return float(np.polyval(antiderivative, hi) - np.polyval(antiderivative, lo))
    # deferred: loads scipy only when this runs
    from scipy.interpolate import PchipInterpolator

    return float(PchipInterpolator(x, y).integrate(lo, hi))


def _strictly_monotone(values: np.ndarray) -> bool:
    steps = np.diff(values)
    return bool(np.all(steps > 0) or np.all(steps < 0))


def _checks(x_anchor, x_test, method: str, axis: str) -> tuple[list[str], list[str]]:
    """(reasons the average cannot be computed, cautions that go beside a value)."""
    problems, cautions = [], []
    need = CUBIC_POINTS if method == "cubic" else 2
    for name, x in (("anchor", x_anchor), ("test", x_test)):
        if len(x) < need:
            problems.append(f"{method} needs {need} points per curve, the {name} has {len(x)}")
        elif len(np.unique(x)) < len(x):
            problems.append(f"the {name} has two points at one {axis}")
        elif len(x) < CUBIC_POINTS:
            cautions.append(f"the {name} has {len(x)} points; a BD value wants at least {CUBIC_POINTS}")
    return problems, cautions


def _average_gap(x_anchor, y_anchor, x_test, y_test, method: str, axis: str) -> BDResult:
    """Mean of f_test − f_anchor over the common range of x, as the reference package defines it."""
    if method not in METHODS:
        raise ValueError(f"BD method must be one of {', '.join(METHODS)}, got {method!r}")
    x_anchor, y_anchor, x_test, y_test = (np.asarray(v, dtype=float) for v in (x_anchor, y_anchor, x_test, y_test))
    problems, notes = _checks(x_anchor, x_test, method, axis)
    if problems:
        return BDResult(math.nan, math.nan, tuple(problems))
    lo = max(x_anchor.min(), x_test.min())
    hi = min(x_anchor.max(), x_test.max())
    union = max(x_anchor.max(), x_test.max()) - min(x_anchor.min(), x_test.min())
    overlap = max(hi - lo, 0.0) / union if union > 0 else 0.0
    if overlap <= 0:
        return BDResult(math.nan, 0.0, (f"the curves share no {axis} range",))
    if overlap < MIN_OVERLAP - 1e-9:  # the tolerance keeps an exact 75% (rounded) from warning
        notes.append(f"the curves share only {overlap:.0%} of their {axis} range (< {MIN_OVERLAP:.0%})")
    gap = (_integral(x_test, y_test, lo, hi, method) - _integral(x_anchor, y_anchor, lo, hi, method)) / (hi - lo)
    return BDResult(float(gap), float(overlap), tuple(notes))


def _monotone_notes(rate, metric, method: str, who: str) -> tuple[list[str], bool]:
    """BD-rate inverts the curve: the metric must rise (or fall) strictly with rate."""
    order = np.argsort(rate)
    if len(rate) < 2 or _strictly_monotone(np.asarray(metric, dtype=float)[order]):
        return [], True
    if method == "pchip":
        return [f"the {who} metric is not monotone in rate; pchip cannot invert it"], False
    return [f"the {who} metric is not monotone in rate; the cubic fit is unreliable"], True


def bd_rate(rate_anchor, metric_anchor, rate_test, metric_test, *, method: str = "cubic", higher_is_better: bool = True) -> BDResult:
    """BD-rate in percent of bits; negative = the test needs fewer bits for the same quality."""
    sign = 1.0 if higher_is_better else -1.0
    quality_anchor = sign * np.asarray(metric_anchor, dtype=float)
    quality_test = sign * np.asarray(metric_test, dtype=float)
    notes, usable = [], True
    for who, rate, quality in (("anchor", rate_anchor, quality_anchor), ("test", rate_test, quality_test)):
        extra, ok = _monotone_notes(np.asarray(rate, dtype=float), quality, method, who)
        notes += extra
        usable &= ok
    if not usable:
        return BDResult(math.nan, math.nan, tuple(notes))
    gap = _average_gap(
        quality_anchor, np.log10(np.asarray(rate_anchor, dtype=float)),
        quality_test, np.log10(np.asarray(rate_test, dtype=float)),
        method, "metric",
    )
    value = float((10.0**gap.value - 1.0) * 100.0) if math.isfinite(gap.value) else math.nan
    return BDResult(value, gap.overlap, tuple(notes) + gap.notes)


def bd_metric(rate_anchor, metric_anchor, rate_test, metric_test, *, method: str = "cubic") -> BDResult:
    """BD-metric (BD-PSNR for PSNR): mean test − anchor over the common log-rate range, in the metric's unit."""
    return _average_gap(
        np.log10(np.asarray(rate_anchor, dtype=float)), metric_anchor,
        np.log10(np.asarray(rate_test, dtype=float)), metric_test,
        method, "rate",
    )
