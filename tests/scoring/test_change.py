from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scoring.change import explain_change
from scoring.explain import Explainer, Explanation
from tests.scoring.explain_models import random_features, train_model


@dataclass(frozen=True)
class Dated:
    """An explanation with its date, as a published score has."""

    as_of: date
    score: int | None
    score_unclipped: float | None
    base_points: float | None
    features: dict[str, float]
    dimensions: dict[str, float]
    model_version: str


def dated(explanation: Explanation, as_of: date) -> Dated:
    return Dated(as_of=as_of, score=explanation.score, score_unclipped=explanation.score_unclipped,
                 base_points=explanation.base_points, features=explanation.features,
                 dimensions=explanation.dimensions, model_version=explanation.model_version)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 1000), other_model=st.booleans())
def test_change_decomposes_exactly_into_feature_and_dimension_changes(seed: int,
                                                                    other_model: bool) -> None:
    first = Explainer(train_model(seed=seed, n=400, trees=15, version="m1"))
    second = Explainer(train_model(seed=seed + 1, n=400, trees=20, depth=4, a=1.3, b=-0.4,
                                   version="m2")) if other_model else first
    values = random_features(2, seed=seed + 2)
    before = dated(first.explain_one(values[0]), date(2026, 1, 1))
    after = dated(second.explain_one(values[1]), date(2026, 2, 1))
    change = explain_change(before, after)
    total = change.base_points + sum(change.features.values())
    assert total == pytest.approx(after.score_unclipped - before.score_unclipped, abs=1e-6)
    assert change.base_points + sum(change.dimensions.values()) == pytest.approx(
        change.unclipped_difference, abs=1e-6)
    assert change.difference == after.score - before.score
    assert (change.base_points != 0) == other_model


def test_top_movers_are_the_largest_changes_in_both_languages() -> None:
    explainer = Explainer(train_model(seed=4, trees=30))
    values = random_features(2, seed=10)
    before = dated(explainer.explain_one(values[0]), date(2026, 1, 1))
    after = dated(explainer.explain_one(values[1]), date(2026, 3, 1))
    change = explain_change(before, after, top=3)
    assert len(change.movers) == 3
    sizes = [abs(item["points"]) for item in change.movers]
    assert sizes == sorted(sizes, reverse=True)
    largest = max(change.features.items(), key=lambda item: abs(item[1]))
    assert change.movers[0]["feature"] == largest[0]
    assert "2026-01-01" in change.movers[0]["text_en"] and change.movers[0]["text_zh"]


def test_a_model_change_is_its_own_line() -> None:
    values = random_features(1, seed=3)
    before = dated(Explainer(train_model(seed=1, version="m1")).explain_one(values[0]),
                   date(2026, 1, 1))
    after = dated(Explainer(train_model(seed=1, b=-0.5, version="m2")).explain_one(values[0]),
                  date(2026, 2, 1))
    change = explain_change(before, after)
    assert change.movers[0]["feature"] is None
    assert "m1" in change.movers[0]["text_en"] and "m2" in change.movers[0]["text_en"]
    assert change.base_points == pytest.approx(
        after.score_unclipped - before.score_unclipped, abs=1e-6)
    assert all(value == 0 for value in change.features.values())


def test_an_unscored_side_is_refused() -> None:
    explanation = Explainer(train_model(seed=1)).explain_one(random_features(1, seed=1)[0])
    scored = dated(explanation, date(2026, 2, 1))
    unscored = Dated(as_of=date(2026, 1, 1), score=None, score_unclipped=None, base_points=None,
                     features={}, dimensions={}, model_version="m1")
    with pytest.raises(ValueError, match=r"the before score \(2026-01-01\) was not scored"):
        explain_change(unscored, scored)
