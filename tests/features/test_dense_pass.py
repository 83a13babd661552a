"""Distinct counts over pieces: bit sets that widen as users and codes arrive, then pairs."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from features.dense_pass import MAX_CODE_WORDS, PassRows, _DistinctCodes


@pytest.mark.parametrize(("spans", "as_pairs"), [
    ([(0, 10), (100, 130), (-70, 5), (60, 120)], False),  # widened up, then down
    ([(0, 10), (100, 130), (-300, 400), (0, 5)], True),  # too wide: pairs from then on
])
def test_distinct_codes_match_sets_whatever_the_pieces_bring(
        spans: list[tuple[int, int]], as_pairs: bool) -> None:
    rng = np.random.default_rng(5)
    slots, expected = _DistinctCodes(), {}
    users = 0
    for number, (low, high) in enumerate(spans):
        users = 3 + 60 * number  # more users each piece: the bit sets grow with them
        idx = rng.integers(0, users, 400).astype(np.int32)
        codes = rng.integers(low, high + 1, 400)
        mask = rng.random(400) < 0.8
        slots.grow(users)
        slots.add(PassRows(pl.DataFrame(), idx, None), mask, pl.Series(codes))
        for user, code, keep in zip(idx.tolist(), codes.tolist(), mask.tolist(), strict=True):
            if keep:
                expected.setdefault(user, set()).add(code)
    assert (slots.pairs is not None) == as_pairs
    assert as_pairs or slots.words <= MAX_CODE_WORDS
    found = slots.result(users)
    assert found.tolist() == [len(expected.get(user, ())) for user in range(users)]
