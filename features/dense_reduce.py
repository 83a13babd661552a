"""Per-user reductions into arrays of one slot per user, fed piece after piece.

Why: a hash group-by looks every row's user up again for every aggregate; once each
row knows its user's number (:class:`UserTable`, one hash-table probe per row), every
aggregate is a single loop that scatters into an array of one slot per user, a few
megabytes that stay in cache. The loops add into arrays that persist from one piece
of the lake to the next, so nothing of a piece is kept once it is reduced. They are
compiled with numba and release the GIL, so the aggregates of a pass run on several
threads.

Every reduction walks its rows in their order, so a result never depends on
scheduling: the same events give the same bits. Conventions: ``mask`` says which
rows count (condition passed, value present, row kept); only those rows' user numbers
are read (others may be -1); a float slot with no rows is NaN (the engine turns NaN
into null); counts and sums of no rows are 0.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

Index = npt.NDArray[np.int32]
Rows = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]
Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Keys = npt.NDArray[np.uint64]

FIRST_TABLE = 1 << 12


class UserTable:
    """Numbers users 0, 1, ... in the order they first appear, over any number of pieces.

    An open-addressing table of 64-bit keys (a hash of the user id) with, beside each
    key, a second independent hash of the id: two rows of one key whose checks differ
    are two users sharing a key, which :meth:`number` reports (the caller then numbers
    the ids themselves).
    """

    def __init__(self) -> None:
        self._slots = np.zeros((FIRST_TABLE, 2), np.uint64)
        self._numbers = np.full(FIRST_TABLE, -1, np.int32)
        self.count = 0

    def number(self, keys: Keys, checks: Keys) -> tuple[Index, Rows, bool]:
        """Each row's user number, the rows where new users first appear (their numbers
        follow on from the users already known, in that order), and whether a key was
        seen with two checks."""
        idx = np.empty(len(keys), np.int32)
        first = np.empty(len(keys), np.int64)
        self._slots, self._numbers, count, new, collided = _number(
            keys, checks, self._slots, self._numbers, self.count, idx, first)
        self.count = count
        return idx, first[:new], collided


@njit(cache=True, nogil=True)
def _number(keys: Keys, checks: Keys, slots: npt.NDArray[np.uint64], numbers: Index,
            users: int, idx: Index, first: Rows,
            ) -> tuple[npt.NDArray[np.uint64], Index, int, int, bool]:
    """Number each row's key (``idx``), new ones from ``users`` on (their rows in
    ``first``); the table doubles when half full."""
    size = len(numbers)
    new = 0
    collided = False
    for row in range(len(keys)):
        key = keys[row]
        slot = np.int64(key & np.uint64(size - 1))
        while True:
            if numbers[slot] == -1:
                slots[slot, 0] = key
                slots[slot, 1] = checks[row]
                numbers[slot] = users
                idx[row] = users
                first[new] = row
                new += 1
                users += 1
                break
            if slots[slot, 0] == key:
                idx[row] = numbers[slot]
                collided |= slots[slot, 1] != checks[row]
                break
            slot = (slot + 1) & (size - 1)
        if 2 * users > size:
            size *= 2
            slots, numbers = _rehash(slots, numbers, size)
    return slots, numbers, users, new, collided


@njit(cache=True, nogil=True)
def _rehash(old: npt.NDArray[np.uint64], old_numbers: Index,
            size: int) -> tuple[npt.NDArray[np.uint64], Index]:
    slots = np.zeros((size, 2), np.uint64)
    numbers = np.full(size, -1, np.int32)
    for entry in range(len(old_numbers)):
        if old_numbers[entry] == -1:
            continue
        slot = np.int64(old[entry, 0] & np.uint64(size - 1))
        while numbers[slot] != -1:
            slot = (slot + 1) & (size - 1)
        slots[slot, 0] = old[entry, 0]
        slots[slot, 1] = old[entry, 1]
        numbers[slot] = old_numbers[entry]
    return slots, numbers


@njit(cache=True, nogil=True)
def count_into(idx: Index, mask: Mask, out: Ints) -> None:
    for row in range(len(idx)):
        if mask[row]:
            out[idx[row]] += 1


@njit(cache=True, nogil=True)
def counts_into(idx: Index, masks: npt.NDArray[np.bool_], out: npt.NDArray[np.int64]) -> None:
    """Several counts at once: ``masks[j]`` says which rows count for count ``j``, kept in
    ``out[user, j]``."""
    counts = masks.shape[0]
    for row in range(len(idx)):
        for column in range(counts):
            if masks[column, row]:
                out[idx[row], column] += 1


@njit(cache=True, nogil=True)
def sums_into(idx: Index, mask: Mask, values: Ints | Floats, out: Ints | Floats) -> None:
    """Sums in the values' own type: exact for integers (decimals as integer units)."""
    for row in range(len(idx)):
        if mask[row]:
            out[idx[row]] += values[row]


