from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scoring import metrics
from scoring.train import ScoreTrainer
from tests.scoring.synthetic import monotone, population

FAST = {"search_budget": 2, "max_rounds": 120, "early_stopping_rounds": 20}


@pytest.fixture(scope="module")
def fitted() -> tuple[ScoreTrainer, pd.DataFrame, np.ndarray, np.ndarray]:
    features, bad, truth = population(3000, seed=0)
    trainer = ScoreTrainer(monotone=monotone(), **FAST).fit(features, bad)
    return trainer, features, bad, truth


def test_trainer_ranks_a_simulated_population_close_to_the_truth(fitted) -> None:
    trainer, _, _, _ = fitted
    test, bad, truth = population(3000, seed=1)
    oracle = metrics.auc(bad, truth)
    assert metrics.auc(bad, trainer.predict_proba(test)) >= 0.5 + 0.85 * (oracle - 0.5)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(row=st.integers(0, 2999), feature=st.sampled_from(["late_count", "utilisation",
                                                          "tenure_years"]),
       step=st.floats(0.01, 10))
def test_raising_a_constrained_feature_moves_risk_only_its_way(fitted, row: int, feature: str,
                                                                step: float) -> None:
    trainer, features, _, _ = fitted
    user = features.iloc[[row]].copy()
    user[feature] = np.nan_to_num(user[feature].to_numpy(), nan=1.0)  # from a value, not missing
    before = trainer.predict_proba(user)[0]
    user[feature] = user[feature] + step
    after = trainer.predict_proba(user)[0]
    if monotone()[feature] > 0:
        assert after >= before - 1e-7
    else:
        assert after <= before + 1e-7


def test_feature_order_is_pinned_at_fit(fitted) -> None:
    trainer, features, _, _ = fitted
    shuffled = features[list(reversed(features.columns))]
    np.testing.assert_allclose(trainer.predict_margin(shuffled), trainer.predict_margin(features))
    assert trainer.feature_names_ == list(features.columns)


def test_polars_input_gives_the_same_predictions(fitted) -> None:
    trainer, features, _, _ = fitted
    np.testing.assert_allclose(trainer.predict_margin(pl.from_pandas(features)),
                               trainer.predict_margin(features))


def test_contributions_add_up_to_the_margin(fitted) -> None:
    trainer, features, _, _ = fitted
    contributions = trainer.contributions(features.head(50))
    np.testing.assert_allclose(contributions.sum(axis=1), trainer.predict_margin(features.head(50)),
                               atol=1e-4)


def test_a_missing_feature_column_is_refused(fitted) -> None:
    trainer, features, _, _ = fitted
    with pytest.raises(ValueError, match="missing feature columns: noise"):
        trainer.predict_margin(features.drop(columns="noise"))


def test_categorical_columns_and_unseen_levels_are_handled() -> None:
    rng = np.random.default_rng(0)
    n = 600
    frame = pd.DataFrame({"city": rng.choice(["a", "b", "c"], n), "x": rng.normal(size=n)})
    bad = ((frame["city"] == "c") ^ (rng.random(n) < 0.2)).astype(int).to_numpy()
    trainer = ScoreTrainer(**FAST).fit(frame, bad)
    unseen = pd.DataFrame({"city": ["zzz", None], "x": [0.0, 1.0]})
    assert np.isfinite(trainer.predict_proba(unseen)).all()


def test_grouped_search_keeps_each_group_in_one_fold() -> None:
    features, bad, _ = population(600, seed=2)
    groups = np.arange(600) // 3
    trainer = ScoreTrainer(**FAST).fit(features, bad, groups=groups)
    assert trainer.n_rounds_ >= 1


def test_search_is_deterministic_and_bounded() -> None:
    first = ScoreTrainer(search_budget=5, random_state=7).candidates()
    assert first == ScoreTrainer(search_budget=5, random_state=7).candidates()
    assert len(first) == 5
    assert len({tuple(sorted(c.items())) for c in first}) == 5


@pytest.mark.parametrize(("options", "name"), [({"search_budget": 0}, "search_budget"),
                                                ({"cv_folds": 1}, "cv_folds"),
                                                ({"monotone": {"x": 2}}, "monotone")])
def test_bad_parameters_are_refused_by_name(options: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        ScoreTrainer(**options)


def test_a_constraint_on_an_unknown_column_is_refused() -> None:
    features, bad, _ = population(200)
    with pytest.raises(ValueError, match="no such feature column: missing"):
        ScoreTrainer(monotone={"missing": 1}, **FAST).fit(features, bad)


def test_one_class_labels_are_refused() -> None:
    features, _, _ = population(200)
    with pytest.raises(ValueError, match="only one class"):
        ScoreTrainer(**FAST).fit(features, np.zeros(200, dtype=int))
