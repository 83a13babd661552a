"""The declarative feature definitions: the real catalogue, and every refusal at load time."""

from __future__ import annotations

import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from config.feature_definitions import (
    DEFINITIONS_FILE,
    FeatureDefinitionError,
    load_feature_definitions,
    parse_feature_definitions,
)
from tests.features.feature_rows import definitions

GOOD = {"name": "spend_{window}", "kinds": ["payment"], "aggregation": "sum", "column": "amount",
        "windows": [30, 90]}


def test_catalogue_has_at_least_fifty_features_in_all_five_dimensions() -> None:
    feature_set = load_feature_definitions()
    per_dimension = Counter(feature.dimension for feature in feature_set.features)
    assert len(feature_set.features) >= 50
    assert set(per_dimension) == set(feature_set.dimensions) == {
        "credit_history", "behaviour", "capacity", "identity", "connections"}
    assert feature_set.dimensions["credit_history"].zh == "信用历史"


def test_catalogue_never_uses_a_protected_attribute() -> None:
    feature_set = load_feature_definitions()
    assert {"birth_year", "gender"} <= set(feature_set.protected)
    for feature in feature_set.features:
        used = {feature.column} | {c.column for c in (*feature.filters, *feature.where)}
        assert not used & set(feature_set.protected), feature.name


def test_windows_expand_into_one_feature_each_with_texts_resolved() -> None:
    feature_set = definitions(GOOD)
    assert feature_set.names == ["spend_30d", "spend_90d"]
    assert feature_set.get("spend_90d").window == 90
    assert feature_set.get("spend_90d").description_en == "x in the last 90 days"
    assert feature_set.get("spend_30d").description_zh == "x 近30天"


def test_hash_ignores_formatting_and_follows_content(tmp_path: Path) -> None:
    text = DEFINITIONS_FILE.read_text(encoding="utf-8")
    reformatted = tmp_path / "features.toml"
    reformatted.write_text("# another comment\n" + text.replace(" = ", "    =   "), encoding="utf-8")
    original = load_feature_definitions()
    assert load_feature_definitions(reformatted).hash == original.hash
    changed = tmp_path / "changed.toml"
    changed.write_text(text.replace('direction = -1', 'direction = 1', 1), encoding="utf-8")
    assert load_feature_definitions(changed).hash != original.hash


def test_loader_is_cached_per_file() -> None:
    assert load_feature_definitions() is load_feature_definitions(DEFINITIONS_FILE)


@pytest.mark.parametrize(("change", "message"), [
    ({"kinds": ["payments"]}, "unknown kind 'payments'"),
    ({"column": "amount_paid"}, "unknown column 'amount_paid' for kinds payment"),
    ({"column": "days_late"}, "unknown column 'days_late' for kinds payment"),
    ({"windows": [30, 60]}, "bad window 60"),
    ({"windows": [30, 30]}, "a window is listed twice"),
    ({"windows": []}, "windows"),
    ({"name": "spend"}, "several windows need '{window}' in the name"),
    ({"dimension": "wealth"}, "unknown dimension 'wealth'"),
    ({"direction": 2}, "direction"),
    ({"aggregation": "median"}, "aggregation"),
    ({"column": None}, "aggregation sum needs a column"),
    ({"colour": "red"}, "unknown field 'colour'"),
    ({"filters": [{"column": "merchant_category", "op": "eq", "value": "casino"}]},
     "filter on merchant_category: unknown value 'casino'"),
    ({"filters": [{"column": "amount", "op": "in", "value": 3}]},
     "filter on amount: in needs a list of values"),
    ({"aggregation": "trend", "of": "sum", "windows": ["all"], "name": "t"},
     "a trend needs a window in days"),
    ({"aggregation": "share", "column": None}, "'where' goes with aggregation share"),
    ({"aggregation": "mean", "column": "channel"}, "needs a numeric column, not 'channel'"),
])
def test_invalid_definition_is_refused_with_one_line(change: dict[str, Any], message: str) -> None:
    with pytest.raises(FeatureDefinitionError) as refused:
        definitions({**GOOD, **change})
    text = str(refused.value)
    assert message in text
    assert "\n" not in text
    assert "feature 'spend" in text or "feature 't'" in text


@pytest.mark.parametrize("column", ["gender", "birth_year", "ethnicity", "religion"])
def test_protected_attribute_is_refused(column: str) -> None:
    feature = {"name": "p", "kinds": ["profile"], "aggregation": "count",
               "filters": [{"column": column, "op": "not_null"}]}
    with pytest.raises(FeatureDefinitionError, match=f"uses protected attribute '{column}'"):
        definitions(feature)


def test_duplicate_name_after_expansion_is_refused() -> None:
    clash = {**GOOD, "name": "spend_90d", "windows": [90]}
    with pytest.raises(FeatureDefinitionError, match="duplicate feature name 'spend_90d'"):
        definitions(GOOD, clash)


def test_contact_aggregation_needs_its_flag_and_contact_kind() -> None:
    share = {"name": "c", "kinds": ["contact"], "aggregation": "contact_share"}
    with pytest.raises(FeatureDefinitionError, match="contact_share needs a flag"):
        definitions(share)
    with pytest.raises(FeatureDefinitionError, match="read kinds \\['contact'\\]"):
        definitions({**share, "kinds": ["payment"], "flag": {"kinds": ["default"]}})


def test_a_broken_file_is_refused_naming_it(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[[feature]\nname = ", encoding="utf-8")
    with pytest.raises(FeatureDefinitionError, match=r"broken\.toml: cannot read"):
        load_feature_definitions(broken)


def test_a_file_without_features_is_refused() -> None:
    document = tomllib.loads(DEFINITIONS_FILE.read_text(encoding="utf-8"))
    document["feature"] = []
    with pytest.raises(FeatureDefinitionError, match="no \\[\\[feature\\]\\] defined"):
        parse_feature_definitions(document)


def test_refusals_leave_the_loaded_catalogue_unchanged() -> None:
    before = load_feature_definitions()
    with pytest.raises(FeatureDefinitionError):
        definitions({**GOOD, "kinds": ["nope"]})
    assert load_feature_definitions() is before
    assert len(before.features) == len(load_feature_definitions().features)
