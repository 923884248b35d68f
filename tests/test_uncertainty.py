"""Intervals and paired tests behind every accuracy and gain edgekd shows."""

import math

import numpy as np
import pytest

from edgekd.report.uncertainty import accuracy_text, binomial_two_sided, paired_gain, unpaired_gain, wilson


def test_wilson_matches_published_values():
    # Newcombe (1998), table I: 0/10 -> [0, 0.2775], 10/10 -> [0.7225, 1], 81/263 -> [0.2553, 0.3662]
    assert wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)


def test_interval_narrows_with_rows():
    widths = [np.subtract(*wilson(round(0.9 * n), n)[::-1]) for n in (30, 300, 3000)]
    assert widths[0] > widths[1] > widths[2]
    assert "on 36 test rows" in accuracy_text(35 / 36, 36)


def test_mcnemar_exact_p():
    assert binomial_two_sided(0, 6) == pytest.approx(2 / 64)
    assert binomial_two_sided(3, 6) == 1.0
    assert binomial_two_sided(0, 0) == 1.0


def test_one_row_is_noise_and_many_are_not():
    n = 1000
    a = np.ones(n, bool)
    b = a.copy()
    b[:1] = False                      # a wins one row
    one = paired_gain(a, b)
    assert one.points == pytest.approx(0.1) and one.within_noise and "within noise" in one.text()
    b[:40] = False                     # a wins 40 rows, loses none
    many = paired_gain(a, b)
    assert not many.within_noise and many.low > 0 and many.p < 1e-6


def test_paired_gain_is_antisymmetric_and_brackets_its_estimate():
    rng = np.random.default_rng(0)
    a, b = rng.random(500) < 0.9, rng.random(500) < 0.85
    ab, ba = paired_gain(a, b), paired_gain(b, a)
    assert ab.points == pytest.approx(-ba.points)
    assert ab.low == pytest.approx(-ba.high) and ab.high == pytest.approx(-ba.low)
    assert ab.low <= ab.points <= ab.high
    assert math.isclose(ab.p, ba.p)


def test_unpaired_fallback_is_wider_than_paired():
    a = np.r_[np.ones(95, bool), np.zeros(5, bool)]
    b = np.r_[np.ones(90, bool), np.zeros(10, bool)]
    paired, unpaired = paired_gain(a, b), unpaired_gain(0.95, 0.90, 100)
    assert unpaired.high - unpaired.low > paired.high - paired.low
    assert unpaired.p is None and unpaired.within_noise


def test_no_differing_row_is_not_certainty():
    same = np.r_[np.ones(29, bool), np.zeros(1, bool)]
    gain = paired_gain(same, same)
    assert gain.points == 0 and gain.low < -3 and gain.high > 3 and gain.within_noise
