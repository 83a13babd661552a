"""A tip in words: the templates of config/reasons.toml filled with formatted values."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from config.reasons import TipTexts, Unit
from config.scorecard import Band

if TYPE_CHECKING:
    from scoring.explain import Explainer


def tip_record(explainer: Explainer, feature: str, *, current: float, proposed: float,
               points: float, score_to: int, band: Band) -> dict[str, Any]:
    """The published tip: feature, from, to, points and both languages, with its assumption."""
    reason = explainer.catalogue.reason_for(feature)
    template = reason.tip
    if template is None:
        raise ValueError(f"reason {reason.code} has no tip template for feature '{feature}'")
    texts = explainer.catalogue.tips
    definition = explainer.feature_set.get(feature)
    shown = {language: (format_value(current, template.unit, texts, language),
                        format_value(proposed, template.unit, texts, language))
             for language in ("en", "zh")}
    description_en = _lower_first(definition.description_en)
    return {
        "feature": feature, "code": reason.code,
        "from": _plain(current), "to": _plain(proposed), "points": round(points, 2),
        "score_to": score_to, "band": band.code,
        "text_en": template.en.format(feature=description_en, **_values(shown["en"])),
        "text_zh": template.zh.format(feature=definition.description_zh, **_values(shown["zh"])),
        "assumption_en": texts.assumption_en.format(to=shown["en"][1], band_en=band.en,
                                                    band_zh=band.zh),
        "assumption_zh": texts.assumption_zh.format(to=shown["zh"][1], band_en=band.en,
                                                    band_zh=band.zh),
    }


def format_value(value: float, unit: Unit, texts: TipTexts, language: str) -> str:
    """A value as a person reads it: 83%, 12 days, 1,200, yes."""
    zh = language == "zh"
    if unit == "share":
        return f"{value * 100:.0f}%"
    if unit == "flag":
        yes, no = (texts.flag_yes_zh, texts.flag_no_zh) if zh else (texts.flag_yes_en, texts.flag_no_en)
        return yes if value >= 0.5 else no
    if unit == "days":
        return (texts.days_zh if zh else texts.days_en).format(value=f"{value:.0f}")
    if unit == "months":
        return (texts.months_zh if zh else texts.months_en).format(value=f"{value:.0f}")
    if unit == "money":
        return f"{value:,.0f}"
    if unit == "ratio":
        return f"{value:.2f}"
    return f"{value:.0f}"


def _values(pair: tuple[str, str]) -> dict[str, str]:
    return {"from": pair[0], "to": pair[1]}


def _plain(value: float) -> float:
    """The float32 the model saw, written with the fewest digits that read back the same."""
    return float(str(np.float32(value)))


def _lower_first(text: str) -> str:
    if len(text) > 1 and text[0].isupper() and not text[1].isupper():
        return text[0].lower() + text[1:]
    return text
