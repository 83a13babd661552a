"""Tips: what a realistic change of an actionable feature would earn, found by re-scoring.

For each band, a small reference table (:class:`TipReference`, one per model
version) keeps observed quantiles of every actionable feature among the
training population's people in that band. A person's candidate values for a
feature are those quantiles of the band one higher (the top band uses its
own) that lie on the better side of the person's value, as the monotone
direction says (for an unconstrained feature, either side). Each candidate
vector is re-scored with the same model; per feature the tip is the candidate
closest to the current value that earns at least ``tip_min_points``, and a
person gets the ``max_tips`` largest gains. A gain is therefore never
invented and never negative. (For speed, candidates are first screened by
walking only the trees that split on the changed feature; the chosen ones are
then re-scored with the whole model, and those points are what is shown: see
:class:`TipAdvisor`.) No tip is offered for a feature that is not
actionable (immutable and protected attributes never are) or is missing
(there is no value to improve on).
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from scoring.explain import Explainer
from scoring.points import FloatMatrix, unclipped_scores
from scoring.scale import band_index, final_score, score_from_margin
from scoring.tip_texts import tip_record

CHUNK_CANDIDATES = 2_000_000


@dataclass(frozen=True)
class TipReference:
    """Observed quantiles per band and actionable feature: values[band, feature, quantile]."""

    model_version: str
    features: tuple[str, ...]
    bands: tuple[str, ...]
    quantiles: tuple[float, ...]
    values: npt.NDArray[np.float64]

    @classmethod
    def fit(cls, explainer: Explainer, values: FloatMatrix) -> TipReference:
        """The table from the training population's feature matrix (model feature order)."""
        model, scorecard = explainer.model, explainer.scorecard
        features = actionable_features(explainer)
        columns = [model.feature_names.index(name) for name in features]
        scores = final_score(unclipped_scores(model, values, scorecard.scale), scorecard.scale)
        bands = band_index(scores, scorecard.bands)
        quantiles = explainer.catalogue.limits.tip_quantiles
        table = np.full((len(scorecard.bands), len(features), len(quantiles)), np.nan)
        for band in range(len(scorecard.bands)):
            rows = values[bands == band][:, columns].astype(np.float64)
            if rows.shape[0] and columns:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing column
                    table[band] = np.nanquantile(rows, quantiles, axis=0, method="nearest").T
        return cls(model_version=model.version, features=features,
                   bands=tuple(band.code for band in scorecard.bands), quantiles=quantiles,
                   values=table)

    def as_dict(self) -> dict[str, Any]:
        return {"model_version": self.model_version, "features": list(self.features),
                "bands": list(self.bands), "quantiles": list(self.quantiles),
                "values": [[[None if np.isnan(v) else float(v) for v in row] for row in band]
                           for band in self.values]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TipReference:
        values = np.array([[[np.nan if v is None else v for v in row] for row in band]
                           for band in data["values"]], dtype=np.float64)
        features, bands, quantiles = data["features"], data["bands"], data["quantiles"]
        if values.shape != (len(bands), len(features), len(quantiles)):
            raise ValueError("tip reference: values do not match bands x features x quantiles")
        return cls(model_version=data["model_version"], features=tuple(features),
                   bands=tuple(bands), quantiles=tuple(quantiles), values=values)

    def save(self, path: Path) -> None:
        """Write beside, then swap: a reader sees the old table or the new one."""
        draft = path.with_name(f".{path.name}.{os.getpid()}")
        draft.write_text(json.dumps(self.as_dict(), separators=(",", ":")), encoding="utf-8")
        os.replace(draft, path)

    @classmethod
    def load(cls, path: Path) -> TipReference:
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))


def actionable_features(explainer: Explainer) -> tuple[str, ...]:
    """The model's features a person can change and the trees actually use."""
    used = explainer.model.used_features()
    return tuple(name for name, is_used in zip(explainer.model.feature_names, used, strict=True)
                 if is_used and explainer.feature_set.get(name).actionable)


@dataclass(frozen=True)
class TipChoice:
    """The tips of a batch as arrays, ordered by user, then largest gain first (ties: feature order).

    ``feature`` indexes the reference's features; ``points`` and ``score_to`` come
    from re-scoring the changed vector with the whole model.
    """

    user: npt.NDArray[np.int64]
    feature: npt.NDArray[np.int64]
    current: npt.NDArray[np.float32]
    proposed: npt.NDArray[np.float32]
    points: npt.NDArray[np.float64]
    score_to: npt.NDArray[np.int64]
    band: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.user.size)

    @classmethod
    def concat(cls, parts: list[TipChoice], offsets: list[int]) -> TipChoice:
        """Chunks' choices as one, each chunk's users shifted by its offset."""
        return cls(user=np.concatenate([p.user + o for p, o in zip(parts, offsets, strict=True)]),
                   **{name: np.concatenate([getattr(p, name) for p in parts])
                      for name in ("feature", "current", "proposed", "points", "score_to", "band")})


