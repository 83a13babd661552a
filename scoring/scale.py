"""The arithmetic from a model's margin to a score and its band, as pure functions.

margin --(Platt: a * margin + b)--> log-odds of bad --(A - B * log-odds)--> score.
Both steps are affine, so a score stays an exact sum of per-feature points
(``points = -B * a * SHAP``) until the final rounding and clipping. Everything
here works elementwise on floats or numpy arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from config.scorecard import Band, ScaleDefinition

ArrayOrFloat = TypeVar("ArrayOrFloat", float, npt.NDArray[np.float64])


def calibrated_log_odds(margin: ArrayOrFloat, a: float, b: float) -> ArrayOrFloat:
    """Log-odds of bad after Platt calibration, linear in the margin."""
    return a * margin + b


def score_from_log_odds(log_odds: ArrayOrFloat, scale: ScaleDefinition) -> ArrayOrFloat:
    """The unclipped, unrounded score: A - B * ln(odds of bad)."""
    return scale.offset - scale.factor * log_odds


def log_odds_from_score(score: ArrayOrFloat, scale: ScaleDefinition) -> ArrayOrFloat:
    """The inverse of :func:`score_from_log_odds`."""
    return (scale.offset - score) / scale.factor


def probability_from_log_odds(log_odds: ArrayOrFloat) -> ArrayOrFloat:
    """The logistic function, stable for large magnitudes."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(log_odds, dtype=float)))  # type: ignore[return-value]


def log_odds_from_probability(probability: ArrayOrFloat) -> ArrayOrFloat:
    """ln(p / (1 - p)); p must lie strictly between 0 and 1."""
    p = np.asarray(probability, dtype=float)
    if np.any((p <= 0) | (p >= 1)):
        raise ValueError("probability must lie strictly between 0 and 1")
    return np.log(p / (1.0 - p))  # type: ignore[return-value]


def score_from_margin(
    margin: ArrayOrFloat, a: float, b: float, scale: ScaleDefinition
) -> ArrayOrFloat:
    """The unclipped score of a model margin under calibration (a, b)."""
    return score_from_log_odds(calibrated_log_odds(margin, a, b), scale)


def final_score(unclipped: ArrayOrFloat, scale: ScaleDefinition) -> ArrayOrFloat:
    """Round to whole points (half away from zero), then clip to the scale's range."""
    values = np.asarray(unclipped, dtype=float)
    rounded = np.sign(values) * np.floor(np.abs(values) + 0.5)
    clipped = np.clip(rounded, scale.min_score, scale.max_score)
    return clipped if clipped.ndim else float(clipped)  # type: ignore[return-value]


def band_index(score: ArrayOrFloat, bands: Sequence[Band]) -> npt.NDArray[np.int64]:
    """The index into ``bands`` (sorted, tiling the range) of each final score."""
    edges = np.array([band.min for band in bands[1:]], dtype=float)
    return np.searchsorted(edges, np.asarray(score, dtype=float), side="right").astype(np.int64)


def band_for(score: float, bands: Sequence[Band]) -> Band:
    """The band a final score falls in."""
    return bands[int(band_index(score, bands))]


def points_from_contributions(
    contributions: npt.NDArray[np.float64], a: float, scale: ScaleDefinition
) -> npt.NDArray[np.float64]:
    """Per-feature points from SHAP contributions to the margin: -B * a * SHAP."""
    return -scale.factor * a * np.asarray(contributions, dtype=float)


def base_points(expected_margin: float, a: float, b: float, scale: ScaleDefinition) -> float:
    """The points every score starts from: the score of the model's expected margin."""
    return float(score_from_margin(expected_margin, a, b, scale))
