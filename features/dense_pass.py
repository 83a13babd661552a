"""One pass of the plan: its aggregates over the rows of its kinds, piece after piece.

Polars evaluates, once per piece, the row conditions and values of the pass's
aggregates over the piece's rows of the pass (column-wise, on every core); the
per-user reduction is then loops over plain arrays (:mod:`features.dense_reduce`)
into slots that persist from piece to piece: counts, sums, means and extremes in
blocks, a family of windows per condition (:mod:`features.dense_blocks`), the others
each in a loop of its own, all on the reduction threads while the next pass is
evaluated. Exactness follows the lake's types: money is summed as integer cents and
integers as integers (the result is then what a decimal sum gives), floating-point
values in row order, so every run gives the same bits.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from features import dense_reduce as reduce
from features.dense_blocks import FAMILY_OPS, FamilyBlocks
from features.event_parts import AGE
from features.plan import Aggregate
from features.polars_exprs import day_number, row_condition, value_expr, valued_rows

THREADS = 2
MAX_CODE_WORDS = 8
"""Distinct counts of integer codes spanning up to 64 times this many values use bit sets."""
USER = "_user"
VALUE = "_value"
TIME = "_time"
EVENT_ID = "_event_id"


@dataclass(frozen=True)
class PassRows:
    """A piece's rows of a pass, each row's user number, and which rows count (None:
    all of them; a row that does not count may have no user number)."""

    frame: pl.DataFrame
    idx: reduce.Index
    valid: reduce.Mask | None


class PassReducer:
    """A pass's aggregates, reduced over every piece added (in the lake's order): counts,
    sums, means and extremes in blocks (:mod:`features.dense_blocks`), the others each
    in a loop of its own."""

    def __init__(self, kinds: tuple[str, ...], aggregates: Sequence[Aggregate], as_of: date,
                 *, before: bool = False) -> None:
        self.kinds = kinds
        self.aggregates = aggregates
        self.as_of = as_of
        self.before = before
        self._blocks: FamilyBlocks | None = None
        self._alone: list[_Read] = []
        self._spent = False

    def add(self, rows: PassRows, users: int, pool: ThreadPoolExecutor) -> list[Future[None]]:
        """Start reducing a piece's rows into the slots of ``users`` users (more than
        before, if the piece brought new ones): the loops run on ``pool`` while the next
        pass is evaluated; wait for every one before the next piece is added."""
        blocks = self._blocks
        if blocks is None:
            blocks = self._blocks = FamilyBlocks.of(
                [aggregate for aggregate in self.aggregates if aggregate.op in FAMILY_OPS],
                rows.frame, self.kinds, day_number(self.as_of), self.before)
            self._alone = [_Read.of(aggregate, rows.frame, self.kinds, self.as_of, self.before)
                           for aggregate in self.aggregates if aggregate.op not in FAMILY_OPS]
        columns = rows.frame.lazy().select(
            pl.col(AGE), *blocks.inputs.exprs(),
            *(expr for read in self._alone for expr in read.exprs())).collect()
        started = [pool.submit(read.add, rows, columns, users) for read in self._alone]
        if blocks.blocks:
            ages = columns.get_column(AGE).to_numpy()
            masks, ints, floats = blocks.inputs.arrays(columns, rows.valid)
            started += [pool.submit(block.add, rows.idx, ages, masks, ints, floats, users)
                        for block in blocks.blocks]
        return started

    def results(self, users: int) -> dict[str, np.ndarray]:
        """Every aggregate of the pass, as an array with one value per user (over the
        slots themselves, so read once: the reducer is spent)."""
        assert self._blocks is not None, "no piece was added"
        assert not self._spent, "a pass's results are read once"
        self._spent = True
        found = {key: result(users) for key, result in self._blocks.results.items()}
        return found | {read.aggregate.key: read.slots.result(users) for read in self._alone}


@dataclass(frozen=True)
class _Read:
    """What one aggregate reduced on its own reads from the rows (its mask, its value)
    and the slots it reduces them into."""

    aggregate: Aggregate
    mask: pl.Expr
    value: pl.Expr
    slots: _Slots

    @classmethod
    def of(cls, aggregate: Aggregate, frame: pl.DataFrame, kinds: tuple[str, ...],
           as_of: date, before: bool) -> _Read:
        cond = row_condition(aggregate, kinds, before=before)
        assert aggregate.value is not None
        day = day_number(as_of)
        exact = value_expr(aggregate.value, as_of_day=day, as_float=False)
        mask = valued_rows(cond, exact)
        if aggregate.op == "distinct":
            dtype = frame.lazy().select(exact).collect_schema().dtypes()[0]
            code = _code(exact, dtype)
            if code is None:
                return cls(aggregate, mask, exact, _DistinctValues())
            return cls(aggregate, mask, code, _DistinctCodes())
        as_float = value_expr(aggregate.value, as_of_day=day, as_float=True)
        assert aggregate.op in ("std", "latest"), aggregate.op
        return cls(aggregate, mask, as_float, _Std() if aggregate.op == "std" else _Latest())

    def exprs(self) -> list[pl.Expr]:
        key = self.aggregate.key
        return [self.mask.fill_null(False).alias(f"{key}_m"), self.value.alias(f"{key}_v")]

    def add(self, rows: PassRows, columns: pl.DataFrame, users: int) -> None:
        self.slots.grow(users)
        self.slots.add(rows, self.mask_of(rows, columns),
                       columns.get_column(f"{self.aggregate.key}_v"))

    def mask_of(self, rows: PassRows, columns: pl.DataFrame) -> reduce.Mask:
        """Which of the piece's rows count for the aggregate."""
        mask = columns.get_column(f"{self.aggregate.key}_m").to_numpy()
        return mask if rows.valid is None else mask & rows.valid


