"""The per-user loops of the embedded engine against plain Python on random rows."""

from __future__ import annotations

import statistics

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features import dense_reduce as reduce
from features.dense_blocks import _packed


def random_keys(rng: np.random.Generator, users: int, rows: int) -> np.ndarray:
    pool = rng.integers(0, 2**64 - 1, users, dtype=np.uint64, endpoint=True)
    return pool[rng.integers(0, users, rows)]


def test_the_user_table_numbers_each_key_once_across_pieces() -> None:
    rng = np.random.default_rng(3)
    keys = random_keys(rng, 5_000, 60_000)  # the table doubles several times
    table = reduce.UserTable()
    numbered, firsts = [], []
    for start in range(0, len(keys), 7_000):
        piece = keys[start:start + 7_000]
        before = table.count
        idx, first, collided = table.number(piece, piece ^ np.uint64(7))
        assert not collided
        assert np.array_equal(idx[first], np.arange(before, table.count))  # new ones in order
        numbered.append(idx)
        firsts.extend((start + first).tolist())
    idx = np.concatenate(numbered)
    assert table.count == len(np.unique(keys))
    assert np.array_equal(keys[np.array(firsts)][idx], keys)  # one number per key and back
    first_seen: dict[int, int] = {}
    for row, key in enumerate(keys.tolist()):
        first_seen.setdefault(key, row)
    assert firsts == sorted(first_seen.values())


def test_the_user_table_reports_two_checks_under_one_key() -> None:
    keys = np.array([5, 9, 5, 9], dtype=np.uint64)
    assert reduce.UserTable().number(keys, np.array([1, 2, 1, 3], dtype=np.uint64))[2]
    assert not reduce.UserTable().number(keys, np.array([1, 2, 1, 2], dtype=np.uint64))[2]
    table = reduce.UserTable()
    table.number(keys[:2], np.array([1, 2], dtype=np.uint64))
    assert table.number(keys[2:], np.array([1, 3], dtype=np.uint64))[2]  # across pieces


rows = st.lists(st.tuples(st.integers(0, 5), st.booleans(), st.integers(-50, 50),
                          st.sampled_from([0.5, 10.0, 10.5, 30.0, 31.0, 400.0])),
                max_size=60)
WINDOWS = [(0.0, np.inf), (0.0, np.inf), (10.0, 30.0)]
"""A block's columns: the kept rows, the others, the kept rows of ages (10, 30]."""


