from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scoring import metrics


def test_perfect_ranking_has_auc_one_ks_one_and_gini_one() -> None:
    y = [0, 0, 1, 1]
    p = [0.1, 0.2, 0.8, 0.9]
    assert metrics.auc(y, p) == 1.0
    assert metrics.ks(y, p) == 1.0
    assert metrics.gini(y, p) == 1.0


def test_brier_and_log_loss_of_known_predictions() -> None:
    assert metrics.brier([0, 1], [0.2, 0.6]) == pytest.approx((0.04 + 0.16) / 2)
    assert metrics.log_loss([0, 1], [0.2, 0.6]) == pytest.approx(
        -(np.log(0.8) + np.log(0.6)) / 2)


def test_psi_of_a_distribution_against_itself_is_zero() -> None:
    values = np.random.default_rng(0).normal(size=5000)
    assert metrics.psi(values, values) == pytest.approx(0.0, abs=1e-12)


def test_psi_grows_with_the_shift() -> None:
    rng = np.random.default_rng(1)
    reference = rng.normal(size=20_000)
    small = metrics.psi(reference, rng.normal(0.1, 1, 20_000))
    large = metrics.psi(reference, rng.normal(1.0, 1, 20_000))
    assert 0 < small < 0.1 < 0.25 < large


@given(st.lists(st.floats(0, 1), min_size=20, max_size=200), st.integers(0, 2**31 - 1))
def test_ranking_measures_stay_in_their_ranges(p: list[float], seed: int) -> None:
    y = np.random.default_rng(seed).integers(0, 2, len(p))
    y[0], y[1] = 0, 1
    assert 0 <= metrics.auc(y, p) <= 1
    assert 0 <= metrics.ks(y, p) <= 1
    assert metrics.brier(y, p) <= 1


def test_calibration_table_has_equal_count_bins_in_rising_order() -> None:
    p = np.linspace(0, 1, 100)
    table = metrics.calibration_table((p > 0.5).astype(int), p, bins=10)
    assert [row["n"] for row in table] == [10] * 10
    assert [row["predicted"] for row in table] == sorted(row["predicted"] for row in table)


def test_one_class_labels_are_refused_for_ranking_measures() -> None:
    with pytest.raises(ValueError, match="only one class"):
        metrics.auc([0, 0, 0], [0.1, 0.2, 0.3])


def test_labels_other_than_zero_and_one_are_refused() -> None:
    with pytest.raises(ValueError, match="only 0"):
        metrics.brier([0, 2], [0.1, 0.2])