def _code(value: pl.Expr, dtype: pl.DataType) -> pl.Expr | None:
    """The value as Int64 codes; None when it is not an integer code (strings)."""
    if isinstance(dtype, pl.Enum | pl.Categorical):
        return value.to_physical().cast(pl.Int64)
    if dtype.is_integer() or dtype in (pl.Boolean, pl.Date):
        return value.cast(pl.Int64)
    return None


def _ints(series: pl.Series | None) -> np.ndarray:
    assert series is not None
    return series.fill_null(0).to_numpy()


def _floats(series: pl.Series | None) -> np.ndarray:
    assert series is not None
    return series.fill_null(np.nan).to_numpy()


class _Slots:
    """One aggregate's per-user state, grown as users appear."""

    def grow(self, users: int) -> None:
        raise NotImplementedError

    def add(self, rows: PassRows, mask: reduce.Mask, value: pl.Series | None) -> None:
        raise NotImplementedError

    def result(self, users: int) -> np.ndarray:
        raise NotImplementedError


class _Std(_Slots):
    def __init__(self) -> None:
        self.n = np.zeros(0, np.int64)
        self.mean = np.zeros(0, np.float64)
        self.squares = np.zeros(0, np.float64)

    def grow(self, users: int) -> None:
        self.n = reduce.grown(self.n, users)
        self.mean = reduce.grown(self.mean, users)
        self.squares = reduce.grown(self.squares, users)

    def add(self, rows: PassRows, mask: reduce.Mask, value: pl.Series | None) -> None:
        reduce.moments_into(rows.idx, mask, _floats(value), self.n, self.mean, self.squares)

    def result(self, users: int) -> np.ndarray:
        return reduce.std_of(self.n[:users], self.squares[:users])


class _DistinctValues(_Slots):
    """Each piece's distinct (user, value) pairs, kept; counted once every piece is in."""

    def __init__(self) -> None:
        self.pairs: list[pl.DataFrame] = []

    def grow(self, users: int) -> None:
        pass

    def add(self, rows: PassRows, mask: reduce.Mask, value: pl.Series | None) -> None:
        assert value is not None
        picked = pl.Series(mask)
        self.pairs.append(pl.DataFrame({USER: rows.idx, VALUE: value}).filter(picked).unique())

    def result(self, users: int) -> np.ndarray:
        if not self.pairs:
            return np.zeros(users, np.int64)
        found = pl.concat(self.pairs, how="vertical").unique().get_column(USER).to_numpy()
        return np.bincount(found, minlength=users).astype(np.int64)


