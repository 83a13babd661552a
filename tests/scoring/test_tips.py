from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.feature_definitions import load_feature_definitions
from config.scorecard import load_scorecard
from scoring.explain import Explainer
from scoring.points import unclipped_scores
from scoring.record_json import TipJson
from scoring.scale import final_score
from scoring.tips import TipAdvisor, TipReference, actionable_features
from tests.scoring.explain_models import feature_names, random_features, train_model

SCALE = load_scorecard().scale


@pytest.fixture(scope="module")
def explainer() -> Explainer:
    return Explainer(train_model(seed=12, n=3000, trees=60, depth=3))


@pytest.fixture(scope="module")
def reference(explainer: Explainer) -> TipReference:
    return TipReference.fit(explainer, random_features(3000, seed=13))


@pytest.fixture(scope="module")
def advisor(explainer: Explainer, reference: TipReference) -> TipAdvisor:
    return TipAdvisor(explainer, reference)


def _apply(values: np.ndarray, tip: dict) -> np.ndarray:
    changed = values.copy()
    changed[feature_names().index(tip["feature"])] = tip["to"]
    return changed


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 100_000))
def test_a_tips_gain_is_the_rescored_difference_and_never_lowers_the_score(
        advisor: TipAdvisor, explainer: Explainer, seed: int) -> None:
    values = random_features(8, seed=seed, missing=0.05)
    for row, tips in zip(values, advisor.tips(values), strict=True):
        before = unclipped_scores(explainer.model, row[None, :], SCALE)[0]
        for tip in tips:
            after = unclipped_scores(explainer.model, _apply(row, tip)[None, :], SCALE)[0]
            assert after >= before
            assert tip["points"] == pytest.approx(min(after, SCALE.max_score) - before, abs=0.01)
            assert tip["points"] >= explainer.catalogue.limits.tip_min_points
            assert tip["score_to"] == final_score(after, SCALE)
            # The explanation of the changed vector agrees (SHAP sums in float32: 1e-3 points).
            assert explainer.explain_one(_apply(row, tip)).score_unclipped == pytest.approx(
                after, abs=1e-3)


def test_at_most_three_tips_largest_gain_first_only_for_actionable_features(
        advisor: TipAdvisor) -> None:
    definitions = load_feature_definitions()
    all_tips = advisor.tips(random_features(200, seed=3))
    assert any(all_tips)
    for tips in all_tips:
        assert len(tips) <= 3
        gains = [tip["points"] for tip in tips]
        assert gains == sorted(gains, reverse=True)
        assert len({tip["feature"] for tip in tips}) == len(tips)
        for tip in tips:
            feature = definitions.get(tip["feature"])
            assert feature.actionable
            assert feature.name not in definitions.protected
            if feature.direction:
                assert np.sign(tip["to"] - tip["from"]) == -feature.direction


def test_a_tip_suggests_a_value_observed_one_band_higher(advisor: TipAdvisor,
                                                       reference: TipReference) -> None:
    bands = [band.code for band in load_scorecard().bands]
    for tips in advisor.tips(random_features(100, seed=4)):
        for tip in tips:
            band = bands.index(tip["band"])
            column = reference.features.index(tip["feature"])
            observed = reference.values[band, column].astype(np.float32)
            assert np.float32(tip["to"]) in observed


def test_tips_are_written_in_both_languages_with_the_assumption(advisor: TipAdvisor) -> None:
    tips = [tip for tips in advisor.tips(random_features(100, seed=5)) for tip in tips]
    assert tips
    for tip in tips:
        for key in ("text_en", "text_zh", "assumption_en", "assumption_zh"):
            assert tip[key] and "{" not in tip[key], (key, tip[key])
        assert set(tip) >= {"feature", "from", "to", "points", "code"}


def test_missing_values_and_unconstrained_features_get_no_invented_tip(
        advisor: TipAdvisor, explainer: Explainer) -> None:
    values = random_features(1, seed=6)
    actionable = actionable_features(explainer)
    for name in actionable:
        values[0, feature_names().index(name)] = np.nan
    assert advisor.tips(values) == [[]]


