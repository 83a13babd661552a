"""Exact TreeSHAP turned into score points: what a model needs to be explained, and the arithmetic.

score = A - B * (a * margin + b) is affine in the margin, and TreeSHAP splits
the margin exactly into a bias (the model's expected margin) plus one value
per feature. So

    base points    = A - B * (a * bias + b)
    feature points = -B * a * SHAP

and base + sum(feature points) is the unclipped score. SHAP values are exact
path-dependent TreeSHAP, computed from per-leaf tables (scoring/treeshap.py)
and equal to XGBoost's own ``pred_contribs`` (which shap.TreeExplainer calls
for XGBoost models; the tests check all three agree); the bias is XGBoost's.
Approximate contributions (``approx_contribs``) are never used: they move
points between features and reorder reasons.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import xgboost as xgb

from config.scorecard import ScaleDefinition
from scoring.scale import base_points, points_from_contributions, score_from_margin
from scoring.trees import TreeEnsemble
from scoring.treeshap import ShapTables

log = logging.getLogger(__name__)

FloatMatrix = npt.NDArray[np.float32]
# Up to these many rows, predict on one thread: waking a team of threads costs more than the
# work, and far more on a busy machine (measured: 1.8 ms against 55 ms for one row's SHAP).
SMALL_SHAP_BATCH = 64
SMALL_PREDICT_BATCH = 4096


@dataclass(frozen=True)
class ScoreModel:
    """What scoring and explaining need of a trained model.

    ``booster`` predicts the margin (log-odds of bad before calibration) from
    the numeric features ``feature_names``, in that order; (a, b) is the
    linear (Platt) calibration of that margin.
    """

    booster: xgb.Booster
    feature_names: tuple[str, ...]
    a: float
    b: float
    version: str = "unversioned"
    n_jobs: int = 0

    def __post_init__(self) -> None:
        if not self.feature_names:
            raise ValueError("feature_names must name at least one feature")
        if len(set(self.feature_names)) != len(self.feature_names):
            raise ValueError("feature_names holds a name twice")
        if not (np.isfinite(self.a) and np.isfinite(self.b)):
            raise ValueError(f"calibration (a, b) must be finite, got ({self.a!r}, {self.b!r})")
        n_booster = self.booster.num_features()
        if n_booster != len(self.feature_names):
            raise ValueError(f"feature_names has {len(self.feature_names)} names but the booster "
                             f"was trained on {n_booster} features")

    @classmethod
    def from_trainer(cls, trainer: Any, *, a: float, b: float, version: str = "unversioned") -> ScoreModel:
        """From a fitted scoring.train.ScoreTrainer (numeric features only)."""
        if getattr(trainer, "categories_", None):
            raise ValueError("explanations need numeric features; the trainer saw categorical "
                             f"columns: {', '.join(sorted(trainer.categories_))}")
        return cls(booster=trainer.booster_, feature_names=tuple(trainer.feature_names_),
                   a=float(a), b=float(b), version=version)

    # -- the model's arithmetic ------------------------------------------------

    def matrix(self, features: pl.DataFrame | np.ndarray | Mapping[str, Any]) -> FloatMatrix:
        """The model's float32 matrix in feature order; null and missing become NaN."""
        if isinstance(features, np.ndarray):
            values = np.asarray(features, dtype=np.float32)
            if values.ndim == 1:
                values = values[None, :]
            if values.ndim != 2 or values.shape[1] != len(self.feature_names):
                raise ValueError(f"expected {len(self.feature_names)} feature columns, "
                                 f"got shape {values.shape}")
            return values
        if isinstance(features, pl.DataFrame):
            missing = [name for name in self.feature_names if name not in features.columns]
            if missing:
                raise ValueError(f"missing feature columns: {', '.join(missing[:5])}")
            selected = features.select(pl.col(name).cast(pl.Float32) for name in self.feature_names)
            return selected.to_numpy().astype(np.float32, copy=False)
        return self.matrix(_vector(features, self.feature_names))

    def dmatrix(self, values: FloatMatrix) -> xgb.DMatrix:
        threads = 1 if values.shape[0] <= SMALL_SHAP_BATCH else self.n_jobs
        # No feature names: setting 90 names costs more than one row's SHAP, and the column
        # order is already the model's (see ``matrix``).
        return xgb.DMatrix(values, missing=np.nan, nthread=threads)

    def contributions(self, values: FloatMatrix) -> npt.NDArray[np.float64]:
        """Exact TreeSHAP contributions to the margin, one column per feature, then the bias.

        From the model's SHAP tables (scoring/treeshap.py, six times XGBoost's speed) when
        it has them, else from XGBoost's ``pred_contribs``: the same exact values.
        """
        tables = self._shap_tables
        if tables is None:
            return self._xgboost_contributions(values).astype(np.float64)
        out = np.empty((values.shape[0], len(self.feature_names) + 1))
        out[:, :-1] = tables.shap_values(values)
        out[:, -1] = self.bias
        return out

    def _xgboost_contributions(self, values: FloatMatrix) -> npt.NDArray[np.float32]:
        booster = self._single_thread if values.shape[0] <= SMALL_SHAP_BATCH else self.booster
        return booster.predict(self.dmatrix(values), pred_contribs=True, validate_features=False)

    @cached_property
    def trees(self) -> TreeEnsemble:
        """The booster's trees as flat arrays (tips walk them; SHAP tables are built on them)."""
        return TreeEnsemble.from_booster(self.booster)

    @cached_property
    def _shap_tables(self) -> ShapTables | None:
        try:
            return ShapTables.build(self.trees)
        except ValueError as exc:
            log.info("model %s is explained by XGBoost's TreeSHAP: %s", self.version, exc)
            return None

    def margin(self, values: FloatMatrix) -> npt.NDArray[np.float32]:
        """The margin, predicted in place (no DMatrix to build)."""
        booster = self._single_thread if values.shape[0] <= SMALL_PREDICT_BATCH else self.booster
        return booster.inplace_predict(values, predict_type="margin", missing=np.nan,
                                       validate_features=False)

    @cached_property
    def _single_thread(self) -> xgb.Booster:
        """A copy predicting on one thread: a few rows never wait on a thread team."""
        copy = xgb.Booster(model_file=bytearray(self.booster.save_raw()))
        copy.set_param({"nthread": 1})
        return copy

    @cached_property
    def bias(self) -> float:
        """The model's expected margin (the SHAP reference), the same for every row."""
        empty = np.full((1, len(self.feature_names)), np.nan, dtype=np.float32)
        return float(self._xgboost_contributions(empty)[0, -1])

    def used_features(self) -> npt.NDArray[np.bool_]:
        """Which features any tree splits on (the others always get zero points)."""
        used = set(self.booster.get_score(importance_type="weight"))
        if self.booster.feature_names is None:  # trained on a bare matrix: f0, f1, ...
            return np.array([f"f{index}" in used for index in range(len(self.feature_names))])
        return np.array([name in used for name in self.booster.feature_names])


