"""What a law fit knows: bootstrap intervals, rival optima, lack of fit, and a simpler rival model.

For the fit of qbench.report.scaling over runs with replicate seeds per (D, V) cell:

- **bootstrap**: resample the seeds within each cell (with replacement, the
  same number per cell), refit from the full data's optima and the resample's
  best grid point (the multistart, shortened), ``RESAMPLES`` times
  from ``numpy.random.default_rng(SEED)``; the 2.5 and 97.5 percentiles are the
  interval.  A parameter is *determined* only when that interval excludes 0
  and stays bounded: both ends within a factor ``BOUND`` of the estimate, and
  at least ``CONVERGED`` of the refits converged.
- **rival optima**: another local optimum whose sum of squares lies inside
  the 95% joint confidence region of the best, SSE <= SSE_best (1 + p/(N-p)
  F_0.95(p, N-p)), fits as well as the data can tell: the optimum is *not unique*.
- **lack of fit**: the residual sum of squares splits into pure error (runs
  about their cell mean, N - k degrees of freedom for k cells) and lack of fit
  (k - p); F = (SS_lof / (k - p)) / (SS_pe / (N - k)).  A small p *rejects* the form.
- **a plane**: ``y = b0 + b1 log2 V + b2 D`` by ordinary least squares, against
  the law by AIC and BIC (Gaussian likelihood, as statsmodels counts them:
  k mean parameters, no variance term) and, the two not being nested, by the
  J test of Davidson and MacKinnon in both directions: the rival's fitted
  values added as a regressor; a significant coefficient *rejects* the model
  it was added to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qbench.report.scaling import B_GRID, E_GRID, PARAMETERS, ScalingFit, exponents, law, profile

RESAMPLES = 1000
SEED = 0
BOUND = 10.0
CONVERGED = 0.95
LEVEL = 0.95


@dataclass(frozen=True)
class Model:
    sse: float
    k: int
    aic: float
    bic: float
    lack_f: float = math.nan
    lack_p: float = math.nan
    lack_df: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class LawCheck:
    bootstrap: dict[str, tuple[float, float]]
    converged: int
    resamples: int
    determined: dict[str, bool]
    region: float  # the SSE bound of the 95% joint confidence region
    rival: tuple[tuple[float, ...], float] | None  # the best other optimum inside it
    law: Model
    plane: Model
    plane_coefficients: tuple[float, float, float]
    j_law: tuple[float, float]  # (t, p) of the plane's fitted values added to the law
    j_plane: tuple[float, float]  # (t, p) of the law's fitted values added to the plane


def information(sse: float, n: int, k: int) -> tuple[float, float]:
    """(AIC, BIC) of a Gaussian least-squares model with k mean parameters."""
    llf = -n / 2 * (math.log(2 * math.pi) + math.log(sse / n) + 1)
    return -2 * llf + 2 * k, -2 * llf + k * math.log(n)


def lack_of_fit(cells: np.ndarray, y: np.ndarray, sse: float, k_params: int) -> tuple[float, float, tuple[int, int]]:
    """(F, p, (df_lof, df_pe)) against the cell means; NaN without replicates or spare cells."""
    # deferred: loads scipy only when this runs
    from scipy import stats

    _, inverse = np.unique(cells, axis=0, return_inverse=True)
    k = int(inverse.max()) + 1
    means = np.bincount(inverse, weights=y) / np.bincount(inverse)
    pure = float(np.sum((y - means[inverse]) ** 2))
    df_lof, df_pe = k - k_params, len(y) - k
    if df_lof <= 0 or df_pe <= 0 or pure <= 0:
        return math.nan, math.nan, (df_lof, df_pe)
    f = ((sse - pure) / df_lof) / (pure / df_pe)
    return float(f), float(stats.f.sf(f, df_lof, df_pe)), (df_lof, df_pe)


def _model(cells, y, sse: float, k: int) -> Model:
    aic, bic = information(sse, len(y), k)
    f, p, df = lack_of_fit(cells, y, sse, k)
    return Model(sse, k, aic, bic, f, p, df)


def _ols(design: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(coefficients, standard errors, SSE) of ordinary least squares."""
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    sse = float(np.sum((y - design @ coef) ** 2))
    scale = sse / (len(y) - design.shape[1])
    errors = np.sqrt(np.diag(scale * np.linalg.pinv(design.T @ design)))
    return coef, errors, sse


def _t_test(t: float, df: int) -> tuple[float, float]:
    # deferred: loads scipy only when this runs
    from scipy import stats

    t = float(t)
    return t, float(2 * stats.t.sf(abs(t), df)) if math.isfinite(t) else math.nan


