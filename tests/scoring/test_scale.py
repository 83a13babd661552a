from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.scorecard import SCORECARD_FILE, ScorecardError, load_scorecard
from scoring.eligibility import missing_data_reason, scorable
from scoring.scale import (
    band_for,
    band_index,
    final_score,
    log_odds_from_probability,
    log_odds_from_score,
    points_from_contributions,
    probability_from_log_odds,
    score_from_log_odds,
    score_from_margin,
)

CARD = load_scorecard()
SCALE = CARD.scale


@pytest.mark.parametrize(("probability", "score"),
                         [(0.05, 600.0), (0.01, 719.07), (0.025, 651.87), (0.10, 546.10),
                          (0.20, 487.60)])
def test_design_anchor_points_hold(probability: float, score: float) -> None:
    assert score_from_log_odds(float(log_odds_from_probability(probability)), SCALE) == \
        pytest.approx(score, abs=0.01)


def test_doubling_the_odds_costs_pdo_points() -> None:
    base = score_from_log_odds(0.0, SCALE)
    assert base - score_from_log_odds(math.log(2.0), SCALE) == pytest.approx(SCALE.pdo)


@given(st.floats(-20, 20), st.floats(-20, 20))
def test_score_falls_as_log_odds_rise(low: float, high: float) -> None:
    low, high = sorted((low, high))
    assert score_from_log_odds(low, SCALE) >= score_from_log_odds(high, SCALE)


@given(st.floats(-30, 30))
def test_score_and_log_odds_round_trip(log_odds: float) -> None:
    score = score_from_log_odds(log_odds, SCALE)
    assert log_odds_from_score(score, SCALE) == pytest.approx(log_odds, abs=1e-9)


@given(st.floats(-1e6, 1e6))
def test_final_score_is_whole_and_inside_the_range(unclipped: float) -> None:
    score = final_score(unclipped, SCALE)
    assert SCALE.min_score <= score <= SCALE.max_score
    assert score == int(score)


@given(st.lists(st.floats(-3, 3), min_size=1, max_size=8), st.floats(0.2, 3), st.floats(-2, 2),
       st.floats(-2, 2))
def test_feature_points_add_up_to_the_unclipped_score(shap: list[float], a: float, b: float,
                                                      bias: float) -> None:
    margin = bias + sum(shap)
    base = score_from_margin(bias, a, b, SCALE)
    points = points_from_contributions(np.array(shap), a, SCALE)
    assert base + points.sum() == pytest.approx(score_from_margin(margin, a, b, SCALE), abs=1e-6)


@given(st.floats(-15, 15))
def test_probability_is_the_inverse_of_log_odds(log_odds: float) -> None:
    p = probability_from_log_odds(log_odds)
    assert 0 <= p <= 1
    if 1e-12 < p < 1 - 1e-12:
        assert log_odds_from_probability(p) == pytest.approx(log_odds, abs=1e-6)


@pytest.mark.parametrize(("score", "code"),
                         [(350, "poor"), (549, "poor"), (550, "fair"), (599, "fair"),
                          (600, "good"), (649, "good"), (650, "very_good"), (699, "very_good"),
                          (700, "excellent"), (950, "excellent")])
def test_band_boundaries_follow_the_config(score: int, code: str) -> None:
    assert band_for(score, CARD.bands).code == code


def test_bands_carry_english_and_chinese_names() -> None:
    assert CARD.band("poor").name("zh") == "较差"
    assert CARD.band("excellent").name("en") == "Excellent"


@given(st.integers(350, 950))
def test_every_score_has_exactly_one_band(score: int) -> None:
    band = CARD.bands[int(band_index(score, CARD.bands))]
    assert band.min <= score <= band.max


def test_scorecard_with_a_gap_between_bands_is_refused(tmp_path: Path) -> None:
    text = SCORECARD_FILE.read_text(encoding="utf-8")
    broken = tmp_path / "scorecard.toml"
    broken.write_text(text.replace("min = 550", "min = 555"), encoding="utf-8")
    with pytest.raises(ScorecardError, match="gap or overlap"):
        load_scorecard(broken)


DIMENSIONS = {"a": "credit_history", "b": "credit_history", "c": "behaviour", "d": "capacity",
              "e": "identity", "f": "connections"}


def test_a_thin_vector_gets_no_score_with_the_configured_reason() -> None:
    thin = {"a": 1.0, "b": 2.0, "c": None, "d": float("nan")}
    assert missing_data_reason(thin, DIMENSIONS, CARD.min_data) == CARD.min_data.reason_code


def test_enough_features_over_enough_dimensions_may_be_scored() -> None:
    full = {"a": 1.0, "b": 0.0, "c": 3.0, "d": 1.0, "e": 0.0}
    assert missing_data_reason(full, DIMENSIONS, CARD.min_data) is None


def test_features_from_one_dimension_alone_are_not_enough() -> None:
    many = {f"x{i}": 1.0 for i in range(8)}
    assert missing_data_reason(many, dict.fromkeys(many, "behaviour"), CARD.min_data) is not None


def test_frame_rule_agrees_with_the_vector_rule() -> None:
    import polars as pl

    rows = [{"a": 1.0, "b": 0.0, "c": 3.0, "d": 1.0, "e": 0.0, "f": None},
            {"a": 1.0, "b": None, "c": float("nan"), "d": None, "e": 0.0, "f": None}]
    mask = scorable(pl.DataFrame(rows), DIMENSIONS, CARD.min_data).to_list()
    assert mask == [missing_data_reason(row, DIMENSIONS, CARD.min_data) is None for row in rows]