def _vector(features: Mapping[str, Any], names: Sequence[str]) -> FloatMatrix:
    unknown = sorted(set(features) - set(names))
    if unknown:
        raise ValueError(f"unknown feature: {unknown[0]}")
    row = [np.nan if features.get(name) is None else float(features[name]) for name in names]
    return np.array([row], dtype=np.float32)


# -- pure arithmetic --------------------------------------------------------------


def feature_points(contributions: npt.ArrayLike, model: ScoreModel,
                   scale: ScaleDefinition) -> npt.NDArray[np.float64]:
    """-B * a * SHAP for every feature column (the bias column dropped)."""
    shap_values = np.asarray(contributions)[:, :-1].astype(np.float64)
    return points_from_contributions(shap_values, model.a, scale)


def model_base_points(model: ScoreModel, scale: ScaleDefinition) -> float:
    """A - B * (a * bias + b): the score of a person at the model's expected margin."""
    return base_points(model.bias, model.a, model.b, scale)


def unclipped_scores(model: ScoreModel, values: FloatMatrix,
                     scale: ScaleDefinition) -> npt.NDArray[np.float64]:
    """The model's unclipped score of each row, by plain prediction (no SHAP)."""
    margin = model.margin(values).astype(np.float64)
    return np.asarray(score_from_margin(margin, model.a, model.b, scale), dtype=np.float64)
