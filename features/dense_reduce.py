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

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt
from numba import njit

Index = npt.NDArray[np.int32]
Rows = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]
Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

FIRST_TABLE = 1 << 12


def dense_keys(keys: npt.NDArray[np.uint64], checks: npt.NDArray[np.uint64],
               threads: int = 2) -> tuple[Index, Rows, bool]:
    """Each row's user number, each user's first row, and whether two rows of one key
    disagree on their check hash (two users sharing a key).

    The keys are split by their top bits into ``threads`` parts, each numbered on a
    thread of its own with a table of its own (a table lookup is a cache miss: the
    threads wait on memory side by side); users are numbered part by part, each part's
    in the order they first appear.
    """
    bits = max(threads - 1, 0).bit_length()
    idx = np.empty(len(keys), np.int32)
    with ThreadPoolExecutor(max_workers=1 << bits) as pool:
        numbered = list(pool.map(lambda part: _number(keys, checks, idx, part, bits),
                                 range(1 << bits)))
    counts = np.array([len(first) for first, _ in numbered], dtype=np.int64)
    bases = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int32)
    if bits:
        _rebase(idx, keys, bases, bits)
    first = np.concatenate([first for first, _ in numbered])
    return idx, first, any(collided for _, collided in numbered)


@njit(cache=True, nogil=True)
def _number(keys: npt.NDArray[np.uint64], checks: npt.NDArray[np.uint64], idx: Index,
            part: int, bits: int) -> tuple[Rows, bool]:
    """Number the users whose key's top ``bits`` bits are ``part`` (in ``idx``, from 0),
    and return each one's first row. A slot holds key and check side by side; the
    table doubles when half full."""
    shift = np.uint64((64 - bits) % 64)
    wanted = np.uint64(part)
    size = FIRST_TABLE
    table = np.zeros((size, 2), np.uint64)
    numbers = np.full(size, -1, np.int32)
    first = np.empty(len(keys), np.int64)
    users = 0
    collided = False
    for row in range(len(keys)):
        key = keys[row]
        if bits and (key >> shift) != wanted:
            continue
        slot = np.int64(key & np.uint64(size - 1))
        while True:
            if numbers[slot] == -1:
                table[slot, 0] = key
                table[slot, 1] = checks[row]
                numbers[slot] = users
                idx[row] = users
                first[users] = row
                users += 1
                break
            if table[slot, 0] == key:
                idx[row] = numbers[slot]
                collided |= table[slot, 1] != checks[row]
                break
            slot = (slot + 1) & (size - 1)
        if 2 * users > size:
            size *= 2
            table, numbers = _rehash(table, numbers, size)
    return first[:users].copy(), collided


@njit(cache=True, nogil=True)
def _rehash(old: npt.NDArray[np.uint64], old_numbers: Index,
            size: int) -> tuple[npt.NDArray[np.uint64], Index]:
    table = np.zeros((size, 2), np.uint64)
    numbers = np.full(size, -1, np.int32)
    for entry in range(len(old_numbers)):
        if old_numbers[entry] == -1:
            continue
        slot = np.int64(old[entry, 0] & np.uint64(size - 1))
        while numbers[slot] != -1:
            slot = (slot + 1) & (size - 1)
        table[slot, 0] = old[entry, 0]
        table[slot, 1] = old[entry, 1]
        numbers[slot] = old_numbers[entry]
    return table, numbers


@njit(cache=True, nogil=True)
def _rebase(idx: Index, keys: npt.NDArray[np.uint64], bases: Index, bits: int) -> None:
    """Each part's numbers after those of the parts before it."""
    shift = np.uint64(64 - bits)
    for row in range(len(idx)):
        idx[row] += bases[np.int64(keys[row] >> shift)]


@njit(cache=True, nogil=True)
def first_rows(idx: Index, users: int) -> Rows:
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
def sums(idx: Index, mask: Mask, values: Ints | Floats, users: int) -> Ints | Floats:
    """Sums in the values' own type: exact for integers (decimals as integer units)."""
    out = np.zeros(users, values.dtype)
    for row in range(len(idx)):
        if mask[row]:
            out[idx[row]] += values[row]
    return out


@njit(cache=True, nogil=True)
def extreme(idx: Index, mask: Mask, values: Floats, users: int, largest: bool) -> Floats:
    """Each user's smallest value, or largest with ``largest`` (NaN: no value)."""
    out = np.full(users, np.nan)
    for row in range(len(idx)):
        if mask[row]:
            user = idx[row]
            kept = out[user]  # NaN (no value yet) compares false either way
            if not (values[row] <= kept if largest else values[row] >= kept):
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
def latest_rows(idx: Index, mask: Mask, times: Ints, users: int) -> tuple[Rows, Ints]:
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


def warm_up() -> None:
    """Load every loop's compiled code (numba's first call in a process costs most of a
    second): run it on a thread while the lake is being read, and the passes find it
    ready."""
    idx = np.zeros(2, np.int32)
    mask = np.ones(2, np.bool_)
    ints = np.zeros(2, np.int64)
    floats = np.zeros(2, np.float64)
    dense_keys(ints.astype(np.uint64), ints.astype(np.uint64))
    first_rows(idx, 1)
    count(idx, mask, 1)
    sums(idx, mask, ints, 1)
    for kernel in (sums, std):
        kernel(idx, mask, floats, 1)
    extreme(idx, mask, floats, 1, True)
    code_range(mask, ints)
    distinct_codes(idx, mask, ints, 0, 1, 1)
    latest_rows(idx, mask, ints, 1)
