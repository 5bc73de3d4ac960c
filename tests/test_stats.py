"""Intervals and paired tests over seeds, checked against scipy.stats."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from qbench.report.stats import mean_ci, one_sample, paired_difference


@pytest.mark.parametrize("n", [2, 3, 5, 10])
def test_mean_ci_is_scipy_t_interval(n):
    values = np.random.default_rng(n).normal(25.0, 1.5, n)
    ci = mean_ci(values)
    low, high = stats.t.interval(0.95, n - 1, loc=values.mean(), scale=stats.sem(values))
    assert ci.n == n and ci.mean == pytest.approx(values.mean())
    assert (ci.low, ci.high) == pytest.approx((low, high), rel=1e-12)


def test_one_seed_has_no_interval_and_none_is_none():
    ci = mean_ci([24.0])
    assert ci.mean == 24.0 and ci.n == 1 and math.isnan(ci.low) and math.isnan(ci.high)
    assert mean_ci([]) is None
    assert mean_ci([None, float("nan")]) is None


@pytest.mark.parametrize("n", [2, 3, 6])
def test_paired_difference_matches_ttest_rel(n):
    rng = np.random.default_rng(10 + n)
    base = rng.normal(23.0, 1.0, n)
    test = base + 0.4 + rng.normal(0, 0.3, n)
    seeds = list(range(n))
    # the maps come in different seed orders: pairing must go by seed, not by position
    diff = paired_difference(dict(zip(seeds[::-1], test[::-1])), dict(zip(seeds, base)))
    expected = stats.ttest_rel(test, base, alternative="two-sided")
    interval = expected.confidence_interval(0.95)
    assert diff.n == n and diff.seeds == tuple(seeds)
    assert diff.mean == pytest.approx(np.mean(test - base))
    assert diff.pvalue == pytest.approx(expected.pvalue, rel=1e-10)
    assert (diff.low, diff.high) == pytest.approx((interval.low, interval.high), rel=1e-10)
    assert diff.significant == (interval.low > 0 or interval.high < 0)


def test_worked_three_seed_example():
    # differences 0.30, 0.15, 0.20 dB: scipy's one-sample test of the differences
    diff = paired_difference({0: 1.30, 1: 1.15, 2: 1.20}, {0: 1.0, 1: 1.0, 2: 1.0})
    expected = stats.ttest_1samp([0.30, 0.15, 0.20], 0.0)
    interval = expected.confidence_interval(0.95)
    assert diff.pvalue == pytest.approx(expected.pvalue, rel=1e-9)
    assert (diff.low, diff.high) == pytest.approx((interval.low, interval.high), rel=1e-9)
    assert diff.verdict == "significant"


def test_only_shared_seeds_pair_and_one_pair_is_not_significant():
    diff = paired_difference({0: 2.0, 1: 3.0}, {1: 1.0, 2: 0.0})
    assert diff.n == 1 and diff.seeds == (1,) and diff.mean == 2.0
    assert not diff.significant and "fewer than 2" in diff.verdict
    assert paired_difference({0: 1.0}, {1: 1.0}) is None


def test_interval_covering_zero_is_not_significant():
    diff = paired_difference({0: 1.0, 1: 2.0, 2: 3.0}, {0: 1.5, 1: 1.5, 2: 1.5})
    assert diff.low < 0 < diff.high and diff.verdict == "not significant (CI covers 0)"


def test_one_sample_matches_ttest_1samp():
    values = [-8.1, -6.0, -9.3, -7.2]
    ci, p = one_sample(values)
    expected = stats.ttest_1samp(values, 0.0)
    assert p == pytest.approx(expected.pvalue)
    assert (ci.low, ci.high) == pytest.approx(tuple(expected.confidence_interval(0.95)))
