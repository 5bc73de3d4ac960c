"""Holm's step-down against statsmodels, and the verdict word a comparison gets from it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qbench.report.multiplicity import direction, holm

multitest = pytest.importorskip("statsmodels.stats.multitest")


@pytest.mark.parametrize("m", [1, 2, 3, 7, 8, 20])
def test_holm_matches_statsmodels(m):
    rng = np.random.default_rng(m)
    pvalues = rng.uniform(0, 0.2, m) ** 2
    expected = multitest.multipletests(pvalues, alpha=0.05, method="holm")[1]
    assert holm(pvalues.tolist()) == pytest.approx(expected.tolist(), rel=1e-12)


def test_ties_and_values_near_one_match_statsmodels():
    pvalues = [0.01, 0.01, 0.04, 0.5, 0.9, 0.001]
    expected = multitest.multipletests(pvalues, method="holm")[1]
    assert holm(pvalues) == pytest.approx(expected.tolist(), rel=1e-12)
    assert max(holm(pvalues)) == 1.0


def test_untested_comparisons_are_not_counted_in_m():
    adjusted = holm([0.01, math.nan, 0.02])
    assert math.isnan(adjusted[1])
    assert adjusted[0] == pytest.approx(0.02) and adjusted[2] == pytest.approx(0.02)  # m = 2, not 3


def test_worked_example_of_the_docs():
    # docs/statistics.md: p = 0.009, 0.033, 0.21 over m = 3 -> 0.027, 0.066, 0.21
    assert holm([0.009, 0.033, 0.21]) == pytest.approx([0.027, 0.066, 0.21])


@pytest.mark.parametrize("estimate, p, against, word", [
    (0.4, 0.01, 0.0, "above"), (-0.4, 0.01, 0.0, "below"), (0.4, 0.06, 0.0, "ties"),
    (0.2, 0.01, 0.3, "below"), (1.0, 0.001, 0.3, "above"), (0.4, math.nan, 0.0, "untested"),
])
def test_direction(estimate, p, against, word):
    assert direction(estimate, p, against) == word
