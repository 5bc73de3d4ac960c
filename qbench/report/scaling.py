"""The GSQ paper's scaling law, fitted to a grid of latent widths D and codebook sizes V.

App. C.2 of GSQ (arXiv 2412.02632) models rFID over a D x V grid as

    metric = a / (log2 V)^b + c * D^e

and reports a = 411.63, b = 2.8375, c = 0.1601, e = 0.1956 for its F8 grid.
The fit is least squares (``scipy.optimize.curve_fit``) over every seed's
run, started from the best point of a coarse grid over (b, e) with a and c
solved linearly there, because the exponents make a cold start wander off.
Parameter intervals are t intervals from the covariance of the estimate.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

PARAMETERS = ("a", "b", "c", "e")
POOR_R2 = 0.9
LEVEL = 0.95


def law(x: np.ndarray, a: float, b: float, c: float, e: float) -> np.ndarray:
    """``x`` is (2, N): rows D and V."""
    d, v = x
    return a / np.log2(v) ** b + c * d**e


@dataclass(frozen=True)
class ScalingFit:
    """Estimates with their 95% intervals (NaN when not determined), residual RMS and R²."""

    estimates: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    rms: float
    r2: float
    points: int
    cells: int
    warnings: tuple[str, ...] = field(default_factory=tuple)


def _linear_start(d: np.ndarray, v: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float]:
    """For fixed (b, e) the law is linear in (a, c): solve that on a grid and keep the best."""
    best, start = math.inf, (1.0, 1.0, 1.0, 0.0)
    log_v = np.log2(v)
    for b in np.linspace(0.1, 6.0, 60):
        for e in np.linspace(-2.0, 2.0, 41):
            design = np.column_stack([log_v**-b, d**e])
            coef, *_ = np.linalg.lstsq(design, y, rcond=None)
            sse = float(np.sum((design @ coef - y) ** 2))
            if sse < best:
                best, start = sse, (float(coef[0]), float(b), float(coef[1]), float(e))
    return start


def fit_scaling(d, v, y) -> ScalingFit:
    """Fit the law to runs at latent widths ``d``, codebook sizes ``v`` (> 2) and metric values ``y``."""
    # deferred: loads scipy only when this runs
    from scipy import optimize, stats

    d, v, y = (np.asarray(x, dtype=float) for x in (d, v, y))
    cells = len({(a, b) for a, b in zip(d.tolist(), v.tolist())})
    notes = []
    if cells < 2 * len(PARAMETERS):
        notes.append(
            f"grid too small: {cells} (D, V) cells for {len(PARAMETERS)} parameters "
            f"(want at least {2 * len(PARAMETERS)}); the estimates are not trustworthy"
        )
    start = _linear_start(d, v, y)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an undetermined covariance is reported below, in words
            estimate, covariance = optimize.curve_fit(law, np.vstack([d, v]), y, p0=start, maxfev=20000)
    except (RuntimeError, ValueError) as exc:
        notes.append(f"least squares did not converge ({exc}); showing the grid start")
        estimate, covariance = np.asarray(start), np.full((4, 4), np.inf)
    residuals = y - law(np.vstack([d, v]), *estimate)
    rms = float(np.sqrt(np.mean(residuals**2)))
    total = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(residuals**2)) / total if total > 0 else math.nan
    dof = len(y) - len(PARAMETERS)
    errors = np.sqrt(np.diag(covariance)) if np.all(np.isfinite(covariance)) else np.full(4, np.inf)
    if dof > 0 and np.all(np.isfinite(errors)):
        half = stats.t.ppf(0.5 + LEVEL / 2, dof) * errors
        intervals = {p: (float(m - h), float(m + h)) for p, m, h in zip(PARAMETERS, estimate, half)}
    else:
        notes.append("the parameters are not determined by these points (no finite covariance)")
        intervals = {p: (math.nan, math.nan) for p in PARAMETERS}
    if not (r2 >= POOR_R2):
        notes.append(f"poor fit: R² = {r2:.2f} (< {POOR_R2}); the law does not describe these runs")
    estimates = {p: float(m) for p, m in zip(PARAMETERS, estimate)}
    return ScalingFit(estimates, intervals, rms, r2, len(y), cells, tuple(notes))