class TipAdvisor:
    """Tips for a batch of people: every candidate screened by walking only the trees it can move.

    A candidate changes one feature, so only the trees that split on it can
    reach another leaf: walking those (scoring/trees.py) gives the change of
    the margin without predicting 300 trees per candidate. The few candidates
    chosen that way (at most ``max_tips`` per person) are then re-scored with
    the whole model, and those re-scored points are what a tip shows and what
    decides that it is shown (at least ``tip_min_points``) and its rank. The
    screen and the re-score differ only by float32 rounding (1e-3 points), so
    a choice can differ from re-scoring every candidate only between near-ties.
    """

    def __init__(self, explainer: Explainer, reference: TipReference) -> None:
        if reference.model_version != explainer.model.version:
            raise ValueError(f"tip reference is for model {reference.model_version}, "
                             f"not {explainer.model.version}")
        names = explainer.model.feature_names
        unknown = [name for name in reference.features if name not in names]
        if unknown:
            raise ValueError(f"tip reference names feature '{unknown[0]}' the model lacks")
        if reference.bands != tuple(band.code for band in explainer.scorecard.bands):
            raise ValueError("tip reference bands differ from the scorecard's")
        self.explainer = explainer
        self.reference = reference
        self.columns = np.array([names.index(name) for name in reference.features], dtype=np.int64)
        self.directions = np.array([explainer.feature_set.get(name).direction
                                    for name in reference.features], dtype=np.int64)

    def tips(self, values: FloatMatrix) -> list[list[dict[str, Any]]]:
        """Per row of ``values`` (model feature order), its tips, largest gain first."""
        values = self.explainer.model.matrix(values)
        choice = self.choose(values)
        bands = self.explainer.scorecard.bands
        tips: list[list[dict[str, Any]]] = [[] for _ in range(values.shape[0])]
        for index in range(len(choice)):
            tips[int(choice.user[index])].append(tip_record(
                self.explainer, self.reference.features[int(choice.feature[index])],
                current=float(choice.current[index]), proposed=float(choice.proposed[index]),
                points=float(choice.points[index]), score_to=int(choice.score_to[index]),
                band=bands[int(choice.band[index])],
            ))
        return tips

    def choose(self, values: FloatMatrix) -> TipChoice:
        """The tips of every row of ``values`` (model feature order), as arrays."""
        values = self.explainer.model.matrix(values)
        per_user = max(1, len(self.reference.features) * len(self.reference.quantiles))
        step = max(1, CHUNK_CANDIDATES // per_user)
        starts = list(range(0, values.shape[0], step)) or [0]
        return TipChoice.concat([self._chunk(values[start:start + step]) for start in starts], starts)

    def _chunk(self, values: FloatMatrix) -> TipChoice:
        model, scorecard = self.explainer.model, self.explainer.scorecard
        scale, limits = scorecard.scale, self.explainer.catalogue.limits
        margin = model.margin(values).astype(np.float64)
        current = np.asarray(score_from_margin(margin, model.a, model.b, scale), dtype=np.float64)
        target = np.minimum(band_index(final_score(current, scale), scorecard.bands) + 1,
                            len(scorecard.bands) - 1)
        users, feats, cands, distance = self._candidates(values, target)
        moved = model.trees.change_deltas(values, users, self.columns[feats], cands)
        estimate = np.asarray(score_from_margin(margin[users] + moved, model.a, model.b, scale))
        gain = np.minimum(estimate, scale.max_score) - current[users]
        keep = np.flatnonzero((gain >= limits.tip_min_points) & (current[users] < scale.max_score))
        keep = keep[_closest_per_feature(users[keep], feats[keep], distance[keep],
                                         len(self.reference.features))]
        keep = keep[_largest_per_user(users[keep], feats[keep], gain[keep], limits.max_tips)]
        users, feats, cands = users[keep], feats[keep], cands[keep]
        rows = values[users].copy()
        rows[np.arange(users.size), self.columns[feats]] = cands
        rescored = unclipped_scores(model, rows, scale) if users.size else np.empty(0)
        gain = np.minimum(rescored, scale.max_score) - current[users]
        shown = np.flatnonzero(gain >= limits.tip_min_points)
        order = shown[np.lexsort((feats[shown], -gain[shown], users[shown]))]
        users, feats = users[order], feats[order]
        return TipChoice(
            user=users, feature=feats, current=values[users, self.columns[feats]],
            proposed=cands[order], points=gain[order],
            score_to=np.asarray(final_score(rescored[order], scale), dtype=np.int64).reshape(-1),
            band=target[users],
        )

    def _candidates(self, values: FloatMatrix, target: npt.NDArray[np.int64]
                    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64],
                               npt.NDArray[np.float32], npt.NDArray[np.float64]]:
        """Every (user, feature, value) worth re-scoring, and how far the value moves."""
        current = values[:, self.columns].astype(np.float64)[:, :, None]   # (n, A, 1)
        proposed = self.reference.values[target].astype(np.float32).astype(np.float64)  # (n, A, Q)
        direction = self.directions[None, :, None]
        better = np.where(direction < 0, proposed > current,
                          np.where(direction > 0, proposed < current, proposed != current))
        valid = better & ~np.isnan(current) & ~np.isnan(proposed)
        users, feats, quantile = np.nonzero(valid)
        cands = self.reference.values[target[users], feats, quantile].astype(np.float32)
        distance = np.abs(proposed[users, feats, quantile] - current[users, feats, 0])
        return users, feats, cands, distance


def _closest_per_feature(users: npt.NDArray[np.int64], feats: npt.NDArray[np.int64],
                         distance: npt.NDArray[np.float64], n_features: int) -> npt.NDArray[np.int64]:
    """Index of the smallest change per (user, feature) among the candidates."""
    order = np.lexsort((distance, feats, users))
    pairs = users[order] * n_features + feats[order]
    _, first = np.unique(pairs, return_index=True)
    return order[first]


def _largest_per_user(users: npt.NDArray[np.int64], feats: npt.NDArray[np.int64],
                      gain: npt.NDArray[np.float64], limit: int) -> npt.NDArray[np.int64]:
    """Indices of each user's ``limit`` largest gains, per user largest first (ties: feature order)."""
    order = np.lexsort((feats, -gain, users))
    sorted_users = users[order]
    starts = np.searchsorted(sorted_users, sorted_users, side="left")
    rank = np.arange(order.size) - starts
    return order[rank < limit]
