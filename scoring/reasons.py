"""Dimensions and reason codes from feature points, for a whole batch at once.

A model's features are laid onto two one-hot matrices once (feature x
dimension, feature x reason), so a batch's dimension and reason points are
two matrix products, and the reasons of every row one partial sort. The
reasons of a score are the reason groups with the fewest points, most costly
first, at most ``max_reasons``; when nothing cost points they are the weakest
factors (FICO does the same). Groups whose features no tree splits on always
have zero points and never appear as a reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from config.feature_definitions import FeatureSet
from config.reasons import Reason, ReasonCatalogue

NO_REASON = -1
SMALL_BATCH = 256


@dataclass(frozen=True)
class ReasonLayout:
    """Where each of a model's features goes: its dimension and its reason group."""

    feature_names: tuple[str, ...]
    dimension_names: tuple[str, ...]
    dimension_matrix: npt.NDArray[np.float64]
    reasons: tuple[Reason, ...]
    reason_matrix: npt.NDArray[np.float64]
    reason_usable: npt.NDArray[np.bool_]
    max_reasons: int

    @classmethod
    def build(cls, feature_names: tuple[str, ...], *, feature_set: FeatureSet,
              catalogue: ReasonCatalogue, used: npt.NDArray[np.bool_]) -> ReasonLayout:
        """The layout for a model's ``feature_names``; ``used`` marks the features trees split on."""
        known = set(feature_set.names)
        unknown = [name for name in feature_names if name not in known]
        if unknown:
            raise ValueError(f"model feature '{unknown[0]}' is not in the feature definitions")
        dimension_names = tuple(feature_set.dimensions)
        reasons: list[Reason] = []
        for name in feature_names:
            reason = _reason_of(catalogue, name)
            if reason not in reasons:
                reasons.append(reason)
        dimension_matrix = np.zeros((len(feature_names), len(dimension_names)))
        reason_matrix = np.zeros((len(feature_names), len(reasons)))
        for row, name in enumerate(feature_names):
            dimension_matrix[row, dimension_names.index(feature_set.get(name).dimension)] = 1.0
            reason_matrix[row, reasons.index(_reason_of(catalogue, name))] = 1.0
        usable = (reason_matrix * np.asarray(used, dtype=float)[:, None]).sum(axis=0) > 0
        return cls(feature_names=feature_names, dimension_names=dimension_names,
                   dimension_matrix=dimension_matrix, reasons=tuple(reasons),
                   reason_matrix=reason_matrix, reason_usable=usable,
                   max_reasons=catalogue.limits.max_reasons)


def _reason_of(catalogue: ReasonCatalogue, feature: str) -> Reason:
    try:
        return catalogue.reason_for(feature)
    except KeyError:
        raise ValueError(f"feature '{feature}' has no reason in config/reasons.toml") from None


def dimension_points(points: npt.NDArray[np.float64], layout: ReasonLayout) -> npt.NDArray[np.float64]:
    """Points per dimension: the sum over each dimension's features."""
    return points @ layout.dimension_matrix


def reason_points(points: npt.NDArray[np.float64], layout: ReasonLayout) -> npt.NDArray[np.float64]:
    """Points per reason group: the sum over the group's features."""
    return points @ layout.reason_matrix


def top_reasons(group_points: npt.NDArray[np.float64], layout: ReasonLayout) -> npt.NDArray[np.int64]:
    """Per row, the indices of the costliest reason groups, most costly first.

    At most ``max_reasons`` columns; a row is padded with ``NO_REASON`` only
    when the model uses fewer groups than that. Ties go to the catalogue's
    order, so the choice is deterministic.
    """
    n_rows = group_points.shape[0]
    k = min(layout.max_reasons, int(layout.reason_usable.sum()))
    chosen = np.full((n_rows, layout.max_reasons), NO_REASON, dtype=np.int64)
    if k == 0 or n_rows == 0:
        return chosen
    usable = np.flatnonzero(layout.reason_usable)
    candidates = group_points[:, usable]
    if n_rows <= SMALL_BATCH:  # one stable sort is cheaper than partition and tie repair
        chosen[:, :k] = usable[np.argsort(candidates, axis=1, kind="stable")[:, :k]]
        return chosen
    if k < usable.size:
        part = np.argpartition(candidates, k - 1, axis=1)[:, :k]
        # A group tied with the k-th must not lose its place to one later in the catalogue.
        threshold = np.take_along_axis(candidates, part, axis=1).max(axis=1, keepdims=True)
        ties = (candidates == threshold).sum(axis=1) > (
            np.take_along_axis(candidates, part, axis=1) == threshold).sum(axis=1)
        if ties.any():
            part[ties] = np.argsort(candidates[ties], axis=1, kind="stable")[:, :k]
    else:
        part = np.broadcast_to(np.arange(usable.size), (n_rows, usable.size)).copy()
    values = np.take_along_axis(candidates, part, axis=1)
    order = np.lexsort((part, values), axis=1)
    chosen[:, :k] = usable[np.take_along_axis(part, order, axis=1)]
    return chosen


def reason_records(indices: npt.NDArray[np.int64], group_points: npt.NDArray[np.float64],
                   layout: ReasonLayout) -> list[dict[str, Any]]:
    """One row's reasons as the published dicts: code, both texts, points (and the dimension)."""
    records = []
    for index in indices:
        if index == NO_REASON:
            break
        reason = layout.reasons[index]
        records.append({
            "code": reason.code, "text_en": reason.text_en, "text_zh": reason.text_zh,
            "points": round(float(group_points[index]), 4),
        })
    return records
