from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import shap
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.scorecard import load_scorecard
from scoring.explain import Explainer
from scoring.points import ScoreModel, unclipped_scores
from tests.scoring.explain_models import feature_names, random_features, train_model

SCALE = load_scorecard().scale


@pytest.fixture(scope="module")
def model() -> ScoreModel:
    return train_model(seed=3)


@pytest.fixture(scope="module")
def explainer(model: ScoreModel) -> Explainer:
    return Explainer(model)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), depth=st.integers(1, 5), trees=st.integers(1, 25),
       a=st.floats(0.2, 3.0), b=st.floats(-2.0, 2.0))
def test_base_plus_points_is_the_unclipped_score_for_random_models_and_users(
        seed: int, depth: int, trees: int, a: float, b: float) -> None:
    model = train_model(seed=seed, n=400, trees=trees, depth=depth, a=a, b=b)
    explainer = Explainer(model)
    values = random_features(50, seed=seed + 7)
    batch = explainer.explain(values)
    assert np.allclose(batch.base_points + batch.points.sum(axis=1), batch.score_unclipped,
                       rtol=0, atol=1e-6)
    assert np.allclose(batch.base_points + batch.dimensions.sum(axis=1), batch.score_unclipped,
                       rtol=0, atol=1e-6)
    # The same unclipped score as plain prediction (float32 margins: within a thousandth).
    assert np.allclose(batch.score_unclipped, unclipped_scores(model, values, SCALE), atol=1e-3)
    one = explainer.record(batch, 0)
    assert abs(one.base_points + sum(one.features.values()) - one.score_unclipped) < 1e-6
    assert abs(one.base_points + sum(one.dimensions.values()) - one.score_unclipped) < 1e-6


def test_pred_contribs_equal_shap_tree_explainer_values(model: ScoreModel) -> None:
    values = random_features(300, seed=11)
    ours = model.contributions(values)
    reference = shap.TreeExplainer(model.booster)
    theirs = reference.shap_values(values)
    assert np.max(np.abs(ours[:, :-1] - theirs)) <= 1e-6
    # shap takes its expected value from the same call (its own tree parse, before the first
    # call, disagrees with XGBoost's bias for XGBoost 3 models).
    assert abs(model.bias - float(np.ravel(reference.expected_value)[0])) <= 1e-6


def test_base_points_are_the_score_of_the_expected_margin(explainer: Explainer,
                                                         model: ScoreModel) -> None:
    expected = SCALE.offset - SCALE.factor * (model.a * model.bias + model.b)
    assert explainer.base_points == pytest.approx(expected, abs=1e-9)


def test_points_are_minus_b_times_a_times_shap(explainer: Explainer, model: ScoreModel) -> None:
    values = random_features(20, seed=5)
    shap_values = model.contributions(values)[:, :-1].astype(float)
    assert np.allclose(explainer.explain(values).points, -SCALE.factor * model.a * shap_values)


def test_a_clipped_score_says_so() -> None:
    high = train_model(seed=1, b=-30.0)  # far safer than the top of the range
    batch = Explainer(high).explain(random_features(5, seed=2))
    assert (batch.score == SCALE.max_score).all()
    assert batch.clipped.all()
    assert (batch.score_unclipped > SCALE.max_score).all()
    low = Explainer(train_model(seed=1, b=30.0)).explain(random_features(5, seed=2))
    assert (low.score == SCALE.min_score).all() and low.clipped.all()


def test_an_unclipped_score_is_rounded_not_clipped(explainer: Explainer) -> None:
    batch = explainer.explain(random_features(100, seed=9))
    inside = ~batch.clipped
    assert inside.any()
    assert (batch.score[inside] == np.floor(batch.score_unclipped[inside] + 0.5)).all()


def test_one_row_explains_as_in_the_batch(explainer: Explainer) -> None:
    values = random_features(30, seed=4)
    batch = explainer.explain(values)
    for row in (0, 17):
        vector = {name: (None if np.isnan(value) else float(value))
                  for name, value in zip(feature_names(), values[row], strict=True)}
        alone = explainer.explain_one(vector)
        assert alone == explainer.record(batch, row)


def test_polars_frame_is_read_in_the_model_order(explainer: Explainer) -> None:
    values = random_features(10, seed=6)
    frame = pl.DataFrame({name: values[:, i] for i, name in enumerate(feature_names())})
    shuffled = frame.select(list(reversed(frame.columns))).with_columns(pl.lit("u").alias("user_id"))
    assert np.array_equal(explainer.explain(shuffled).score, explainer.explain(values).score)


def test_dimensions_are_the_five_of_the_definitions(explainer: Explainer) -> None:
    record = explainer.record(explainer.explain(random_features(3, seed=1)), 0)
    assert list(record.dimensions) == ["credit_history", "behaviour", "capacity", "identity",
                                       "connections"]
    assert record.band_code in {band.code for band in load_scorecard().bands}


def test_bad_input_is_refused_with_a_clear_message(explainer: Explainer) -> None:
    with pytest.raises(ValueError, match=f"expected {len(feature_names())} feature columns"):
        explainer.explain(np.zeros((2, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="unknown feature: not_a_feature"):
        explainer.explain_one({"not_a_feature": 1.0})
    with pytest.raises(ValueError, match="missing feature columns: repay_count_90d"):
        explainer.explain(pl.DataFrame({"user_id": ["a"]}))


def test_a_model_must_match_its_feature_names(model: ScoreModel) -> None:
    with pytest.raises(ValueError, match=f"trained on {len(feature_names())} features"):
        ScoreModel(booster=model.booster, feature_names=("a", "b"), a=1.0, b=0.0)
    with pytest.raises(ValueError, match="calibration"):
        ScoreModel(booster=model.booster, feature_names=model.feature_names, a=float("nan"), b=0.0)
