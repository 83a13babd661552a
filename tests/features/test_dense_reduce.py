"""The per-user loops of the embedded engine against plain Python on random rows."""

from __future__ import annotations

import statistics

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features import dense_reduce as reduce


def random_keys(rng: np.random.Generator, users: int, rows: int) -> np.ndarray:
    pool = rng.integers(0, 2**64 - 1, users, dtype=np.uint64, endpoint=True)
    return pool[rng.integers(0, users, rows)]


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_dense_keys_number_each_key_once(threads: int) -> None:
    rng = np.random.default_rng(threads)
    keys = random_keys(rng, 5_000, 60_000)  # the tables double several times
    idx, first, collided = reduce.dense_keys(keys, keys ^ np.uint64(7), threads)
    assert not collided
    assert sorted(set(idx.tolist())) == list(range(len(np.unique(keys))))
    assert np.array_equal(keys[first][idx], keys)  # one number per key, one key per number
    first_seen = {}
    for row, key in enumerate(keys.tolist()):
        first_seen.setdefault(key, row)
    assert sorted(first.tolist()) == sorted(first_seen.values())


def test_dense_keys_report_two_checks_under_one_key() -> None:
    keys = np.array([5, 9, 5, 9], dtype=np.uint64)
    checks = np.array([1, 2, 1, 3], dtype=np.uint64)
    assert reduce.dense_keys(keys, checks)[2]
    assert not reduce.dense_keys(keys, np.array([1, 2, 1, 2], dtype=np.uint64))[2]


rows = st.lists(st.tuples(st.integers(0, 5), st.booleans(), st.integers(-50, 50)),
                max_size=60)


@settings(max_examples=60, deadline=None)
@given(rows)
def test_each_loop_is_its_plain_python_reduction(rows: list[tuple[int, bool, int]]) -> None:
    users = 6
    idx = np.array([user for user, _, _ in rows], dtype=np.int32)
    mask = np.array([keep for _, keep, _ in rows], dtype=np.bool_)
    values = np.array([value for _, _, value in rows], dtype=np.int64)
    kept: dict[int, list[int]] = {user: [] for user in range(users)}
    for user, keep, value in rows:
        if keep:
            kept[user].append(value)
    floats = values.astype(np.float64)
    got = {
        "count": reduce.count(idx, mask, users),
        "sum": reduce.sums(idx, mask, values, users),
        "fsum": reduce.sums(idx, mask, floats, users),
        "min": reduce.extreme(idx, mask, floats, users, False),
        "max": reduce.extreme(idx, mask, floats, users, True),
        "std": reduce.std(idx, mask, floats, users),
        "distinct": reduce.distinct_codes(idx, mask, values, -50, 2, users),
    }
    for user, found in kept.items():
        assert got["count"][user] == len(found)
        assert got["sum"][user] == got["fsum"][user] == sum(found)
        assert np.isnan(got["min"][user]) if not found else got["min"][user] == min(found)
        assert np.isnan(got["max"][user]) if not found else got["max"][user] == max(found)
        if len(found) < 2:
            assert np.isnan(got["std"][user])
        else:
            assert got["std"][user] == pytest.approx(statistics.stdev(found), abs=1e-9)
        assert got["distinct"][user] == len(set(found))


def test_latest_rows_count_the_ties_at_the_latest_time() -> None:
    idx = np.array([0, 0, 0, 1, 1, 2], dtype=np.int32)
    mask = np.array([True, True, True, True, False, False])
    times = np.array([5, 9, 9, 3, 8, 1], dtype=np.int64)
    best, ties = reduce.latest_rows(idx, mask, times, 3)
    assert best.tolist() == [1, 3, -1]
    assert ties.tolist() == [2, 1, 0]
