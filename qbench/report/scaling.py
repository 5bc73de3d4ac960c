"""The GSQ paper's scaling law, fitted to a grid of latent widths D and codebook sizes V.

App. C.2 of GSQ (arXiv 2412.02632) models rFID over a D x V grid as

    metric = a / (log2 V)^b + c * D^e

and reports a = 411.63, b = 2.8375, c = 0.1601, e = 0.1956 for its F8 grid.
The fit is least squares (``scipy.optimize.curve_fit``) over every seed's
run.  The exponents make a single start unreliable, so the fit starts from
every local minimum of the profiled sum of squares over a grid of (b, e)
(where a and c are solved linearly) and keeps the best optimum; the others
are kept too, because an optimum that fits about as well with other
parameters says the data do not pin them down (qbench.report.lawcheck).
Parameter intervals here are t intervals from the covariance of the
estimate; the correlation matrix comes from the same covariance.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

PARAMETERS = ("a", "b", "c", "e")
POOR_R2 = 0.9
LEVEL = 0.95
B_GRID = np.round(np.arange(-2.0, 6.0001, 0.05), 4)
E_GRID = np.round(np.arange(-3.0, 3.0001, 0.05), 4)


def law(x: np.ndarray, a: float, b: float, c: float, e: float) -> np.ndarray:
    """``x`` is (2, N): rows D and V."""
    d, v = x
    return a / np.log2(v) ** b + c * d**e


def jacobian(x: np.ndarray, a: float, b: float, c: float, e: float) -> np.ndarray:
    """d law / d (a, b, c, e), (N, 4): exact derivatives spare curve_fit its finite differences."""
    d, v = x
    log_v = np.log2(v)
    v_term, d_term = log_v**-b, d**e
    return np.column_stack([v_term, -a * np.log(log_v) * v_term, d_term, c * np.log(d) * d_term])


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
    sse: float = math.nan
    correlation: np.ndarray | None = None  # 4 x 4, from the covariance; None when it is not finite
    optima: tuple[tuple[tuple[float, ...], float], ...] = ()  # (parameters, SSE) of each distinct optimum, best first


def profile(d: np.ndarray, v: np.ndarray, y: np.ndarray, b_grid: np.ndarray = B_GRID,
            e_grid: np.ndarray = E_GRID) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sum of squares over the (b, e) grid with a and c solved by least squares there: (sse, a, c)."""
    u = np.log2(v)[None, :] ** -b_grid[:, None]  # (nb, N)
    w = d[None, :] ** e_grid[:, None]  # (ne, N)
    uu, ww, uw = (u * u).sum(1)[:, None], (w * w).sum(1)[None, :], u @ w.T
    uy, wy = (u @ y)[:, None], (w @ y)[None, :]
    det = uu * ww - uw**2
    with np.errstate(divide="ignore", invalid="ignore"):
        a = (ww * uy - uw * wy) / det
        c = (uu * wy - uw * uy) / det
        sse = float(y @ y) - a * uy - c * wy
    singular = ~np.isfinite(sse) | (np.abs(det) <= 1e-9 * uu * ww)  # b = 0 and e = 0: two constant columns
    sse[singular] = np.inf
    return sse, a, c


def starts(d: np.ndarray, v: np.ndarray, y: np.ndarray, limit: int = 12) -> list[tuple[float, float, float, float]]:
    """The grid's local minima of the profiled sum of squares, best first (at most ``limit``)."""
    sse, a, c = profile(d, v, y)
    padded = np.pad(sse, 1, constant_values=np.inf)
    neighbours = np.stack([padded[1 + i:1 + i + sse.shape[0], 1 + j:1 + j + sse.shape[1]]
                           for i in (-1, 0, 1) for j in (-1, 0, 1) if (i, j) != (0, 0)])
    minima = np.argwhere(np.isfinite(sse) & (sse <= neighbours.min(0)))
    minima = sorted(minima.tolist(), key=lambda ij: sse[ij[0], ij[1]])[:limit]
    return [(float(a[i, j]), float(B_GRID[i]), float(c[i, j]), float(E_GRID[j])) for i, j in minima]


def _linear(d, v, y, b: float, e: float) -> tuple[np.ndarray, np.ndarray]:
    """(a, c) by least squares at fixed exponents (the 2 x 2 normal equations), and the residuals."""
    u, w = np.log2(v) ** -b, d**e
    uu, ww, uw, uy, wy = u @ u, w @ w, u @ w, u @ y, w @ y
    det = uu * ww - uw * uw
    a, c = (ww * uy - uw * wy) / det, (uu * wy - uw * uy) / det
    return np.array([a, c]), y - a * u - c * w


