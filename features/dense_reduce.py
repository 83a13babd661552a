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


def grown(array: np.ndarray, users: int) -> np.ndarray:
    """``array`` with room for ``users`` slots (along its last axis), new ones zero.

    Why exactly ``users`` at first and double after: fresh memory costs most of a
    reduction (each page is zeroed on first touch, dearly on a virtual machine), and
    room to spare in a (columns, users) array puts a gap after every column's slots,
    so that each column also touches the huge page its gap starts in (measured: 0.5 GB
    of pages for 0.7 GB of slots). When users are numbered by the lake the first
    piece brings the final count and the slots are never copied; numbered as they
    come, they are copied a few times, less as pieces are larger.
    """
    held = array.shape[-1]
    if held >= users:
        return array
    wider = np.zeros((*array.shape[:-1], users if held == 0 else max(users, 2 * held)),
                     dtype=array.dtype)
    wider[..., :held] = array
    return wider


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
def block_counts_into(idx: Index, ages: Floats, masks: npt.NDArray[np.uint8], of_mask: Ints,
                      low: Floats, high: Floats, out: npt.NDArray[np.int32]) -> None:
    """Counts of a block: column ``j`` counts the rows of mask ``of_mask[j]`` whose age lies
    in (``low[j]``, ``high[j]``], in ``out[j, user]``. Masks are bits, eight rows a byte,
    the first row in the lowest bit (Arrow's layout, read without unpacking)."""
    lowest, highest = low.min(), high.max()  # rows outside every window skip the columns
    for row in range(len(idx)):
        age = ages[row]
        if not (lowest < age <= highest):
            continue
        byte, bit = row >> 3, row & 7
        for column in range(len(of_mask)):
            if masks[of_mask[column], byte] >> bit & 1 and low[column] < age and age <= high[column]:
                out[column, idx[row]] += 1


@njit(cache=True, nogil=True)
def block_sums_into(idx: Index, ages: Floats, masks: npt.NDArray[np.uint8],
                    values: npt.NDArray[np.int64] | npt.NDArray[np.float64], of_mask: Ints,
                    of_value: Ints, low: Floats, high: Floats,
                    out: npt.NDArray[np.int64] | npt.NDArray[np.float64]) -> None:
    """Sums of a block, in the values' own type: column ``j`` adds value ``of_value[j]``
    of the rows of its mask and window."""
    lowest, highest = low.min(), high.max()  # rows outside every window skip the columns
    for row in range(len(idx)):
        age = ages[row]
        if not (lowest < age <= highest):
            continue
        byte, bit = row >> 3, row & 7
        for column in range(len(of_mask)):
            if masks[of_mask[column], byte] >> bit & 1 and low[column] < age and age <= high[column]:
                out[column, idx[row]] += values[of_value[column], row]


@njit(cache=True, nogil=True)
def block_extremes_into(idx: Index, ages: Floats, masks: npt.NDArray[np.uint8],
                        values: npt.NDArray[np.float64], of_mask: Ints, of_value: Ints,
                        low: Floats, high: Floats, largest: Mask,
                        out: npt.NDArray[np.float64]) -> None:
    """Extremes of a block: each user's largest value so far where ``largest``, else the
    smallest, in slots that start as NaN (no value yet: no array of which users have one
    to look up beside them). NaN values are passed over, as Polars' min and max do; ties
    keep the first."""
    lowest, highest = low.min(), high.max()  # rows outside every window skip the columns
    for row in range(len(idx)):
        age = ages[row]
        if not (lowest < age <= highest):
            continue
        byte, bit = row >> 3, row & 7
        for column in range(len(of_mask)):
            if masks[of_mask[column], byte] >> bit & 1 and low[column] < age and age <= high[column]:
                user = idx[row]
                value = values[of_value[column], row]
                kept = out[column, user]
                if kept != kept or (value > kept if largest[column] else value < kept):
                    out[column, user] = value


@njit(cache=True, nogil=True)
def scaled_over(values: Ints, divisor: float) -> Floats:
    """``values / divisor`` written over ``values`` (a sum's slots, read back once), as
    floats: a million users' result needs no fresh memory (faulting in fresh pages costs
    more than the division)."""
    out = values.view(np.float64)
    for user in range(len(values)):
        out[user] = values[user] / divisor
    return out


@njit(cache=True, nogil=True)
def mean_over(total: Ints | Floats, n: npt.NDArray[np.int32], divisor: float) -> Floats:
    """``total / divisor / n`` (NaN where ``n`` is 0) written over ``total``, as floats."""
    out = total.view(np.float64)
    for user in range(len(total)):
        out[user] = total[user] / divisor / n[user] if n[user] > 0 else np.nan
    return out


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
    masks, of, low, high = np.ones((1, 1), np.uint8), np.zeros(1, np.int64), floats[:1], floats[:1]
    block_counts_into(idx, floats, masks, of, low, high, np.zeros((1, 1), np.int32))
    block_sums_into(idx, floats, masks, ints[None], of, of, low, high, np.zeros((1, 1), np.int64))
    block_sums_into(idx, floats, masks, floats[None], of, of, low, high, np.zeros((1, 1)))
    block_extremes_into(idx, floats, masks, floats[None], of, of, low, high, mask[:1],
                        np.zeros((1, 1)))
    moments_into(idx, mask, floats, ints.copy(), floats.copy(), floats.copy())
    std_of(ints, floats)
    scaled_over(ints.copy(), 10.0)
    mean_over(ints.copy(), idx, 1.0)
    mean_over(floats.copy(), idx, 1.0)
    code_range(mask, ints)
    bits = np.zeros(2, np.uint64)
    codes_into(idx, mask, ints, 0, 1, bits)
    widen_bits(bits, 1, 1, 1, 2)
    popcounts(bits, 1, 1)
    latest_rows(idx, mask, ints, 1)
