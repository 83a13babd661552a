"""The JSON texts of published rows (reasons, tips, points), written for a whole batch at once.

A recompute publishes a million rows, each with its reasons and tips as JSON.
Building a dict per reason and per tip and handing it to ``json.dumps`` costs
more than everything else per row, so the parts that never change (a reason's
code and texts, a feature's name and code, a band's assumption) are encoded
once, and a row's text is those fragments joined with its own numbers. The
texts are byte for byte what ``json.dumps(..., ensure_ascii=False,
separators=(",", ":"))`` writes for the dicts of :func:`scoring.reasons.reason_records`
and :func:`scoring.tip_texts.tip_record` (the tests compare them).
"""

from __future__ import annotations

import json

import numpy as np
import numpy.typing as npt
import polars as pl

from scoring.explain import POINTS_DECIMALS, BatchExplanation, Explainer
from scoring.reasons import NO_REASON, ReasonLayout
from scoring.tip_texts import _lower_first, _plain, format_value, tip_record
from scoring.tips import TipChoice, TipReference

_encode = json.encoder.encode_basestring  # type: ignore[attr-defined]  # the C encoder of a str


def dumps(value: object) -> str:
    """Compact JSON as published (UTF-8 text, no spaces)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def points_json(points: npt.NDArray[np.float64], names: tuple[str, ...]) -> list[str]:
    """Each row as a JSON object name -> points, encoded by Polars (4x faster than json)."""
    frame = pl.DataFrame(np.round(points, POINTS_DECIMALS), schema=list(names), orient="row")
    return frame.select(pl.struct(pl.all()).struct.json_encode()).to_series().to_list()


class ReasonJson:
    """Rows' reasons as JSON: each reason's fixed part encoded once, then its points."""

    def __init__(self, layout: ReasonLayout) -> None:
        self.prefixes = [
            dumps({"code": r.code, "text_en": r.text_en, "text_zh": r.text_zh, "points": 0})[:-2]
            for r in layout.reasons
        ]

    def rows(self, batch: BatchExplanation) -> list[str]:
        prefixes, texts = self.prefixes, []
        chosen = np.take_along_axis(batch.group_points, np.maximum(batch.reasons, 0), axis=1)
        for indices, points in zip(batch.reasons.tolist(), chosen.tolist(), strict=True):
            parts = [f"{prefixes[i]}{round(p, 4)!r}}}" for i, p in zip(indices, points, strict=True)
                     if i != NO_REASON]
            texts.append(f"[{','.join(parts)}]")
        return texts


class TipJson:
    """Rows' tips as JSON, each feature's and band's fixed texts encoded once."""

    def __init__(self, explainer: Explainer, reference: TipReference) -> None:
        catalogue, feature_set = explainer.catalogue, explainer.feature_set
        self.explainer = explainer
        self.reference = reference
        self.bands = explainer.scorecard.bands
        self.texts = catalogue.tips
        self.codes = [catalogue.reason_for(name).code for name in reference.features]
        self.templates = [catalogue.reason_for(name).tip for name in reference.features]
        self.descriptions = [(_lower_first(feature_set.get(name).description_en),
                              feature_set.get(name).description_zh) for name in reference.features]
        self._fixed_parts: dict[tuple[int, int, float], tuple[str, str, str, str, str]] = {}

    def rows(self, choice: TipChoice, n_rows: int) -> list[str]:
        """Per row 0..n_rows-1 the JSON list of its tips (``[]`` for none)."""
        per_user: list[list[str]] = [[] for _ in range(n_rows)]
        columns = zip(choice.user.tolist(), choice.feature.tolist(), choice.current.tolist(),
                      choice.proposed.tolist(), choice.points.tolist(), choice.score_to.tolist(),
                      choice.band.tolist(), strict=True)
        for user, feature, current, proposed, points, score_to, band in columns:
            per_user[user].append(self._tip(feature, current, proposed, points, score_to, band))
        return [f"[{','.join(tips)}]" for tips in per_user]

    def _tip(self, feature: int, current: float, proposed: float, points: float, score_to: int,
             band: int) -> str:
        template = self.templates[feature]
        if template is None:  # tip_record raises its one-line error
            return dumps(tip_record(self.explainer, self.reference.features[feature],
                                    current=current, proposed=proposed, points=points,
                                    score_to=score_to, band=self.bands[band]))
        head, to_en, to_zh, band_code, assumptions = self._fixed(feature, band, proposed)
        from_en = format_value(current, template.unit, self.texts, "en")
        from_zh = format_value(current, template.unit, self.texts, "zh")
        desc_en, desc_zh = self.descriptions[feature]
        text_en = template.en.format(feature=desc_en, **{"from": from_en, "to": to_en})
        text_zh = template.zh.format(feature=desc_zh, **{"from": from_zh, "to": to_zh})
        return (f'{head}"from":{_plain(current)!r},"to":{_plain(proposed)!r},'
                f'"points":{round(points, 2)!r},"score_to":{score_to},"band":{band_code},'
                f'"text_en":{_encode(text_en)},"text_zh":{_encode(text_zh)},{assumptions}}}')

    def _fixed(self, feature: int, band: int, proposed: float) -> tuple[str, str, str, str, str]:
        """The parts that depend only on (feature, band, proposed value), which come from a table.

        The head (feature, code), the proposed value in both languages, the band's
        code and the assumptions, encoded.
        """
        key = (feature, band, proposed)
        parts = self._fixed_parts.get(key)
        if parts is None:
            template, target, texts = self.templates[feature], self.bands[band], self.texts
            assert template is not None
            to_en = format_value(proposed, template.unit, texts, "en")
            to_zh = format_value(proposed, template.unit, texts, "zh")
            en = texts.assumption_en.format(to=to_en, band_en=target.en, band_zh=target.zh)
            zh = texts.assumption_zh.format(to=to_zh, band_en=target.en, band_zh=target.zh)
            head = (f'{{"feature":{_encode(self.reference.features[feature])},'
                    f'"code":{_encode(self.codes[feature])},')
            assumptions = f'"assumption_en":{_encode(en)},"assumption_zh":{_encode(zh)}'
            parts = (head, to_en, to_zh, _encode(target.code), assumptions)
            self._fixed_parts[key] = parts
        return parts
