"""Explanations of scores: base points, points per feature and dimension, reason codes.

:class:`Explainer` is built once per model and explains a whole batch with one
exact TreeSHAP call and a few numpy operations, so the work around SHAP costs
almost nothing; a single row goes through the same code. The arithmetic is
in :mod:`scoring.points`, the reason groups in :mod:`scoring.reasons`, tips in
:mod:`scoring.tips` and "why it changed" in :mod:`scoring.change`.

Reference point: points are measured against the model's expected margin over
its training population (the SHAP bias). ``base_points`` is the score of that
reference person; a feature's points say how far this person's value moved
the score from there, so a negative number means "this cost you points
compared with the typical person the model learnt from".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from config.feature_definitions import FeatureSet, load_feature_definitions
from config.reasons import ReasonCatalogue, load_reasons
from config.scorecard import Scorecard, load_scorecard
from scoring.points import FloatMatrix, ScoreModel, feature_points, model_base_points
from scoring.reasons import (
    ReasonLayout,
    dimension_points,
    reason_points,
    reason_records,
    top_reasons,
)
from scoring.scale import band_index, final_score

# Points are kept to 8 decimals: 100 features then still add up to 1e-6.
POINTS_DECIMALS = 8


@dataclass(frozen=True)
class Explanation:
    """One person's explained score (before publishing: no as-of date or snapshot yet)."""

    score: int
    score_unclipped: float
    clipped: bool
    band_code: str
    base_points: float
    features: dict[str, float]
    dimensions: dict[str, float]
    reasons: list[dict[str, Any]]
    model_version: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "score": self.score, "score_unclipped": self.score_unclipped, "clipped": self.clipped,
            "band_code": self.band_code, "base_points": self.base_points,
            "features": self.features, "dimensions": self.dimensions, "reasons": self.reasons,
            "model_version": self.model_version,
        }


@dataclass(frozen=True)
class BatchExplanation:
    """A batch's explanations as arrays (rows in input order)."""

    base_points: float
    points: npt.NDArray[np.float64]          # (rows, features)
    score_unclipped: npt.NDArray[np.float64]  # base + row sum of points
    score: npt.NDArray[np.int64]              # rounded, then clipped to the range
    clipped: npt.NDArray[np.bool_]
    band: npt.NDArray[np.int64]               # index into the scorecard's bands
    dimensions: npt.NDArray[np.float64]       # (rows, dimensions)
    group_points: npt.NDArray[np.float64]     # (rows, reason groups)
    reasons: npt.NDArray[np.int64]            # (rows, max_reasons): group indices or -1

    def __len__(self) -> int:
        return int(self.score.shape[0])


class Explainer:
    """Explain a model's scores.

    Parameters
    ----------
    model: the model, its calibration and its feature order.
    feature_set: the feature definitions (dimensions); default config/features.toml.
    catalogue: the reason catalogue; default config/reasons.toml.
    scorecard: the scale and bands; default config/scorecard.toml.
    """

    def __init__(self, model: ScoreModel, *, feature_set: FeatureSet | None = None,
                 catalogue: ReasonCatalogue | None = None, scorecard: Scorecard | None = None) -> None:
        self.model = model
        self.feature_set = feature_set or load_feature_definitions()
        self.catalogue = catalogue or load_reasons()
        self.scorecard = scorecard or load_scorecard()
        self.layout = ReasonLayout.build(model.feature_names, feature_set=self.feature_set,
                                         catalogue=self.catalogue, used=model.used_features())
        self.base_points = model_base_points(model, self.scorecard.scale)

    def explain(self, features: pl.DataFrame | np.ndarray) -> BatchExplanation:
        """Explain every row: one exact TreeSHAP pass, then matrix arithmetic."""
        values = self.model.matrix(features)
        return self.explain_matrix(values)

    def explain_matrix(self, values: FloatMatrix) -> BatchExplanation:
        scale = self.scorecard.scale
        points = feature_points(self.model.contributions(values), self.model, scale)
        unclipped = self.base_points + points.sum(axis=1)
        rounded = np.floor(unclipped + 0.5)
        score = np.asarray(final_score(unclipped, scale), dtype=np.int64).reshape(-1)
        groups = reason_points(points, self.layout)
        return BatchExplanation(
            base_points=self.base_points, points=points, score_unclipped=unclipped, score=score,
            clipped=(rounded < scale.min_score) | (rounded > scale.max_score),
            band=band_index(score, self.scorecard.bands),
            dimensions=dimension_points(points, self.layout), group_points=groups,
            reasons=top_reasons(groups, self.layout),
        )

    def explain_one(self, features: dict[str, Any] | np.ndarray) -> Explanation:
        """One person's explanation, from a mapping of feature values (missing ones: None)."""
        return self.record(self.explain_matrix(self.model.matrix(features)), 0)

    def record(self, batch: BatchExplanation, row: int) -> Explanation:
        """Row ``row`` of a batch as an :class:`Explanation` of plain Python values."""
        names, layout = self.model.feature_names, self.layout
        points = np.round(batch.points[row], POINTS_DECIMALS).tolist()
        dimensions = np.round(batch.dimensions[row], POINTS_DECIMALS).tolist()
        return Explanation(
            score=int(batch.score[row]), score_unclipped=float(batch.score_unclipped[row]),
            clipped=bool(batch.clipped[row]),
            band_code=self.scorecard.bands[int(batch.band[row])].code,
            base_points=float(batch.base_points),
            features=dict(zip(names, points, strict=True)),
            dimensions=dict(zip(layout.dimension_names, dimensions, strict=True)),
            reasons=reason_records(batch.reasons[row], batch.group_points[row], layout),
            model_version=self.model.version,
        )
