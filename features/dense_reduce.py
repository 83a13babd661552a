"""Per-user reductions over rows that carry their user's dense number (0 .. users - 1).

Why: a hash group-by looks every row's user up again for every aggregate; once each
row knows its user's position in a plain array (:func:`dense_keys`, one hash-table
pass over the spine), every aggregate is a single loop that scatters into an array
of one slot per user, a few megabytes that stay in cache. The loops are compiled
with numba and release the GIL, so the aggregates of a pass run on several threads.

Every reduction walks its rows in their order, so a result never depends on
scheduling: the same events give the same bits. Conventions: ``mask`` says which
rows count (condition passed, value present); a float result with no rows is NaN
(the engine turns NaN into null); counts and sums of no rows are 0.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

Index = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]
Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

FIRST_TABLE = 1 << 16


@njit(cache=True, nogil=True)
def dense_keys(keys: npt.NDArray[np.uint64]) -> tuple[Index, Index]:
    """Each row's user number (in order of first appearance) and each user's first row.

    ``keys`` are already hashes, so their low bits index an open-addressing table,
    doubled whenever it is half full.
    """
    size = FIRST_TABLE
    slot_key = np.zeros(size, np.uint64)
    slot_user = np.full(size, -1, np.int64)
    idx = np.empty(len(keys), np.int64)
    first = np.empty(len(keys), np.int64)
    users = 0
    for row in range(len(keys)):
        key = keys[row]
        slot = np.int64(key & np.uint64(size - 1))
        while True:
            user = slot_user[slot]
            if user == -1:
                slot_user[slot] = users
                slot_key[slot] = key
                idx[row] = users
                first[users] = row
                users += 1
                break
            if slot_key[slot] == key:
                idx[row] = user
                break
            slot = (slot + 1) & (size - 1)
        if 2 * users > size:
            size *= 2
            slot_key, slot_user = _rehash(slot_key, slot_user, size)
    return idx, first[:users].copy()


@njit(cache=True, nogil=True)
def _rehash(old_key: npt.NDArray[np.uint64], old_user: Index,
            size: int) -> tuple[npt.NDArray[np.uint64], Index]:
    slot_key = np.zeros(size, np.uint64)
    slot_user = np.full(size, -1, np.int64)
    for old in range(len(old_user)):
        if old_user[old] == -1:
            continue
        slot = np.int64(old_key[old] & np.uint64(size - 1))
        while slot_user[slot] != -1:
            slot = (slot + 1) & (size - 1)
        slot_key[slot] = old_key[old]
        slot_user[slot] = old_user[old]
    return slot_key, slot_user


@njit(cache=True, nogil=True)
def first_rows(idx: Index, users: int) -> Index:
    """Each user's first row."""
    first = np.full(users, -1, np.int64)
    for row in range(len(idx)):
        if first[idx[row]] == -1:
            first[idx[row]] = row
    return first


@njit(cache=True, nogil=True)
def count(idx: Index, mask: Mask, users: int) -> Ints:
    out = np.zeros(users, np.int64)
    for row in range(len(idx)):
        if mask[row]:
            out[idx[row]] += 1
    return out


@njit(cache=True, nogil=True)
def sum_ints(idx: Index, mask: Mask, values: Ints, users: int) -> Ints:
    """Exact sums of integers (decimals as their integer units)."""
    out = np.zeros(users, np.int64)
    for row in range(len(idx)):
        if mask[row]:
            out[idx[row]] += values[row]
    return out


@njit(cache=True, nogil=True)
def sum_floats(idx: Index, mask: Mask, values: Floats, users: int) -> Floats:
    out = np.zeros(users, np.float64)
    for row in range(len(idx)):
        if mask[row]:
            out[idx[row]] += values[row]
    return out


@njit(cache=True, nogil=True)
def minimum(idx: Index, mask: Mask, values: Floats, users: int) -> Floats:
    out = np.full(users, np.nan)
    for row in range(len(idx)):
        if mask[row]:
            user = idx[row]
            if not values[row] >= out[user]:  # NaN (no value yet) compares false
                out[user] = values[row]
    return out


@njit(cache=True, nogil=True)
def maximum(idx: Index, mask: Mask, values: Floats, users: int) -> Floats:
    out = np.full(users, np.nan)
    for row in range(len(idx)):
        if mask[row]:
            user = idx[row]
            if not values[row] <= out[user]:
                out[user] = values[row]
    return out


@njit(cache=True, nogil=True)
def std(idx: Index, mask: Mask, values: Floats, users: int) -> Floats:
    """Sample standard deviation (n - 1), in two passes: the mean, then squared deviations
    from it (a one-pass sum of squares loses digits to cancellation). NaN below 2 values."""
    n = np.zeros(users, np.int64)
    total = np.zeros(users, np.float64)
    for row in range(len(idx)):
        if mask[row]:
            n[idx[row]] += 1
            total[idx[row]] += values[row]
    squares = np.zeros(users, np.float64)
    for row in range(len(idx)):
        if mask[row]:
            user = idx[row]
            deviation = values[row] - total[user] / n[user]
            squares[user] += deviation * deviation
    out = np.full(users, np.nan)
    for user in range(users):
        if n[user] > 1:
            out[user] = np.sqrt(squares[user] / (n[user] - 1))
    return out


@njit(cache=True, nogil=True)
def code_range(mask: Mask, codes: Ints) -> tuple[int, int]:
    """The lowest and highest code among the rows in ``mask`` (0, -1 when none)."""
    low, high, seen = 0, -1, False
    for row in range(len(codes)):
        if mask[row]:
            if not seen or codes[row] < low:
                low = codes[row]
            if not seen or codes[row] > high:
                high = codes[row]
            seen = True
    return low, high


@njit(cache=True, nogil=True)
def distinct_codes(idx: Index, mask: Mask, codes: Ints, low: int, words: int,
                   users: int) -> Ints:
    """How many different codes each user has, codes in [low, low + 64 * words): a bit
    set of ``words`` 64-bit words per user."""
    bits = np.zeros(users * words, np.uint64)
    for row in range(len(idx)):
        if mask[row]:
            offset = codes[row] - low
            bits[idx[row] * words + offset // 64] |= np.uint64(1) << np.uint64(offset % 64)
    out = np.zeros(users, np.int64)
    for user in range(users):
        total = 0
        for word in range(words):
            value = bits[user * words + word]
            while value:
                value &= value - np.uint64(1)
                total += 1
        out[user] = total
    return out


@njit(cache=True, nogil=True)
def latest_rows(idx: Index, mask: Mask, times: Ints, users: int) -> tuple[Index, Ints]:
    """Each user's row with the latest time among ``mask`` (-1: none), and how many of
    their rows share that time (above 1, the caller breaks the tie)."""
    best = np.full(users, -1, np.int64)
    ties = np.zeros(users, np.int64)
    for row in range(len(idx)):
        if mask[row]:
            user = idx[row]
            at = best[user]
            if at == -1 or times[row] > times[at]:
                best[user] = row
                ties[user] = 1
            elif times[row] == times[at]:
                ties[user] += 1
    return best, ties