class _DistinctCodes(_Slots):
    """A bit set per user over the codes seen so far, [low, low + 64 * words), ``low`` a
    multiple of 64; widened when a piece brings codes outside it, and given up for
    (user, code) pairs once it would take more than :data:`MAX_CODE_WORDS` words."""

    def __init__(self) -> None:
        self.low = 0
        self.words = 0
        self.users = 0
        self.bits = np.zeros(0, np.uint64)
        self.pairs: _DistinctValues | None = None

    @property
    def capacity(self) -> int:
        """How many users' bit sets the array holds."""
        return len(self.bits) // self.words if self.words else 0

    def grow(self, users: int) -> None:
        self.users = users
        if self.pairs is None and self.words:
            self.bits = reduce.grown(self.bits, users * self.words)

    def add(self, rows: PassRows, mask: reduce.Mask, value: pl.Series | None) -> None:
        codes = _ints(value)
        if self.pairs is None:
            low, high = reduce.code_range(mask, codes)
            if high >= low and not self._cover(low, high):
                self.pairs = self._as_pairs()
        if self.pairs is not None:
            self.pairs.add(rows, mask, pl.Series(codes))
        elif self.words:
            reduce.codes_into(rows.idx, mask, codes, self.low, self.words, self.bits)

    def _cover(self, low: int, high: int) -> bool:
        """Lay the bit sets out to hold the codes [low, high] too; False when that would
        take too many words."""
        start, stop = low - low % 64, high + 1
        if self.words:
            start, stop = min(start, self.low), max(stop, self.low + 64 * self.words)
        words = -(-(stop - start) // 64)
        if words == self.words:
            return True
        if words > MAX_CODE_WORDS:
            return False
        if self.words:
            shift = (self.low - start) // 64
            self.bits = reduce.widen_bits(self.bits, self.words, self.capacity, shift, words)
        else:
            self.bits = np.zeros(max(self.users, 1) * words, np.uint64)
        self.low, self.words = start, words
        return True

    def _as_pairs(self) -> _DistinctValues:
        """The codes held so far as (user, code) pairs."""
        pairs = _DistinctValues()
        if self.words:
            held = self.bits.view(np.uint8).reshape(self.capacity, -1)
            users, bit = np.nonzero(np.unpackbits(held, axis=1, bitorder="little"))
            pairs.pairs.append(pl.DataFrame({USER: users.astype(np.int32),
                                             VALUE: self.low + bit.astype(np.int64)}))
        self.bits = np.zeros(0, np.uint64)
        return pairs

    def result(self, users: int) -> np.ndarray:
        if self.pairs is not None:
            return self.pairs.result(users)
        if not self.words:
            return np.zeros(users, np.int64)
        return reduce.popcounts(self.bits, self.words, users)


class _Latest(_Slots):
    """The value of each user's latest row by (event_time, event_id), then row order: the
    rows that count are kept (their user, time, id and value), then reduced at once."""

    def __init__(self) -> None:
        self.kept: list[pl.DataFrame] = []

    def grow(self, users: int) -> None:
        pass

    def add(self, rows: PassRows, mask: reduce.Mask, value: pl.Series | None) -> None:
        frame = rows.frame
        self.kept.append(pl.DataFrame({
            USER: rows.idx, TIME: frame.get_column("event_time").dt.epoch("us"),
            EVENT_ID: frame.get_column("event_id"), VALUE: value,
        }).filter(pl.Series(mask)))

    def result(self, users: int) -> np.ndarray:
        out = np.full(users, np.nan)
        if not self.kept:
            return out
        rows = pl.concat(self.kept, how="vertical")
        idx = rows.get_column(USER).to_numpy()
        times = rows.get_column(TIME).to_numpy()
        best, ties = reduce.latest_rows(idx, np.ones(len(idx), np.bool_), times, users)
        if (ties > 1).any():
            tied = ties[idx] > 1
            tied[tied] = times[tied] == times[best[idx[tied]]]
            at = np.flatnonzero(tied)
            last = (pl.DataFrame({USER: idx[at], "_id": rows.get_column(EVENT_ID).gather(at),
                                  "_row": at})
                    .sort(USER, "_id", "_row").group_by(USER, maintain_order=True).last())
            best[last.get_column(USER).to_numpy()] = last.get_column("_row").to_numpy()
        values = _floats(rows.get_column(VALUE))
        found = best >= 0
        out[found] = values[best[found]]
        return out
