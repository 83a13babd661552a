"""Ids ordered by their leading bytes give exactly the order Polars' string sort gives."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.id_order import id_order


def polars_order(ids: list[str]) -> list[int]:
    return pl.Series(ids, dtype=pl.String).arg_sort().to_list()


def sorted_ids(ids: list[str]) -> list[str]:
    series = pl.Series(ids, dtype=pl.String)
    return series.gather(id_order(series)).to_list()


# Few letters, so that ids share prefixes and keys often tie; NUL and non-ASCII letters
# are where a byte key could go wrong.
LETTERS = st.sampled_from(["a", "b", "\x00", "é", "z", "0", "9", "\U0001f600"])
IDS = st.lists(st.text(LETTERS, max_size=20), unique=True, max_size=60)


@settings(max_examples=300, deadline=None)
@given(ids=IDS, prefix=st.sampled_from(["", "u", "customer-0000", "é"]))
def test_same_order_as_sorting_the_strings(ids: list[str], prefix: str) -> None:
    ids = [prefix + one for one in ids]
    assert sorted_ids(ids) == sorted(ids, key=lambda one: one.encode())
    assert id_order(pl.Series(ids, dtype=pl.String)).tolist() == polars_order(ids)


@pytest.mark.parametrize("ids", [
    [],
    ["only"],
    ["a", "a\x00", "a\x00\x00", ""],  # equal keys: differ only by trailing zero bytes
    ["customer-000000001-x", "customer-000000001-a", "customer-000000001"],  # tie past 8
    ["u10", "u9", "u100", "u1"],
])
def test_edge_cases(ids: list[str]) -> None:
    assert sorted_ids(ids) == sorted(ids, key=lambda one: one.encode())


def test_a_sliced_column_is_read_from_its_own_offset() -> None:
    ids = pl.Series([f"u{n:07d}" for n in np.random.default_rng(3).permutation(5000)])
    part = ids.slice(1234, 2000)
    assert part.gather(id_order(part)).to_list() == sorted(part.to_list())


def test_many_ids_like_the_lake_s() -> None:
    ids = pl.Series([f"u{n:07d}" for n in np.random.default_rng(7).permutation(200_000)])
    assert np.array_equal(id_order(ids), ids.arg_sort().to_numpy())
