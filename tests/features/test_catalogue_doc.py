"""docs/features.md is generated from the definitions and must be current."""

from __future__ import annotations

from pathlib import Path

from config.feature_definitions import load_feature_definitions
from features.catalogue_doc import render

PAGE = Path(__file__).resolve().parents[2] / "docs" / "features.md"


def test_features_page_is_current() -> None:
    expected = render(load_feature_definitions())
    assert PAGE.read_text(encoding="utf-8") == expected, (
        "docs/features.md is stale: run `python -m features.catalogue_doc > docs/features.md`")


def test_features_page_lists_every_feature() -> None:
    page = render(load_feature_definitions())
    for name in load_feature_definitions().names:
        assert f"`{name}`" in page
