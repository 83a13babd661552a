from __future__ import annotations

import numpy as np
import pytest

from scoring.calibrate import PlattCalibrator
from scoring.train import ScoreTrainer
from tests.scoring.synthetic import monotone, population


def test_platt_recovers_a_known_linear_calibration() -> None:
    rng = np.random.default_rng(0)
    margin = rng.normal(0, 2, 40_000)
    truth = 1 / (1 + np.exp(-(0.6 * margin - 1.5)))
    y = (rng.random(margin.size) < truth).astype(int)
    calibrator = PlattCalibrator().fit(margin, y)
    assert calibrator.a_ == pytest.approx(0.6, abs=0.05)
    assert calibrator.b_ == pytest.approx(-1.5, abs=0.07)


def test_calibrated_log_odds_are_linear_in_the_margin() -> None:
    calibrator = PlattCalibrator().fit([-2.0, -1.0, 0.0, 1.0, 2.0, 0.5], [0, 0, 1, 0, 1, 1])
    a, b = calibrator.a_, calibrator.b_
    assert calibrator.log_odds([3.0]) == pytest.approx(a * 3.0 + b)


def test_separable_data_still_gives_finite_parameters() -> None:
    calibrator = PlattCalibrator().fit([-3.0, -2.0, 2.0, 3.0], [0, 0, 1, 1])
    assert np.isfinite([calibrator.a_, calibrator.b_]).all()
    assert calibrator.a_ > 0


def test_bad_parameters_name_themselves() -> None:
    with pytest.raises(ValueError, match="max_iter"):
        PlattCalibrator(max_iter=0)
    with pytest.raises(ValueError, match="ridge"):
        PlattCalibrator(ridge=-1)


def test_mean_prediction_within_two_points_of_the_observed_rate_on_the_held_out_part() -> None:
    features, bad, _ = population(6000, seed=3)
    fit_rows, calibrate_rows, test_rows = np.split(np.arange(6000), [3000, 4500])
    trainer = ScoreTrainer(monotone=monotone(), search_budget=1, max_rounds=150)
    trainer.fit(features.iloc[fit_rows], bad[fit_rows])
    calibrator = PlattCalibrator().fit(trainer.predict_margin(features.iloc[calibrate_rows]),
                                       bad[calibrate_rows])
    predicted = calibrator.predict_proba(trainer.predict_margin(features.iloc[test_rows]))
    assert abs(predicted.mean() - bad[test_rows].mean()) < 0.02
