"""The App. C.2 scaling-law fit on grids generated from known parameters."""

from __future__ import annotations

import numpy as np
import pytest

from qbench.report.scaling import PARAMETERS, fit_scaling, law

# the GSQ paper's F8 fit, on its D x V grid
TRUE = {"a": 411.63, "b": 2.8375, "c": 0.1601, "e": 0.1956}
D_GRID, V_GRID = [8, 16, 32, 64], [2**13, 2**14, 2**16, 2**18, 2**19]


def grid(seeds=1):
    d, v = (x.ravel() for x in np.meshgrid(D_GRID, V_GRID))
    return np.repeat(d, seeds), np.repeat(v, seeds)


def test_exact_grid_recovers_the_parameters():
    d, v = grid()
    fit = fit_scaling(d, v, law(np.vstack([d, v]), *TRUE.values()))
    for name in PARAMETERS:
        assert fit.estimates[name] == pytest.approx(TRUE[name], rel=1e-4)
    assert fit.r2 == pytest.approx(1.0) and fit.rms < 1e-8 and fit.cells == 20 and not fit.warnings


def test_noisy_seeds_give_intervals_that_cover_the_truth():
    d, v = grid(seeds=3)
    y = law(np.vstack([d, v]), *TRUE.values()) + np.random.default_rng(0).normal(0, 0.003, len(d))
    fit = fit_scaling(d, v, y)
    assert fit.points == 60 and fit.cells == 20
    for name in PARAMETERS:
        low, high = fit.intervals[name]
        assert low < TRUE[name] < high, name
    assert fit.estimates["e"] == pytest.approx(TRUE["e"], abs=0.03)
    assert fit.rms == pytest.approx(0.003, rel=0.3)


def test_too_small_grid_warns():
    d, v = np.array([8, 8, 16, 16]), np.array([256, 1024, 256, 1024])
    fit = fit_scaling(d, v, [1.0, 0.8, 1.1, 0.9])
    assert any(w.startswith("grid too small: 4 (D, V) cells") for w in fit.warnings)
    assert any("not determined" in w for w in fit.warnings)


def test_noise_without_structure_is_a_poor_fit():
    d, v = grid()
    fit = fit_scaling(d, v, np.random.default_rng(1).normal(1.0, 0.2, len(d)))
    assert any(w.startswith("poor fit") for w in fit.warnings)
