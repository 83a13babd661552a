from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import xgboost as xgb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scoring import treeshap
from scoring.points import ScoreModel
from scoring.trees import TreeEnsemble
from scoring.treeshap import ShapTables
from tests.scoring.explain_models import random_features, train_model


def _xgboost_contribs(model: ScoreModel, values: np.ndarray) -> np.ndarray:
    return model.booster.predict(xgb.DMatrix(values, missing=np.nan), pred_contribs=True,
                                 validate_features=False)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), depth=st.integers(1, 6), trees=st.integers(1, 40),
       missing=st.floats(0.0, 0.5))
def test_table_shap_equals_xgboosts_pred_contribs(seed: int, depth: int, trees: int,
                                                  missing: float) -> None:
    model = train_model(seed=seed, n=600, trees=trees, depth=depth)
    values = random_features(200, seed=seed + 1, missing=missing)
    ours = ShapTables.build(TreeEnsemble.from_booster(model.booster)).shap_values(values)
    theirs = _xgboost_contribs(model, values)
    assert np.max(np.abs(ours - theirs[:, :-1])) <= 1e-6
    # Exact TreeSHAP adds up to the margin.
    assert np.allclose(ours.sum(axis=1) + theirs[:, -1], model.margin(values), atol=1e-5)


def test_the_trees_sum_to_the_margin_and_a_change_moves_it_as_a_new_prediction() -> None:
    model = train_model(seed=4, n=1500, trees=60, depth=5)
    trees = TreeEnsemble.from_booster(model.booster)
    values = random_features(400, seed=9, missing=0.2)
    offset = model.margin(values) - trees.leaf_sum(values)
    assert np.ptp(offset) < 1e-5  # the base score, the same for every row
    rows = np.repeat(np.arange(400), 3)
    columns = np.tile([0, 3, 11], 400)
    proposed = np.random.default_rng(0).random(rows.size).astype(np.float32)
    proposed[::7] = np.nan  # a change to missing follows the default direction
    moved = trees.change_deltas(values, rows, columns, proposed)
    changed = values[rows].copy()
    changed[np.arange(rows.size), columns] = proposed
    expected = model.margin(changed).astype(float) - model.margin(values[rows]).astype(float)
    assert np.max(np.abs(moved - expected)) < 1e-5


def test_a_feature_lists_exactly_the_trees_that_split_on_it() -> None:
    model = train_model(seed=2, trees=20, depth=3)
    trees = TreeEnsemble.from_booster(model.booster)
    for tree in range(trees.n_trees):
        dump = model.booster[tree:tree + 1].get_dump(dump_format="json")[0]
        for feature in range(trees.n_features):
            listed = trees.feature_tree_ids[trees.feature_tree_start[feature]:
                                            trees.feature_tree_start[feature + 1]]
            assert (tree in listed) == (f'"split": "f{feature}"' in dump or
                                        f'"split": "{model.feature_names[feature]}"' in dump)


def test_a_model_too_deep_for_tables_is_explained_by_xgboost(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(treeshap, "MAX_TABLE_DEPTH", 2)
    model = train_model(seed=6, trees=10, depth=4)
    with pytest.raises(ValueError, match="tables stop at 2"):
        ShapTables.build(model.trees)
    values = random_features(50, seed=3)
    contributions = model.contributions(values)
    assert np.array_equal(contributions, _xgboost_contribs(model, values).astype(np.float64))


def test_explaining_from_several_threads_at_once_gives_the_serial_answer() -> None:
    model = train_model(seed=7, trees=30, depth=4)
    values = [random_features(300, seed=seed) for seed in range(6)]
    serial = [model.contributions(batch) for batch in values]
    with ThreadPoolExecutor(max_workers=3) as pool:
        threaded = list(pool.map(model.contributions, values))
    assert all(np.array_equal(a, b) for a, b in zip(serial, threaded, strict=True))


def test_a_small_batch_on_one_thread_gives_what_a_large_batch_gives() -> None:
    model = train_model(seed=9, trees=40, depth=4)
    trees = model.trees
    values = random_features(300, seed=5, missing=0.2)
    tables = ShapTables.build(trees)
    large = tables.shap_values(values)
    assert all(np.array_equal(tables.shap_values(values[row:row + 1])[0], large[row])
               for row in (0, 17, 299))
    rows = np.repeat(np.arange(300), 20)
    columns = np.tile(np.arange(20), 300)
    proposed = np.full(rows.size, 0.5, dtype=np.float32)
    many = trees.change_deltas(values, rows, columns, proposed)
    few = trees.change_deltas(values, rows[:20], columns[:20], proposed[:20])
    assert np.array_equal(few, many[:20])
