"""What a law fit knows, checked against statsmodels and against the sums written out by hand."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from qbench.report.lawcheck import check_law, determined, information, lack_of_fit
from qbench.report.scaling import PARAMETERS, fit_scaling, law

sm = pytest.importorskip("statsmodels.api")
smf = pytest.importorskip("statsmodels.formula.api")
anova = pytest.importorskip("statsmodels.stats.anova")

D_GRID, V_GRID, SEEDS = [2, 4, 8], [64, 256, 1024, 4096], 3


def grid_runs(noise=0.15, seed=0, curve=0.3):
    """A D x V grid with 3 seeds per cell: a plane plus a D x V interaction neither model has."""
    rng = np.random.default_rng(seed)
    d, v = (x.ravel() for x in np.meshgrid(D_GRID, V_GRID, indexing="ij"))
    d, v = np.repeat(d, SEEDS).astype(float), np.repeat(v, SEEDS).astype(float)
    y = 25 + 0.25 * np.log2(v) - 0.2 * d + curve * (d == 4) * (np.log2(v) - 9) / 3 + rng.normal(0, noise, len(d))
    return d, v, y


@pytest.fixture(scope="module")
def checked():
    d, v, y = grid_runs()
    fit = fit_scaling(d, v, y)
    return d, v, y, fit, check_law(d, v, y, fit, resamples=200)


def test_lack_of_fit_is_the_f_test_written_out(checked):
    d, v, y, fit, check = checked
    cells = sorted(set(zip(d, v)))
    pure = sum((y[i] - np.mean([y[j] for j in range(len(y)) if (d[j], v[j]) == c])) ** 2
               for c in cells for i in range(len(y)) if (d[i], v[i]) == c)
    residual = float(np.sum((y - law(np.vstack([d, v]), *fit.estimates.values())) ** 2))
    df_lof, df_pe = len(cells) - 4, len(y) - len(cells)
    f = ((residual - pure) / df_lof) / (pure / df_pe)
    assert check.law.lack_df == (df_lof, df_pe) == (8, 24)
    assert check.law.lack_f == pytest.approx(f, rel=1e-9)
    assert check.law.lack_p == pytest.approx(stats.f.sf(f, df_lof, df_pe), rel=1e-9)


def test_the_planes_lack_of_fit_aic_and_bic_are_statsmodels(checked):
    d, v, y, _, check = checked
    frame = pd.DataFrame({"y": y, "log2V": np.log2(v), "D": d, "cell": [f"{a}-{b}" for a, b in zip(d, v)]})
    plane = smf.ols("y ~ log2V + D", frame).fit()
    saturated = smf.ols("y ~ C(cell)", frame).fit()
    table = anova.anova_lm(plane, saturated)
    assert check.plane.lack_f == pytest.approx(table["F"].iloc[1], rel=1e-9)
    assert check.plane.lack_p == pytest.approx(table["Pr(>F)"].iloc[1], rel=1e-9)
    assert check.plane.sse == pytest.approx(plane.ssr, rel=1e-12)
    assert (check.plane.aic, check.plane.bic) == pytest.approx((plane.aic, plane.bic), rel=1e-12)
    assert check.plane_coefficients == pytest.approx(tuple(plane.params), rel=1e-9)


def test_information_counts_as_statsmodels_does():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 3))
    y = x @ [1.0, -2.0, 0.5] + rng.normal(0, 0.3, 30)
    model = sm.OLS(y, sm.add_constant(x)).fit()
    assert information(model.ssr, 30, 4) == pytest.approx((model.aic, model.bic), rel=1e-12)


def test_j_test_of_the_plane_is_an_ols_t_test(checked):
    d, v, y, fit, check = checked
    fitted = law(np.vstack([d, v]), *(fit.estimates[p] for p in PARAMETERS))
    model = sm.OLS(y, np.column_stack([np.ones_like(d), np.log2(v), d, fitted])).fit()
    assert check.j_plane == pytest.approx((model.tvalues[-1], model.pvalues[-1]), rel=1e-6)
    assert math.isfinite(check.j_law[1])


def test_lack_of_fit_needs_replicates_and_spare_cells():
    cells = np.array([[1, 1], [1, 2], [2, 1], [2, 2]])
    f, p, df = lack_of_fit(cells, np.array([1.0, 2.0, 3.0, 4.0]), 0.5, 3)
    assert math.isnan(f) and math.isnan(p) and df == (1, 0)  # one run per cell: no pure error


def test_bootstrap_is_seeded_and_covers_a_determined_law():
    d, v = (x.ravel() for x in np.meshgrid([8, 16, 32, 64], [2**13, 2**14, 2**16, 2**18, 2**19], indexing="ij"))
    d, v = np.repeat(d, 3).astype(float), np.repeat(v, 3).astype(float)
    true = (411.63, 2.8375, 0.1601, 0.1956)
    y = law(np.vstack([d, v]), *true) + np.random.default_rng(0).normal(0, 0.002, len(d))
    fit = fit_scaling(d, v, y)
    first, again = (check_law(d, v, y, fit, resamples=100, seed=5) for _ in range(2))
    other = check_law(d, v, y, fit, resamples=100, seed=6)
    assert first.bootstrap == again.bootstrap and first.bootstrap != other.bootstrap
    assert first.converged == 100 and all(first.determined.values())
    for name in PARAMETERS:
        low, high = first.bootstrap[name]
        assert low < fit.estimates[name] < high
    assert first.rival is None and first.law.lack_p > 0.01


@pytest.mark.parametrize("estimate, interval, share, expected", [
    (1.0, (0.5, 2.0), 1.0, True), (1.0, (-0.1, 2.0), 1.0, False), (1.0, (0.5, 12.0), 1.0, False),
    (-1.0, (-2.0, -0.5), 1.0, True), (1.0, (0.05, 2.0), 1.0, False), (1.0, (0.5, 2.0), 0.9, False),
    (1.0, (math.nan, 2.0), 1.0, False),
])
def test_determined_means_excludes_zero_and_stays_bounded(estimate, interval, share, expected):
    assert determined(estimate, interval, share) is expected


def test_an_optimum_inside_the_joint_region_makes_the_fit_not_unique(checked):
    d, v, y, fit, _ = checked
    best = tuple(fit.estimates[p] for p in PARAMETERS)
    region = fit.sse * (1 + 4 / (len(y) - 4) * stats.f.ppf(0.95, 4, len(y) - 4))
    near = dataclasses.replace(fit, optima=((best, fit.sse), ((1.0, 1.0, 1.0, 1.0), region * 0.99)))
    far = dataclasses.replace(fit, optima=((best, fit.sse), ((1.0, 1.0, 1.0, 1.0), region * 1.01)))
    assert check_law(d, v, y, near, resamples=2).rival == ((1.0, 1.0, 1.0, 1.0), region * 0.99)
    assert check_law(d, v, y, far, resamples=2).rival is None


def test_the_multistart_finds_an_optimum_a_single_start_misses():
    d, v = (x.ravel() for x in np.meshgrid([2, 4, 8], [64, 256, 1024, 4096], indexing="ij"))
    d, v = d.astype(float), v.astype(float)
    true = (25.0, -0.06, -1.2, 0.4)  # b < 0: outside the grid the fit used to start from
    fit = fit_scaling(d, v, law(np.vstack([d, v]), *true))
    assert fit.sse < 1e-12
    assert tuple(fit.estimates.values()) == pytest.approx(true, rel=1e-5)