def exponents(d, v, y, b0: float, e0: float) -> tuple[float, float, float, float] | None:
    """The optimum near (b0, e0) with a and c projected out (variable projection): two well-conditioned unknowns."""
    # deferred: loads scipy only when this runs
    from scipy import optimize

    try:
        with np.errstate(all="ignore"):
            found, _, _, _, status = optimize.leastsq(lambda p: _linear(d, v, y, *p)[1], [b0, e0], full_output=True)
    except (ValueError, TypeError, np.linalg.LinAlgError):
        return None
    if status not in (1, 2, 3, 4):
        return None
    b, e = map(float, found)
    (a, c), _ = _linear(d, v, y, b, e)
    params = (float(a), b, float(c), e)
    return params if all(map(math.isfinite, params)) else None


def least_squares(d, v, y, p0) -> tuple[np.ndarray, np.ndarray] | None:
    """The optimum near ``p0``: (estimate, covariance), None when it fails.

    The exponents are found with a and c projected out; curve_fit then
    starts at that optimum, where it only has to compute the covariance.
    """
    # deferred: loads scipy only when this runs
    from scipy import optimize

    projected = exponents(d, v, y, p0[1], p0[3])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an undetermined covariance is reported in words
            estimate, covariance = optimize.curve_fit(law, np.vstack([d, v]), y, p0=projected or p0, jac=jacobian,
                                                      maxfev=20000)
    except (RuntimeError, ValueError, FloatingPointError):
        return None
    return (estimate, covariance) if np.all(np.isfinite(estimate)) else None


def _distinct(optima: list[tuple[np.ndarray, np.ndarray, float]]) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Optima, best first, without the repeats several starts reach (parameters within 0.1%)."""
    kept: list[tuple[np.ndarray, np.ndarray, float]] = []
    for found in sorted(optima, key=lambda o: o[2]):
        if not any(np.allclose(found[0], k[0], rtol=1e-3, atol=1e-6) for k in kept):
            kept.append(found)
    return kept


def fit_scaling(d, v, y) -> ScalingFit:
    """Fit the law to runs at latent widths ``d``, codebook sizes ``v`` (> 2) and metric values ``y``."""
    # deferred: loads scipy only when this runs
    from scipy import stats

    d, v, y = (np.asarray(x, dtype=float) for x in (d, v, y))
    x = np.vstack([d, v])
    cells = len({(a, b) for a, b in zip(d.tolist(), v.tolist())})
    notes = []
    if cells < 2 * len(PARAMETERS):
        notes.append(
            f"grid too small: {cells} (D, V) cells for {len(PARAMETERS)} parameters "
            f"(want at least {2 * len(PARAMETERS)}); the estimates are not trustworthy"
        )
    begin = starts(d, v, y) or [(1.0, 1.0, 1.0, 0.5)]
    optima = []
    for p0 in begin:
        found = least_squares(d, v, y, p0)
        if found is not None:
            optima.append((*found, float(np.sum((y - law(x, *found[0])) ** 2))))
    optima = _distinct(optima)
    if optima:
        estimate, covariance, _ = optima[0]
    else:
        notes.append("least squares did not converge from any start; showing the best grid start")
        estimate, covariance = np.asarray(begin[0]), np.full((4, 4), np.inf)
    residuals = y - law(x, *estimate)
    sse = float(np.sum(residuals**2))
    total = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - sse / total if total > 0 else math.nan
    dof = len(y) - len(PARAMETERS)
    finite = np.all(np.isfinite(covariance))
    errors = np.sqrt(np.diag(covariance)) if finite else np.full(4, np.inf)
    correlation = None
    if dof > 0 and finite and np.all(errors > 0):
        half = stats.t.ppf(0.5 + LEVEL / 2, dof) * errors
        intervals = {p: (float(m - h), float(m + h)) for p, m, h in zip(PARAMETERS, estimate, half)}
        correlation = covariance / np.outer(errors, errors)
    else:
        notes.append("the parameters are not determined by these points (no finite covariance)")
        intervals = {p: (math.nan, math.nan) for p in PARAMETERS}
    if not (r2 >= POOR_R2):
        notes.append(f"poor fit: R² = {r2:.2f} (< {POOR_R2}); the law does not describe these runs")
    estimates = {p: float(m) for p, m in zip(PARAMETERS, estimate)}
    return ScalingFit(estimates, intervals, float(np.sqrt(np.mean(residuals**2))), r2, len(y), cells, tuple(notes),
                      sse=sse, correlation=correlation,
                      optima=tuple((tuple(map(float, p)), s) for p, _, s in optima))
