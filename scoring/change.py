"""Why a score changed: the difference of two explained scores, split exactly.

Both scores are additive (base + sum of feature points), so their difference
is exactly the change of the base points plus the change of every feature's
points, whatever the model versions: a feature missing from one side counts
zero there. The base points move only when the model (or its calibration)
changed; that part is reported on its own line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

from config.feature_definitions import FeatureSet, load_feature_definitions
from config.reasons import ReasonCatalogue, load_reasons

TOP_MOVERS = 5
POINTS_DECIMALS = 8


class Explained(Protocol):
    """What a change needs of each side (a PublishedScore has all of it)."""

    as_of: date
    score: int | None
    score_unclipped: float | None
    base_points: float | None
    features: dict[str, float]
    dimensions: dict[str, float]
    model_version: str


@dataclass(frozen=True)
class ScoreChange:
    since: date
    as_of: date
    score_before: int
    score_after: int
    difference: int                  # of the published scores
    unclipped_difference: float      # = base_points + sum(features) exactly
    base_points: float               # change of the base points (model changes only)
    features: dict[str, float]       # change of each feature's points
    dimensions: dict[str, float]     # change of each dimension's points
    model_before: str
    model_after: str
    movers: list[dict[str, Any]]     # the largest changes in plain language

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(), "as_of": self.as_of.isoformat(),
            "score_before": self.score_before, "score_after": self.score_after,
            "difference": self.difference, "unclipped_difference": self.unclipped_difference,
            "base_points": self.base_points, "features": self.features,
            "dimensions": self.dimensions, "model_before": self.model_before,
            "model_after": self.model_after, "movers": self.movers,
        }


def explain_change(before: Explained, after: Explained, *, feature_set: FeatureSet | None = None,
                   catalogue: ReasonCatalogue | None = None, top: int = TOP_MOVERS) -> ScoreChange:
    """Decompose ``after - before`` into per-feature and per-dimension point changes."""
    for side, name in ((before, "before"), (after, "after")):
        if side.score is None or side.score_unclipped is None or side.base_points is None:
            raise ValueError(f"the {name} score ({side.as_of}) was not scored: nothing to compare")
    if top < 0:
        raise ValueError(f"top must not be negative, got {top}")
    assert before.score is not None and after.score is not None
    names = list(after.features) + [name for name in before.features if name not in after.features]
    features = {name: after.features.get(name, 0.0) - before.features.get(name, 0.0)
                for name in names}
    dimensions = {name: after.dimensions.get(name, 0.0) - before.dimensions.get(name, 0.0)
                  for name in dict.fromkeys([*after.dimensions, *before.dimensions])}
    base = float(after.base_points) - float(before.base_points)  # type: ignore[arg-type]
    unclipped = float(after.score_unclipped) - float(before.score_unclipped)  # type: ignore[arg-type]
    movers = _movers(features, base, before, after, feature_set or load_feature_definitions(),
                     catalogue or load_reasons(), top)
    return ScoreChange(
        since=before.as_of, as_of=after.as_of, score_before=before.score,
        score_after=after.score, difference=after.score - before.score,
        unclipped_difference=unclipped, base_points=round(base, POINTS_DECIMALS),
        features={name: round(value, POINTS_DECIMALS) for name, value in features.items()},
        dimensions={name: round(value, POINTS_DECIMALS) for name, value in dimensions.items()},
        model_before=before.model_version, model_after=after.model_version, movers=movers,
    )


def _movers(features: dict[str, float], base: float, before: Explained, after: Explained,
            feature_set: FeatureSet, catalogue: ReasonCatalogue, top: int) -> list[dict[str, Any]]:
    texts = catalogue.change
    since = before.as_of.isoformat()
    ranked = sorted(features.items(), key=lambda item: (-abs(item[1]), item[0]))
    movers = []
    if abs(base) >= 0.005:
        signed = _signed(base)
        movers.append({
            "feature": None, "points": round(base, 2),
            "text_en": texts.base_en.format(before=before.model_version, after=after.model_version,
                                            points=signed),
            "text_zh": texts.base_zh.format(before=before.model_version, after=after.model_version,
                                            points=signed),
        })
    for name, points in ranked[:top]:
        if abs(points) < 0.005:
            break
        en, zh = _descriptions(name, feature_set)
        signed = _signed(points)
        movers.append({
            "feature": name, "points": round(points, 2),
            "text_en": texts.feature_en.format(feature=en, points=signed, since=since),
            "text_zh": texts.feature_zh.format(feature=zh, points=signed, since=since),
        })
    return movers


def _descriptions(name: str, feature_set: FeatureSet) -> tuple[str, str]:
    try:
        feature = feature_set.get(name)
    except KeyError:  # a feature of an older model, no longer defined
        return name, name
    return feature.description_en, feature.description_zh


def _signed(points: float) -> str:
    return f"{points:+.1f}"
