"""Bjøntegaard deltas against the reference ``bjontegaard`` package."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from qbench.report.bd import bd_metric, bd_rate

bjontegaard = pytest.importorskip("bjontegaard")

# 256 tokens x {10, 12, 14, 16} bits on 256x256 pixels (bits per pixel)
RATE = 256 * np.array([10, 12, 14, 16]) / 256**2
PSNR_A = [20.1, 20.9, 21.6, 22.2]
PSNR_T = [20.4, 21.3, 22.0, 22.5]
RFID_A = [4.0, 3.0, 2.4, 2.0]
RFID_T = [3.6, 2.7, 2.2, 1.9]


def reference(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


@pytest.mark.parametrize("method", ["cubic", "pchip"])
def test_worked_example_matches_package(method):
    rate = bd_rate(RATE, PSNR_A, RATE, PSNR_T, method=method)
    psnr = bd_metric(RATE, PSNR_A, RATE, PSNR_T, method=method)
    assert rate.value == pytest.approx(bjontegaard.bd_rate(RATE, PSNR_A, RATE, PSNR_T, method=method), abs=1e-9)
    assert psnr.value == pytest.approx(bjontegaard.bd_psnr(RATE, PSNR_A, RATE, PSNR_T, method=method), abs=1e-9)
    assert rate.value < 0 < psnr.value  # the test curve is better: fewer bits, more dB
    swapped = bd_rate(RATE, PSNR_T, RATE, PSNR_A, method=method)
    assert swapped.value == pytest.approx(bjontegaard.bd_rate(RATE, PSNR_T, RATE, PSNR_A, method=method), abs=1e-9)
    assert swapped.value > 0


@pytest.mark.parametrize("method", ["cubic", "pchip"])
def test_lower_is_better_metric_is_negated_for_bd_rate(method):
    ours = bd_rate(RATE, RFID_A, RATE, RFID_T, method=method, higher_is_better=False)
    expected = bjontegaard.bd_rate(RATE, -np.array(RFID_A), RATE, -np.array(RFID_T), method=method)
    assert ours.value == pytest.approx(expected, abs=1e-9) and ours.value < 0
    delta = bd_metric(RATE, RFID_A, RATE, RFID_T, method=method)  # in rFID units: negative = better
    assert delta.value == pytest.approx(reference(bjontegaard.bd_psnr, RATE, RFID_A, RATE, RFID_T, method=method), abs=1e-9)
    assert delta.value < 0


@pytest.mark.parametrize("method", ["cubic", "pchip"])
@pytest.mark.parametrize("seed", range(8))
def test_random_monotone_curves_match_package(method, seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 7))
    rate_a = np.sort(rng.uniform(4, 20, n))
    rate_t = np.sort(rng.uniform(4, 20, n))
    metric_a = np.sort(rng.uniform(18, 30, n))
    metric_t = np.sort(rng.uniform(18, 30, n))
    expected_rate = reference(bjontegaard.bd_rate, rate_a, metric_a, rate_t, metric_t, method=method)
    expected_psnr = reference(bjontegaard.bd_psnr, rate_a, metric_a, rate_t, metric_t, method=method)
    ours_rate = bd_rate(rate_a, metric_a, rate_t, metric_t, method=method)
    ours_psnr = bd_metric(rate_a, metric_a, rate_t, metric_t, method=method)
    for ours, expected in ((ours_rate, expected_rate), (ours_psnr, expected_psnr)):
        if math.isnan(expected):
            assert math.isnan(ours.value) and "no" in " ".join(ours.notes)
        else:
            assert ours.value == pytest.approx(expected, rel=1e-7, abs=1e-9)


def test_points_given_out_of_order_give_the_same_value():
    order = [2, 0, 3, 1]
    shuffled = bd_rate(RATE[order], np.array(PSNR_A)[order], RATE, PSNR_T, method="pchip")
    assert shuffled.value == pytest.approx(bd_rate(RATE, PSNR_A, RATE, PSNR_T, method="pchip").value)


def test_small_overlap_is_noted_and_no_overlap_is_nan():
    low = bd_metric(RATE, PSNR_A, RATE * 1.5, PSNR_T, method="cubic")
    assert low.overlap < 0.75 and any("share only" in n for n in low.notes)
    assert low.value == pytest.approx(reference(bjontegaard.bd_psnr, RATE, PSNR_A, RATE * 1.5, PSNR_T, method="cubic"))
    apart = bd_metric(RATE, PSNR_A, RATE * 10, PSNR_T, method="cubic")
    assert math.isnan(apart.value) and apart.overlap == 0 and "share no" in apart.notes[0]


def test_cubic_needs_four_points_and_pchip_a_monotone_metric():
    three = bd_rate(RATE[:3], PSNR_A[:3], RATE[:3], PSNR_T[:3], method="cubic")
    assert math.isnan(three.value) and "needs 4 points" in three.notes[0]
    pchip = bd_rate(RATE[:3], PSNR_A[:3], RATE[:3], PSNR_T[:3], method="pchip")
    assert math.isfinite(pchip.value) and "has 3 points" in pchip.notes[0]
    bumpy = [20.1, 21.0, 20.8, 22.2]
    refused = bd_rate(RATE, bumpy, RATE, PSNR_T, method="pchip")
    assert math.isnan(refused.value) and "not monotone" in refused.notes[0]
    fitted = bd_rate(RATE, bumpy, RATE, PSNR_T, method="cubic")
    assert math.isfinite(fitted.value) and "not monotone" in fitted.notes[0]


def test_unknown_method_is_an_error():
    with pytest.raises(ValueError, match="cubic, pchip"):
        bd_metric(RATE, PSNR_A, RATE, PSNR_T, method="akima")
