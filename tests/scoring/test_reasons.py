from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest

from config.feature_definitions import load_feature_definitions
from config.reasons import REASONS_FILE, ReasonsError, check_against, load_reasons, parse_reasons
from scoring import reason_catalogue
from scoring.explain import Explainer
from scoring.points import ScoreModel
from scoring.reasons import NO_REASON, ReasonLayout, top_reasons
from tests.scoring.explain_models import random_features, train_model


@pytest.fixture(scope="module")
def model() -> ScoreModel:
    return train_model(seed=21, trees=40, depth=4)


@pytest.fixture(scope="module")
def explainer(model: ScoreModel) -> Explainer:
    return Explainer(model)


def _document() -> dict:
    return tomllib.loads(REASONS_FILE.read_text(encoding="utf-8"))


def test_every_feature_has_exactly_one_reason_and_codes_are_unique() -> None:
    catalogue = load_reasons()
    assigned = check_against(catalogue, load_feature_definitions())
    assert set(assigned) == set(load_feature_definitions().names)
    codes = [reason.code for reason in catalogue.reasons]
    assert len(codes) == len(set(codes))
    assert all(reason.text_en and reason.text_zh for reason in catalogue.reasons)


def test_exactly_the_actionable_features_have_tip_templates() -> None:
    definitions = load_feature_definitions()
    for name, reason in check_against(load_reasons(), definitions).items():
        assert (reason.tip is not None) == definitions.get(name).actionable, name


def test_reasons_are_the_largest_losses_ordered_at_most_four_with_both_texts(
        explainer: Explainer) -> None:
    batch = explainer.explain(random_features(200, seed=8))
    catalogue = load_reasons()
    usable = {explainer.layout.reasons[i].code
              for i in np.flatnonzero(explainer.layout.reason_usable)}
    for row in range(len(batch)):
        record = explainer.record(batch, row)
        totals: dict[str, float] = {}
        for name, points in record.features.items():
            code = catalogue.reason_for(name).code
            if code in usable:
                totals[code] = totals.get(code, 0.0) + points
        expected = sorted(totals.items(), key=lambda item: item[1])[:4]
        assert len(record.reasons) == min(4, len(usable))
        assert [item["points"] for item in record.reasons] == sorted(
            item["points"] for item in record.reasons)
        for reason, (_code, points) in zip(record.reasons, expected, strict=True):
            assert reason["points"] == pytest.approx(points, abs=1e-3)
            assert totals[reason["code"]] == pytest.approx(points, abs=1e-9)
            assert reason["text_en"] and reason["text_zh"]
            assert reason["text_en"] == catalogue.get(reason["code"]).text_en


def test_a_score_with_nothing_negative_still_gets_its_weakest_factors(explainer: Explainer) -> None:
    layout = explainer.layout
    positive = np.abs(np.random.default_rng(0).normal(size=(3, len(layout.reasons)))) + 1.0
    chosen = top_reasons(positive, layout)
    assert (chosen != NO_REASON).sum(axis=1).tolist() == [4, 4, 4]
    for row in range(3):
        usable = np.flatnonzero(layout.reason_usable)
        weakest = usable[np.argsort(positive[row, usable], kind="stable")[:4]]
        assert chosen[row].tolist() == weakest.tolist()


def test_ties_go_to_the_catalogue_order(explainer: Explainer) -> None:
    layout = explainer.layout
    flat = np.full((2, len(layout.reasons)), -1.0)
    usable = np.flatnonzero(layout.reason_usable)
    assert top_reasons(flat, layout)[0].tolist() == usable[:4].tolist()


def test_groups_the_model_never_uses_are_never_reasons() -> None:
    names = load_feature_definitions().names
    used = np.zeros(len(names), dtype=bool)
    used[names.index("repay_count_90d")] = True
    layout = ReasonLayout.build(tuple(names), feature_set=load_feature_definitions(),
                                catalogue=load_reasons(), used=used)
    chosen = top_reasons(np.full((1, len(layout.reasons)), -5.0), layout)
    assert [layout.reasons[i].code for i in chosen[0] if i != NO_REASON] == ["CH01"]


def test_a_feature_without_a_reason_is_refused() -> None:
    document = _document()
    document["reason"] = [item for item in document["reason"] if item["code"] != "CH02"]
    with pytest.raises(ReasonsError, match="feature 'repay_ontime_share_90d' has no reason"):
        check_against(parse_reasons(document), load_feature_definitions())


def test_a_duplicate_code_is_refused() -> None:
    document = _document()
    document["reason"][1]["code"] = document["reason"][0]["code"]
    with pytest.raises(ReasonsError, match="duplicate reason code CH01"):
        parse_reasons(document)


def test_a_tip_on_a_feature_that_cannot_change_is_refused() -> None:
    document = _document()
    entry = next(item for item in document["reason"] if item["code"] == "CH12")
    entry["tip"] = {"en": "x", "zh": "x", "unit": "months"}
    with pytest.raises(ReasonsError, match="CH12 has a tip but feature 'credit_history_months'"):
        check_against(parse_reasons(document), load_feature_definitions())


def test_a_code_with_another_dimensions_prefix_is_refused() -> None:
    document = _document()
    next(item for item in document["reason"] if item["code"] == "CN01")["code"] = "CH99"
    with pytest.raises(ReasonsError, match="CH99 covers 'contacts' of dimension connections"):
        check_against(parse_reasons(document), load_feature_definitions())


def test_an_unreadable_file_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "reasons.toml"
    path.write_text("[prefixes\n", encoding="utf-8")
    with pytest.raises(ReasonsError, match=r"reasons\.toml: cannot read"):
        load_reasons(path)
    assert path.read_text(encoding="utf-8") == "[prefixes\n"


def test_published_catalogue_is_current() -> None:
    document = reason_catalogue.catalogue_document(load_reasons(), load_feature_definitions())
    assert reason_catalogue.JSON_FILE.read_text(encoding="utf-8") == \
        reason_catalogue.render_json(document), "run: python -m scoring.reason_catalogue"
    assert reason_catalogue.MARKDOWN_FILE.read_text(encoding="utf-8") == \
        reason_catalogue.render_markdown(document), "run: python -m scoring.reason_catalogue"


def test_large_batches_choose_the_same_reasons_as_a_full_stable_sort(explainer: Explainer) -> None:
    layout = explainer.layout
    rng = np.random.default_rng(1)
    # Coarse values make ties common, also at the fourth place.
    points = rng.integers(-3, 3, size=(1000, len(layout.reasons))).astype(float)
    usable = np.flatnonzero(layout.reason_usable)
    expected = usable[np.argsort(points[:, usable], axis=1, kind="stable")[:, :4]]
    assert np.array_equal(top_reasons(points, layout)[:, :4], expected)