@njit(cache=True, nogil=True)
def extreme_into(idx: Index, mask: Mask, values: Floats, out: Floats, seen: Mask,
                 largest: bool) -> None:
    """Each user's smallest value so far, or largest with ``largest`` (``seen``: whether
    the user has one yet). A NaN value is kept only as a user's first."""
    for row in range(len(idx)):
        if mask[row]:
            user = idx[row]
            if not seen[user]:
                out[user] = values[row]
                seen[user] = True
                continue
            kept = out[user]  # NaN (a first value that was NaN) compares false either way
            if not (values[row] <= kept if largest else values[row] >= kept):
                out[user] = values[row]


@njit(cache=True, nogil=True)
def moments_into(idx: Index, mask: Mask, values: Floats, n: Ints, mean: Floats,
                 squares: Floats) -> None:
    """Welford's update of each user's count, mean and sum of squared deviations from
    the mean: one pass, without the cancellation of a plain sum of squares."""
    for row in range(len(idx)):
        if mask[row]:
            user = idx[row]
            n[user] += 1
            deviation = values[row] - mean[user]
            mean[user] += deviation / n[user]
            squares[user] += deviation * (values[row] - mean[user])


@njit(cache=True, nogil=True)
def std_of(n: Ints, squares: Floats) -> Floats:
    """Sample standard deviation (n - 1) from the moments; NaN below 2 values."""
    out = np.full(len(n), np.nan)
    for user in range(len(n)):
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
def codes_into(idx: Index, mask: Mask, codes: Ints, low: int, words: int,
               bits: npt.NDArray[np.uint64]) -> None:
    """Set each row's code in its user's bit set: ``words`` 64-bit words per user for
    the codes [low, low + 64 * words)."""
    for row in range(len(idx)):
        if mask[row]:
            offset = codes[row] - low
            bits[idx[row] * words + offset // 64] |= np.uint64(1) << np.uint64(offset % 64)


@njit(cache=True, nogil=True)
def widen_bits(bits: npt.NDArray[np.uint64], words: int, users: int, shift: int,
               wider: int) -> npt.NDArray[np.uint64]:
    """The bit sets laid out ``wider`` words per user, each old word ``shift`` words
    further on (the range's start moved ``shift`` words lower)."""
    out = np.zeros(users * wider, np.uint64)
    for user in range(users):
        for word in range(words):
            out[user * wider + shift + word] = bits[user * words + word]
    return out


@njit(cache=True, nogil=True)
def popcounts(bits: npt.NDArray[np.uint64], words: int, users: int) -> Ints:
    """How many bits each user's set holds."""
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
    UserTable().number(ints.astype(np.uint64), ints.astype(np.uint64))
    count_into(idx, mask, ints.copy())
    counts_into(idx, np.ones((2, 2), np.bool_), np.zeros((1, 2), np.int64))
    sums_into(idx, mask, ints, ints.copy())
    sums_into(idx, mask, floats, floats.copy())
    extreme_into(idx, mask, floats, floats.copy(), mask.copy(), True)
    moments_into(idx, mask, floats, ints.copy(), floats.copy(), floats.copy())
    std_of(ints, floats)
    code_range(mask, ints)
    bits = np.zeros(2, np.uint64)
    codes_into(idx, mask, ints, 0, 1, bits)
    widen_bits(bits, 1, 1, 1, 2)
    popcounts(bits, 1, 1)
    latest_rows(idx, mask, ints, 1)