@settings(max_examples=60, deadline=None)
@given(rows)
def test_each_loop_is_its_plain_python_reduction(
        rows: list[tuple[int, bool, int, float]]) -> None:
    users = 6
    idx = np.array([row[0] for row in rows], dtype=np.int32)
    mask = np.array([row[1] for row in rows], dtype=np.bool_)
    values = np.array([row[2] for row in rows], dtype=np.int64)
    ages = np.array([row[3] for row in rows], dtype=np.float64)
    kept: dict[int, list[int]] = {user: [] for user in range(users)}
    for user, keep, value, _ in rows:
        if keep:
            kept[user].append(value)
    floats = values.astype(np.float64)
    got = {"n": np.zeros(users, np.int64)}
    got |= {name: np.zeros(users) for name in ("mean", "squares")}
    bits = np.zeros(users * 2, np.uint64)
    of_mask, of_value = np.array([0, 1, 0]), np.zeros(3, np.int64)
    low, high = (np.array([window[side] for window in WINDOWS]) for side in (0, 1))
    counts, sums = np.zeros((3, users), np.int32), np.zeros((3, users), np.int64)
    fsums, best = np.zeros((3, users)), np.full((3, users), np.nan)
    largest = np.array([True, False, True])
    for half in (slice(0, len(rows) // 2), slice(len(rows) // 2, None)):  # two pieces
        i, m, v, f, a = idx[half], mask[half], values[half], floats[half], ages[half]
        masks = np.packbits(np.stack([m, ~m]), axis=1, bitorder="little")  # Arrow's bits
        reduce.block_counts_into(i, a, masks, of_mask, low, high, counts)
        reduce.block_sums_into(i, a, masks, v[None], of_mask, of_value, low, high, sums)
        reduce.block_sums_into(i, a, masks, f[None], of_mask, of_value, low, high, fsums)
        reduce.block_extremes_into(i, a, masks, f[None], of_mask, of_value, low, high, largest,
                                   best)
        reduce.moments_into(i, m, f, got["n"], got["mean"], got["squares"])
        reduce.codes_into(i, m, v, -64, 2, bits)
    got["std"] = reduce.std_of(got["n"], got["squares"])
    got["distinct"] = reduce.popcounts(bits, 2, users)
    everyone = np.bincount(idx, minlength=users)
    assert np.array_equal(counts[1], everyone - counts[0])
    for user, found in kept.items():
        others = [value for u, keep, value, _ in rows if u == user and not keep]
        inside = [value for u, keep, value, age in rows if u == user and keep and 10 < age <= 30]
        assert counts[:, user].tolist() == [len(found), len(others), len(inside)]
        assert sums[:, user].tolist() == fsums[:, user].tolist() == [sum(found), sum(others),
                                                               sum(inside)]
        for column, values_in, pick in ((0, found, max), (1, others, min), (2, inside, max)):
            assert np.isnan(best[column, user]) if not values_in \
                else best[column, user] == pick(values_in)
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


@pytest.mark.parametrize(("start", "length"), [(0, 21), (8, 13), (3, 30), (16, 16)])
def test_masks_are_read_as_their_arrow_bits_wherever_they_start(start: int,
                                                                length: int) -> None:
    rng = np.random.default_rng(start)
    whole = pl.Series(rng.random(64) < 0.5)
    piece = whole.slice(start, length)
    chunked = pl.concat([piece.head(5), piece.tail(length - 5)], rechunk=False)
    with_null = piece.scatter(0, None)
    width = -(-length // 8)
    for series in (piece, chunked, with_null):
        bits = _packed(series, width)
        unpacked = np.unpackbits(bits, bitorder="little")
        assert unpacked[:length].tolist() == series.fill_null(False).to_list()
        assert not unpacked[length:].any()  # past the last row: clear


def test_sums_and_means_read_back_over_their_slots_give_numpy_s_bits() -> None:
    rng = np.random.default_rng(11)
    cents = rng.integers(-10**12, 10**12, 5_000)
    floats = rng.normal(0, 1e6, 5_000)
    n = rng.integers(0, 4, 5_000).astype(np.int32)
    slots = np.stack([cents, cents])  # read back from a row of a block's slots
    scaled = reduce.scaled_over(slots[0], 100.0)
    assert np.shares_memory(scaled, slots)
    assert np.array_equal(scaled, cents / 100.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(n > 0, cents / 100.0 / n, np.nan)
        plain = np.where(n > 0, cents / n, np.nan)
        float_means = np.where(n > 0, floats / n, np.nan)
    assert np.array_equal(reduce.mean_over(slots[1], n, 100.0), means, equal_nan=True)
    assert np.array_equal(reduce.mean_over(cents.copy(), n, 1.0), plain, equal_nan=True)
    assert np.array_equal(reduce.mean_over(floats.copy(), n, 1.0), float_means,
                          equal_nan=True)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from([np.nan, -1.0, -0.0, 0.0, 2.5, 7.0]),
                          st.sampled_from([0.5, 20.0, 40.0])), max_size=40))
def test_extremes_pass_over_nan_values_as_polars_min_and_max_do(
        rows: list[tuple[int, float, float]]) -> None:
    """Slots start as NaN (no value yet); a NaN value never displaces a number, and a user
    whose values are all NaN ends with NaN, which is what Polars' group-by gives."""
    users = 4
    idx = np.array([row[0] for row in rows], dtype=np.int32)
    values = np.array([row[1] for row in rows], dtype=np.float64)
    ages = np.array([row[2] for row in rows], dtype=np.float64)
    out = np.full((2, users), np.nan)
    low, high = np.zeros(2), np.array([30.0, 30.0])
    for half in (slice(0, len(rows) // 3), slice(len(rows) // 3, None)):
        masks = np.packbits(np.ones((1, len(idx[half])), np.bool_), axis=1, bitorder="little")
        reduce.block_extremes_into(idx[half], ages[half], masks, values[half][None],
                                   np.zeros(2, np.int64), np.zeros(2, np.int64), low, high,
                                   np.array([True, False]), out)
    frame = pl.DataFrame({"user": idx, "value": values, "age": ages}, strict=False)
    found = (frame.filter(pl.col("age") <= 30).group_by("user")
             .agg(pl.col("value").max().alias("max"), pl.col("value").min().alias("min")))
    expected = np.full((2, users), np.nan)
    for user, largest, smallest in found.iter_rows():
        expected[:, user] = largest, smallest
    assert np.array_equal(out, expected, equal_nan=True)