def test_no_tips_above_the_top_of_the_range() -> None:
    top = Explainer(train_model(seed=12, n=3000, trees=60, depth=3, b=-30.0))
    reference = TipReference.fit(top, random_features(500, seed=13))
    assert TipAdvisor(top, reference).tips(random_features(20, seed=1)) == [[]] * 20


def test_the_reference_round_trips_through_its_file(reference: TipReference, tmp_path: Path) -> None:
    path = tmp_path / "tips.json"
    reference.save(path)
    loaded = TipReference.load(path)
    assert loaded.features == reference.features and loaded.bands == reference.bands
    assert np.array_equal(np.isnan(loaded.values), np.isnan(reference.values))
    assert np.allclose(np.nan_to_num(loaded.values), np.nan_to_num(reference.values))
    assert [p.name for p in tmp_path.iterdir()] == ["tips.json"]


def test_a_reference_of_another_model_is_refused(explainer: Explainer,
                                                 reference: TipReference) -> None:
    other = Explainer(train_model(seed=1, version="other"))
    with pytest.raises(ValueError, match="tip reference is for model test-v1, not other"):
        TipAdvisor(other, reference)


def _every_candidate_rescored(advisor: TipAdvisor, values: np.ndarray) -> list[list[tuple]]:
    """The definition, by brute force: re-score every candidate with the whole model."""
    explainer, reference = advisor.explainer, advisor.reference
    limits, bands = explainer.catalogue.limits, explainer.scorecard.bands
    chosen: list[list[tuple]] = []
    for row in values:
        before = unclipped_scores(explainer.model, row[None, :], SCALE)[0]
        target = min(int(np.searchsorted([b.min for b in bands[1:]], final_score(before, SCALE),
                                          side="right")) + 1, len(bands) - 1)
        tips = []
        for slot, name in enumerate(reference.features):
            column, direction = feature_names().index(name), advisor.directions[slot]
            if np.isnan(row[column]) or before >= SCALE.max_score:
                continue
            options = []
            for value in reference.values[target, slot].astype(np.float32):
                better = value > row[column] if direction < 0 else (
                    value < row[column] if direction > 0 else value != row[column])
                if np.isnan(value) or not better:
                    continue
                changed = row.copy()
                changed[column] = value
                after = unclipped_scores(explainer.model, changed[None, :], SCALE)[0]
                gain = min(after, SCALE.max_score) - before
                if gain >= limits.tip_min_points:
                    options.append((abs(float(value) - float(row[column])), name, float(value), gain))
            if options:
                tips.append(min(options, key=lambda option: option[0])[1:])
        tips.sort(key=lambda tip: (-tip[2], reference.features.index(tip[0])))
        chosen.append([(name, value, round(gain, 2)) for name, value, gain in tips[:limits.max_tips]])
    return chosen


def test_the_screened_choice_is_the_choice_of_rescoring_every_candidate(
        advisor: TipAdvisor) -> None:
    values = random_features(300, seed=21, missing=0.1)
    ours = [[(tip["feature"], float(np.float32(tip["to"])), tip["points"]) for tip in tips]
            for tips in advisor.tips(values)]
    assert ours == _every_candidate_rescored(advisor, values)
    assert sum(map(len, ours)) > 300


def test_tips_as_json_are_the_dumped_tips(advisor: TipAdvisor) -> None:
    values = random_features(400, seed=22, missing=0.1)
    values[0] = np.nan  # nothing to improve on: no tips
    texts = TipJson(advisor.explainer, advisor.reference).rows(advisor.choose(values), len(values))
    assert texts == [json.dumps(tips, ensure_ascii=False, separators=(",", ":"))
                     for tips in advisor.tips(values)]
    assert texts[0] == "[]" and any(len(json.loads(text)) == 3 for text in texts)