def _j_law(d, v, y, start, plane_fitted) -> tuple[float, float]:
    """The law plus alpha times the plane's fitted values, by nonlinear least squares; t and p of alpha."""
    # deferred: loads scipy only when this runs
    from scipy import optimize

    def augmented(x, a, b, c, e, alpha):
        return law(x[:2], a, b, c, e) + alpha * x[2]

    try:
        estimate, covariance = optimize.curve_fit(augmented, np.vstack([d, v, plane_fitted]), y, p0=[*start, 0.0],
                                                  maxfev=20000)
    except (RuntimeError, ValueError):
        return math.nan, math.nan
    error = math.sqrt(covariance[-1, -1]) if np.isfinite(covariance[-1, -1]) and covariance[-1, -1] > 0 else math.nan
    return _t_test(estimate[-1] / error, len(y) - 5)


def _refit(d, v, y, known: list[tuple[float, ...]]) -> np.ndarray | None:
    """The best optimum from the full data's optima and the resample's own best grid point."""
    sse, a, c = profile(d, v, y, B_GRID[::2], E_GRID[::2])  # a coarser grid: it only has to find the basin
    i, j = np.unravel_index(np.argmin(sse), sse.shape)
    best, best_sse = None, math.inf
    for p0 in [*known, (float(a[i, j]), float(B_GRID[::2][i]), float(c[i, j]), float(E_GRID[::2][j]))]:
        found = exponents(d, v, y, p0[1], p0[3])
        if found is not None:
            total = float(np.sum((y - law(np.vstack([d, v]), *found)) ** 2))
            if total < best_sse:
                best, best_sse = np.array(found), total
    return best


def _bootstrap(d, v, y, fit: ScalingFit, resamples: int, seed: int) -> tuple[dict[str, tuple[float, float]], int]:
    rng = np.random.default_rng(seed)
    cells = sorted({(a, b) for a, b in zip(d.tolist(), v.tolist())})
    members = [np.flatnonzero((d == a) & (v == b)) for a, b in cells]
    known = [params for params, _ in fit.optima[:3]] or [tuple(fit.estimates[p] for p in PARAMETERS)]
    draws = []
    for _ in range(resamples):
        index = np.concatenate([rng.choice(m, size=len(m), replace=True) for m in members])
        found = _refit(d[index], v[index], y[index], known)
        if found is not None:
            draws.append(found)
    if not draws:
        return {p: (math.nan, math.nan) for p in PARAMETERS}, 0
    low, high = np.percentile(np.array(draws), [100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2], axis=0)
    return {p: (float(lo), float(hi)) for p, lo, hi in zip(PARAMETERS, low, high)}, len(draws)


def determined(estimate: float, interval: tuple[float, float], converged_share: float) -> bool:
    low, high = interval
    if not (math.isfinite(low) and math.isfinite(high)) or converged_share < CONVERGED or low <= 0 <= high:
        return False
    return max(abs(low), abs(high)) <= BOUND * abs(estimate) and min(abs(low), abs(high)) >= abs(estimate) / BOUND


def check_law(d, v, y, fit: ScalingFit, *, resamples: int = RESAMPLES, seed: int = SEED) -> LawCheck:
    # deferred: loads scipy only when this runs
    from scipy import stats

    d, v, y = (np.asarray(x, dtype=float) for x in (d, v, y))
    n, p = len(y), len(PARAMETERS)
    cells = np.column_stack([d, v])
    region = fit.sse * (1 + p / (n - p) * float(stats.f.ppf(LEVEL, p, n - p))) if n > p else math.nan
    rival = next(((params, sse) for params, sse in fit.optima[1:] if sse <= region), None)
    design = np.column_stack([np.ones_like(d), np.log2(v), d])
    coef, _, plane_sse = _ols(design, y)
    law_fitted = law(np.vstack([d, v]), *(fit.estimates[q] for q in PARAMETERS))
    j_coef, j_errors, _ = _ols(np.column_stack([design, law_fitted]), y)
    j_plane = _t_test(j_coef[-1] / j_errors[-1] if j_errors[-1] > 0 else math.nan, n - 4)
    j_law = _j_law(d, v, y, tuple(fit.estimates[q] for q in PARAMETERS), design @ coef)
    bootstrap, converged = _bootstrap(d, v, y, fit, resamples, seed)
    share = converged / resamples if resamples else 0.0
    return LawCheck(
        bootstrap=bootstrap, converged=converged, resamples=resamples,
        determined={q: determined(fit.estimates[q], bootstrap[q], share) for q in PARAMETERS},
        region=region, rival=rival, law=_model(cells, y, fit.sse, p), plane=_model(cells, y, plane_sse, 3),
        plane_coefficients=tuple(map(float, coef)), j_law=j_law, j_plane=j_plane,
    )
