"""A booster's trees as flat arrays, and compiled walks over them (what TreeSHAP and tips share).

XGBoost answers whole-model questions fast (predict, pred_contribs) but not
the two the recompute asks millions of times: "which leaf does this row reach
in tree t" and "how does the margin move when only feature j changes". Both
are plain tree walks over these arrays, compiled with numba.

The walk follows XGBoost's rule exactly: left when ``value < threshold``
(float32 against float32), a missing value (NaN) takes the node's default
direction. Only numeric splits are supported (the scoring models have no
categorical features); :meth:`TreeEnsemble.from_booster` refuses others.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import xgboost as xgb
from numba import njit, prange

NO_CHILD = -1
# numba's parallel kernels are entered by one thread at a time: its fallback threading layer
# (workqueue, used where no OpenMP or TBB is found) aborts on concurrent launches.
PARALLEL_LOCK = threading.Lock()
# Up to these many candidates (about one person's), one thread: a thread team costs more.
SMALL_CANDIDATES = 4096


@dataclass(frozen=True)
class TreeEnsemble:
    """Every tree of a booster, nodes numbered globally; tree t's root is ``roots[t]``.

    Within a tree, nodes are in breadth-first order (a child always after its
    parent), so one forward pass over a tree's nodes can carry state down to its leaves.

    ``left``/``right`` are -1 for a leaf; a leaf's value is in ``value`` (as the
    float32 XGBoost stores, widened to float64); ``cover`` is the node's sum of
    hessians (TreeSHAP's weights). ``feature_trees`` lists, for feature f, the
    trees that split on f: ``feature_tree_ids[feature_tree_start[f]:feature_tree_start[f + 1]]``.
    """

    feature: npt.NDArray[np.int32]
    threshold: npt.NDArray[np.float32]
    default_left: npt.NDArray[np.bool_]
    left: npt.NDArray[np.int32]
    right: npt.NDArray[np.int32]
    value: npt.NDArray[np.float64]
    cover: npt.NDArray[np.float64]
    roots: npt.NDArray[np.int32]
    feature_tree_start: npt.NDArray[np.int64]
    feature_tree_ids: npt.NDArray[np.int32]
    n_features: int

    @classmethod
    def from_booster(cls, booster: xgb.Booster) -> TreeEnsemble:
        """Parse the booster's JSON; ValueError for what the walks do not support."""
        learner = json.loads(booster.save_raw("json"))["learner"]
        model = learner["gradient_booster"]["model"]
        if learner["gradient_booster"].get("name") != "gbtree":
            raise ValueError("only tree boosters (gbtree) are supported")
        if int(learner["learner_model_param"].get("num_class", "0")) > 1:
            raise ValueError("only single-output models are supported")
        n_features = int(learner["learner_model_param"]["num_feature"])
        parts: dict[str, list[np.ndarray]] = {key: [] for key in (
            "feature", "threshold", "default_left", "left", "right", "value", "cover")}
        roots, offset = [], 0
        for tree in model["trees"]:
            if any(int(kind) != 0 for kind in tree["split_type"]):
                raise ValueError("categorical splits are not supported")
            order = _breadth_first(tree["left_children"], tree["right_children"])
            new_index = np.full(len(tree["left_children"]), NO_CHILD, dtype=np.int64)
            new_index[order] = np.arange(order.size) + offset
            left = np.asarray(tree["left_children"], dtype=np.int64)[order]
            right = np.asarray(tree["right_children"], dtype=np.int64)[order]
            leaf = left == NO_CHILD
            conditions = np.asarray(tree["split_conditions"], dtype=np.float64)[order]
            parts["feature"].append(np.asarray(tree["split_indices"], dtype=np.int32)[order])
            parts["threshold"].append(conditions.astype(np.float32))
            parts["default_left"].append(np.asarray(tree["default_left"], dtype=bool)[order])
            parts["left"].append(np.where(leaf, NO_CHILD, new_index[np.maximum(left, 0)]))
            parts["right"].append(np.where(leaf, NO_CHILD, new_index[np.maximum(right, 0)]))
            parts["value"].append(np.where(leaf, conditions.astype(np.float32), 0.0))
            parts["cover"].append(np.asarray(tree["sum_hessian"], dtype=np.float64)[order])
            roots.append(offset)
            offset += order.size
        arrays = {key: (np.concatenate(chunks) if chunks else np.empty(0))
                  for key, chunks in parts.items()}
        feature = arrays["feature"].astype(np.int32)
        start, ids = _trees_per_feature(feature, arrays["left"].astype(np.int32),
                                        np.asarray(roots, dtype=np.int64), n_features)
        return cls(feature=feature, threshold=arrays["threshold"].astype(np.float32),
                   default_left=arrays["default_left"].astype(bool),
                   left=arrays["left"].astype(np.int32), right=arrays["right"].astype(np.int32),
                   value=arrays["value"].astype(np.float64), cover=arrays["cover"].astype(np.float64),
                   roots=np.asarray(roots, dtype=np.int32), feature_tree_start=start,
                   feature_tree_ids=ids, n_features=n_features)

    @property
    def n_trees(self) -> int:
        return int(self.roots.size)

    def leaf_sum(self, values: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """The sum of the leaves each row reaches (the margin less the base score)."""
        values = np.ascontiguousarray(values, dtype=np.float32)
        with PARALLEL_LOCK:
            return _leaf_sum(values, self.feature, self.threshold, self.default_left, self.left,
                             self.right, self.value, self.roots)

    def change_deltas(self, values: npt.NDArray[np.float32], rows: npt.NDArray[np.int64],
                      columns: npt.NDArray[np.int64],
                      proposed: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """Per candidate, how far the margin moves when only ``values[row, column]`` becomes ``proposed``.

        Only the trees that split on the column can reach another leaf, so
        only those are walked, twice (before and after).
        """
        values = np.ascontiguousarray(values, dtype=np.float32)
        arguments = (values, rows.astype(np.int64), columns.astype(np.int64),
                     proposed.astype(np.float32), self.feature, self.threshold, self.default_left,
                     self.left, self.right, self.value, self.roots, self.feature_tree_start,
                     self.feature_tree_ids)
        if rows.size <= SMALL_CANDIDATES:
            return _change_deltas_serial(*arguments)
        with PARALLEL_LOCK:
            return _change_deltas(*arguments)


def _breadth_first(left: list[int], right: list[int]) -> npt.NDArray[np.int64]:
    """The tree's reachable nodes, root first, every child after its parent (deleted nodes dropped)."""
    order, head = [0], 0
    while head < len(order):
        node = order[head]
        head += 1
        if left[node] != NO_CHILD:
            order.extend((left[node], right[node]))
    return np.asarray(order, dtype=np.int64)


def _trees_per_feature(feature: npt.NDArray[np.int32], left: npt.NDArray[np.int32],
                       roots: npt.NDArray[np.int64], n_features: int
                       ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32]]:
    """CSR lists: for each feature, the (sorted, distinct) trees with a split on it."""
    tree_of = np.repeat(np.arange(roots.size), np.diff(np.append(roots, feature.size)))
    split = left != NO_CHILD
    pairs = np.unique(np.stack([feature[split].astype(np.int64), tree_of[split]], axis=1), axis=0)
    start = np.zeros(n_features + 1, dtype=np.int64)
    np.add.at(start, pairs[:, 0] + 1, 1)
    return np.cumsum(start), pairs[:, 1].astype(np.int32)


@njit(cache=True, nogil=True, inline="always")
def _leaf(row: npt.NDArray[np.float32], node: int, column: int, replacement: float,
          feature: npt.NDArray[np.int32], threshold: npt.NDArray[np.float32],
          default_left: npt.NDArray[np.bool_], left: npt.NDArray[np.int32],
          right: npt.NDArray[np.int32]) -> int:
    """The leaf ``row`` reaches from ``node``, reading ``replacement`` for ``column`` (-1: none)."""
    while left[node] != NO_CHILD:
        split = feature[node]
        x = replacement if split == column else row[split]
        if np.isnan(x):
            node = left[node] if default_left[node] else right[node]
        elif x < threshold[node]:
            node = left[node]
        else:
            node = right[node]
    return node


@njit(cache=True, nogil=True, parallel=True)
def _leaf_sum(values, feature, threshold, default_left, left, right, value, roots):  # type: ignore[no-untyped-def]
    out = np.zeros(values.shape[0])
    for r in prange(values.shape[0]):
        total = 0.0
        for t in range(roots.size):
            total += value[_leaf(values[r], roots[t], -1, np.float32(0.0), feature, threshold,
                                 default_left, left, right)]
        out[r] = total
    return out


@njit(cache=True, nogil=True, inline="always")
def _change_delta(row, column, proposed, feature, threshold, default_left, left, right, value,  # type: ignore[no-untyped-def]
                  roots, tree_start, tree_ids):
    delta = 0.0
    for k in range(tree_start[column], tree_start[column + 1]):
        root = roots[tree_ids[k]]
        delta += value[_leaf(row, root, column, proposed, feature, threshold, default_left, left,
                             right)]
        delta -= value[_leaf(row, root, -1, proposed, feature, threshold, default_left, left, right)]
    return delta


@njit(cache=True, nogil=True, parallel=True)
def _change_deltas(values, rows, columns, proposed, feature, threshold, default_left,  # type: ignore[no-untyped-def]
                   left, right, value, roots, tree_start, tree_ids):
    out = np.zeros(rows.size)
    for c in prange(rows.size):
        out[c] = _change_delta(values[rows[c]], columns[c], proposed[c], feature, threshold,
                               default_left, left, right, value, roots, tree_start, tree_ids)
    return out


@njit(cache=True, nogil=True)
def _change_deltas_serial(values, rows, columns, proposed, feature, threshold, default_left,  # type: ignore[no-untyped-def]
                          left, right, value, roots, tree_start, tree_ids):
    out = np.zeros(rows.size)
    for c in range(rows.size):
        out[c] = _change_delta(values[rows[c]], columns[c], proposed[c], feature, threshold,
                               default_left, left, right, value, roots, tree_start, tree_ids)
    return out
