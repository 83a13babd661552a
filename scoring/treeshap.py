"""Exact path-dependent TreeSHAP with per-leaf tables (Fast TreeSHAP v2), compiled with numba.

XGBoost's ``pred_contribs`` runs the classic TreeSHAP recursion for every row
and tree: about 0.5 ms a row for 300 trees of depth 4 on one core, which is
8 minutes for a million people. The same exact values can be had far cheaper
because a tree's contribution to a row depends on the row only through which
split conditions it meets (Yang, "Fast TreeSHAP", 2021, algorithm v2):

For a leaf l with value v whose path splits on the d distinct features P
(a feature split twice on the path counts once), let z_k be the share of the
training cover that follows the path at k's splits (the product of
cover(child)/cover(node)) and o_k = 1 when the row meets every condition on k
along the path. Then the leaf adds, to each i in P,

    v (o_i - z_i) sum_{S subset of P - {i}, o_S = 1} |S|! (d - 1 - |S|)! / d! prod_{k in P - {i} - S} z_k

which depends on the row only through the bit mask o. So every leaf keeps a
table of 2^d x d numbers, computed once per model, and explaining a row is,
per tree, one pass over its splits to get the row's decisions and, per leaf,
a mask and d additions. This is the same arithmetic as XGBoost's (the tests
compare both, and shap's, to 1e-6), in float64 instead of float32.

The tables grow as 2^depth: models deeper than ``MAX_TABLE_DEPTH`` (or with
too many table entries) are explained by XGBoost itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import factorial

import numpy as np
import numpy.typing as npt
from numba import njit, prange

from scoring.trees import NO_CHILD, PARALLEL_LOCK, TreeEnsemble

MAX_TABLE_DEPTH = 10
MAX_TABLE_ENTRIES = 32_000_000  # float64: 256 MiB
# Up to these many rows, one thread: waking a team of threads costs more than the work,
# and far more on a busy machine (one row: 20 ms with the team, well under 1 ms without).
SMALL_BATCH = 64


@dataclass(frozen=True)
class ShapTables:
    """Per node, what one forward pass over a tree needs to find every leaf's mask.

    An internal node's feature has a fixed ``slot`` among the distinct features
    of the paths through it (the order of first appearance from the root), so
    a row's mask at a child is its parent's with the parent's slot bit cleared
    when the row goes the other way. A leaf keeps its distinct features
    (``leaf_feature_start``, ``d`` of them in ``leaf_features``) and its table
    (``table[leaf_table[node]:][:2 ** d * d]``, row ``mask``, column ``slot``).
    """

    trees: TreeEnsemble
    slot: npt.NDArray[np.int64]
    leaf_d: npt.NDArray[np.int64]
    leaf_feature_start: npt.NDArray[np.int64]
    leaf_features: npt.NDArray[np.int32]
    leaf_table: npt.NDArray[np.int64]
    table: npt.NDArray[np.float64]

    @classmethod
    def build(cls, trees: TreeEnsemble) -> ShapTables:
        """The tables of every leaf; ValueError when the model is too deep for tables."""
        n_nodes = trees.feature.size
        slot = np.zeros(n_nodes, dtype=np.int64)
        leaf_d = np.zeros(n_nodes, dtype=np.int64)
        leaf_feature_start = np.zeros(n_nodes, dtype=np.int64)
        leaf_table = np.zeros(n_nodes, dtype=np.int64)
        features_out: list[int] = []
        zeros_out: list[float] = []
        leaves: list[int] = []
        size = 0
        for root in trees.roots:
            stack: list[tuple[int, tuple[int, ...], tuple[float, ...]]] = [(int(root), (), ())]
            while stack:
                node, features, zeros = stack.pop()
                if trees.left[node] == NO_CHILD:
                    if len(features) > MAX_TABLE_DEPTH:
                        raise ValueError(f"a leaf path splits on {len(features)} features; "
                                         f"tables stop at {MAX_TABLE_DEPTH}")
                    leaves.append(node)
                    leaf_d[node], leaf_feature_start[node], leaf_table[node] = (
                        len(features), len(features_out), size)
                    features_out.extend(features)
                    zeros_out.extend(zeros)
                    size += (2 ** len(features)) * len(features)
                    continue
                feature = int(trees.feature[node])
                if feature not in features:
                    features, zeros = (*features, feature), (*zeros, 1.0)
                slot[node] = features.index(feature)
                for child in (int(trees.right[node]), int(trees.left[node])):
                    share = trees.cover[child] / trees.cover[node] if trees.cover[node] > 0 else 0.0
                    changed = tuple(z * share if k == slot[node] else z for k, z in enumerate(zeros))
                    stack.append((child, features, changed))
            if size > MAX_TABLE_ENTRIES:
                raise ValueError(f"the tables would hold more than {MAX_TABLE_ENTRIES:,} numbers")
        nodes = np.asarray(leaves, dtype=np.int64)
        table = np.zeros(size)
        _fill_tables(table, trees.value[nodes], leaf_d[nodes], leaf_feature_start[nodes],
                     leaf_table[nodes], np.asarray(zeros_out, dtype=np.float64),
                     _shapley_weights(MAX_TABLE_DEPTH))
        return cls(trees=trees, slot=slot, leaf_d=leaf_d, leaf_feature_start=leaf_feature_start,
                   leaf_features=np.asarray(features_out, dtype=np.int32), leaf_table=leaf_table,
                   table=table)

    def shap_values(self, values: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """Exact TreeSHAP values of every row, (rows, features), without the bias column."""
        values = np.ascontiguousarray(values, dtype=np.float32)
        trees = self.trees
        arguments = (values, trees.n_features, trees.feature, trees.threshold, trees.default_left,
                     trees.left, trees.right, trees.roots, self.slot, self.leaf_d,
                     self.leaf_feature_start, self.leaf_features, self.leaf_table, self.table)
        if values.shape[0] <= SMALL_BATCH:
            return _shap_rows_serial(*arguments)
        with PARALLEL_LOCK:
            return _shap_rows(*arguments)


def _shapley_weights(max_depth: int) -> npt.NDArray[np.float64]:
    """weights[d, s] = s! (d - 1 - s)! / d!: the Shapley weight of a coalition of s among d."""
    weights = np.zeros((max_depth + 1, max_depth + 1))
    for d in range(1, max_depth + 1):
        for s in range(d):
            weights[d, s] = factorial(s) * factorial(d - 1 - s) / factorial(d)
    return weights


@njit(cache=True, nogil=True)
def _fill_tables(table, leaf_value, leaf_d, zero_start, table_start, zeros, weights):  # type: ignore[no-untyped-def]
    for leaf in range(leaf_value.size):
        first, d = zero_start[leaf], leaf_d[leaf]
        for mask in range(1 << d):
            for i in range(d):
                others = ((1 << d) - 1) & ~(1 << i)
                met = mask & others
                total = 0.0
                subset = met
                while True:  # every subset S of the met conditions, the empty one last
                    product, size = 1.0, 0
                    for k in range(d):
                        if (others >> k) & 1:
                            if (subset >> k) & 1:
                                size += 1
                            else:
                                product *= zeros[first + k]
                    total += weights[d, size] * product
                    if subset == 0:
                        break
                    subset = (subset - 1) & met
                one = float((mask >> i) & 1)
                table[table_start[leaf] + mask * d + i] = leaf_value[leaf] * (one - zeros[first + i]) * total


@njit(cache=True, nogil=True, inline="always")
def _shap_row(row, out, feature, threshold, default_left, left, right, roots, slot,  # type: ignore[no-untyped-def]
              leaf_d, leaf_feature_start, leaf_features, leaf_table, table):
    """Add one row's TreeSHAP values into ``out`` (its row of the result)."""
    mask = np.empty(feature.size, dtype=np.int64)
    for root in roots:
        mask[root] = -1  # every condition met so far
    for node in range(feature.size):
        here = mask[node]
        if left[node] != NO_CHILD:
            x = row[feature[node]]
            go_left = default_left[node] if np.isnan(x) else x < threshold[node]
            missed = here & ~(np.int64(1) << slot[node])
            mask[left[node]] = here if go_left else missed
            mask[right[node]] = missed if go_left else here
        else:
            d = leaf_d[node]
            if d == 0:
                continue
            base = leaf_table[node] + (here & ((np.int64(1) << d) - 1)) * d
            first = leaf_feature_start[node]
            for k in range(d):
                out[leaf_features[first + k]] += table[base + k]


@njit(cache=True, nogil=True, parallel=True)
def _shap_rows(values, n_features, feature, threshold, default_left, left, right, roots, slot,  # type: ignore[no-untyped-def]
               leaf_d, leaf_feature_start, leaf_features, leaf_table, table):
    out = np.zeros((values.shape[0], n_features))
    for r in prange(values.shape[0]):
        _shap_row(values[r], out[r], feature, threshold, default_left, left, right, roots, slot,
                  leaf_d, leaf_feature_start, leaf_features, leaf_table, table)
    return out


@njit(cache=True, nogil=True)
def _shap_rows_serial(values, n_features, feature, threshold, default_left, left, right, roots,  # type: ignore[no-untyped-def]
                      slot, leaf_d, leaf_feature_start, leaf_features, leaf_table, table):
    out = np.zeros((values.shape[0], n_features))
    for r in range(values.shape[0]):
        _shap_row(values[r], out[r], feature, threshold, default_left, left, right, roots, slot,
                  leaf_d, leaf_feature_start, leaf_features, leaf_table, table)
    return out
