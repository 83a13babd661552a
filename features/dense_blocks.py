"""A pass's counts, sums, means and extremes, every window of them, in a few loops.

Why blocks: most aggregates of a pass are one *family* over several windows (the
count of on-time repayments over 90, 180 and 365 days; the sum of payments over
30, 90, 365 days and all time). Polars evaluates each family's row condition once
(windows left out) and each value once; one loop per block then walks the rows
and, for every column of the block, tests the family's mask and the row's age
against the column's window (``lag < age <= lag + window``, the very comparison
:func:`features.polars_exprs.row_condition` makes) and adds the row into the
user's slot of that column: one pass over the rows for the whole block where a loop
per aggregate takes one each, and one evaluated condition per family where there was
one per window. A column's slots are one array over the users (read back as the
result, no copy); the lake stores a kind's rows user by user
(:mod:`features.lake_clusters`), so the loops walk those arrays in order. Each column
still takes its rows in their order, so float sums and extremes give the bits a loop
per aggregate gives.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np
import polars as pl
import pyarrow as pa

from features import dense_reduce as reduce
from features.event_parts import AGE
from features.plan import Aggregate
from features.polars_exprs import row_condition, value_expr, valued_rows

BLOCK_COLUMNS = 16
"""Columns one block reduces at once."""

FAMILY_OPS = frozenset({"count", "sum", "mean", "min", "max", "min_age", "max_age"})
"""The aggregates blocks reduce; the others (distinct, std, latest) have loops of their own."""


@dataclass(frozen=True)
class Window:
    """The ages (days before D) a column counts: ``low < age <= high``."""

    low: float
    high: float

    @classmethod
    def of(cls, aggregate: Aggregate) -> Window:
        high = math.inf if aggregate.window is None else float(aggregate.lag + aggregate.window)
        return cls(float(aggregate.lag), high)


@dataclass
class Inputs:
    """What the blocks of a pass read, named in the order they are evaluated: each
    family's row condition (windows aside) and each value, integer or float."""

    masks: dict[Hashable, pl.Expr] = field(default_factory=dict)
    ints: dict[Hashable, pl.Expr] = field(default_factory=dict)
    floats: dict[Hashable, pl.Expr] = field(default_factory=dict)

    def mask(self, aggregate: Aggregate, expr: pl.Expr | None) -> int:
        """The row of the family's mask: aggregates of the same kinds, conditions and
        value (whatever their op and window) share one."""
        key = (aggregate.kinds, aggregate.conditions, aggregate.value)
        return _place(self.masks, key, pl.lit(True) if expr is None else expr)

    def value(self, key: Hashable, expr: pl.Expr, *, ints: bool) -> int:
        """The row of a value (``key`` names it: the same value, the same row)."""
        return _place(self.ints if ints else self.floats, key, expr)

    def exprs(self) -> list[pl.Expr]:
        return [*(expr.fill_null(False).alias(f"_m{at}")
                  for at, expr in enumerate(self.masks.values())),
                *(expr.fill_null(0).alias(f"_i{at}") for at, expr in enumerate(self.ints.values())),
                *(expr.alias(f"_f{at}") for at, expr in enumerate(self.floats.values()))]

    def arrays(self, columns: pl.DataFrame, valid: reduce.Mask | None,
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The masks (rows that do not count masked out) as bits, and the integer and
        float values, each as one array of a row per mask or value."""
        masks = _bits(columns, len(self.masks))
        if valid is not None:
            masks &= np.packbits(valid, bitorder="little")
        return (masks, _matrix(columns, "_i", len(self.ints), np.int64),
                _matrix(columns, "_f", len(self.floats), np.float64))


def _place(found: dict[Hashable, pl.Expr], key: Hashable, expr: pl.Expr) -> int:
    if key not in found:
        found[key] = expr
    return list(found).index(key)


def _bits(columns: pl.DataFrame, count: int) -> np.ndarray:
    """Boolean columns ``_m0..`` as a (count, bytes) array of their Arrow bits, eight rows
    a byte: copied as they are, where unpacking them to a byte per row would cost eight
    times the memory and most of the time of a pass's conversions."""
    width = -(-columns.height // 8)
    out = np.empty((count, width), np.uint8)
    for at in range(count):
        out[at] = _packed(columns.get_column(f"_m{at}"), width)
    return out


def _packed(series: pl.Series, width: int) -> np.ndarray:
    array = series.rechunk().to_arrow()
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if array.offset % 8 or array.null_count:
        return np.packbits(series.fill_null(False).to_numpy(), bitorder="little")
    start = array.offset // 8
    data = np.frombuffer(array.buffers()[1], np.uint8)[start:start + width].copy()
    if len(series) % 8:  # bits past the last row are not defined by Arrow: clear them
        data[-1] &= np.uint8((1 << (len(series) % 8)) - 1)
    return data


def _matrix(columns: pl.DataFrame, prefix: str, count: int, dtype: type) -> np.ndarray:
    """Columns ``prefix0..`` as a (count, rows) array, a row per column."""
    if not count:
        return np.zeros((0, columns.height), dtype)
    frame = columns.select(f"{prefix}{at}" for at in range(count))
    return np.ascontiguousarray(frame.to_numpy(order="fortran").T, dtype=dtype)


@dataclass(frozen=True)
class Column:
    """One aggregate's column of a block: its mask, its value (-1: none) and window, and
    for an extreme whether it is the largest."""

    key: str
    mask: int
    value: int
    window: Window
    largest: bool = False


class Block:
    """Columns reduced in one loop, each into an array of a slot per user (a row of
    ``slots``: read back without a copy)."""

    def __init__(self, columns: Sequence[Column], dtype: type) -> None:
        self.columns = list(columns)
        self.low = np.array([column.window.low for column in columns])
        self.high = np.array([column.window.high for column in columns])
        self.of_mask = np.array([column.mask for column in columns], np.int64)
        self.of_value = np.array([column.value for column in columns], np.int64)
        self.slots = np.zeros((len(columns), 0), dtype)

    def grow(self, users: int) -> None:
        self.slots = reduce.grown(self.slots, users)

    def add(self, idx: reduce.Index, ages: reduce.Floats, masks: np.ndarray, ints: np.ndarray,
            floats: np.ndarray, users: int) -> None:
        raise NotImplementedError

    def column(self, at: int, users: int) -> np.ndarray:
        return self.slots[at, :users]


class CountBlock(Block):
    """Counts as 32-bit integers (a user's events number far below 2^31): half the
    memory a 64-bit count takes, and a count block's loop is bound by memory."""

    def __init__(self, columns: Sequence[Column]) -> None:
        super().__init__(columns, np.int32)

    def add(self, idx: reduce.Index, ages: reduce.Floats, masks: np.ndarray, ints: np.ndarray,
            floats: np.ndarray, users: int) -> None:
        self.grow(users)
        reduce.block_counts_into(idx, ages, masks, self.of_mask, self.low, self.high, self.slots)


class SumBlock(Block):
    """Sums of integers (decimals as units of their scale, exact) or of floats."""

    def __init__(self, columns: Sequence[Column], *, ints: bool) -> None:
        super().__init__(columns, np.int64 if ints else np.float64)
        self.ints = ints

    def add(self, idx: reduce.Index, ages: reduce.Floats, masks: np.ndarray, ints: np.ndarray,
            floats: np.ndarray, users: int) -> None:
        self.grow(users)
        reduce.block_sums_into(idx, ages, masks, ints if self.ints else floats, self.of_mask,
                               self.of_value, self.low, self.high, self.slots)


class ExtremeBlock(Block):
    """Each column's smallest value, or largest where ``largest``; NaN where none."""

    def __init__(self, columns: Sequence[Column]) -> None:
        super().__init__(columns, np.float64)
        self.largest = np.array([column.largest for column in columns], np.bool_)
        self.filled = 0

    def grow(self, users: int) -> None:
        """Room for ``users`` users, the slots of those not seen before set to NaN (only
        theirs: the room to spare stays untouched memory)."""
        super().grow(users)
        if users > self.filled:
            self.slots[:, self.filled:users] = np.nan
            self.filled = users

    def add(self, idx: reduce.Index, ages: reduce.Floats, masks: np.ndarray, ints: np.ndarray,
            floats: np.ndarray, users: int) -> None:
        self.grow(users)
        reduce.block_extremes_into(idx, ages, masks, floats, self.of_mask, self.of_value,
                                   self.low, self.high, self.largest, self.slots)

    def column(self, at: int, users: int) -> np.ndarray:
        self.grow(users)
        return super().column(at, users)


Result = Callable[[int], np.ndarray]


@dataclass
class FamilyBlocks:
    """The blocks of a pass and how each of its aggregates is read back from them."""

    inputs: Inputs
    blocks: list[Block]
    results: dict[str, Result]

    @classmethod
    def of(cls, aggregates: Sequence[Aggregate], frame: pl.DataFrame, kinds: tuple[str, ...],
           day: int, before: bool) -> FamilyBlocks:
        """Blocks for those of ``aggregates`` that are counts, sums, means or extremes
        (of a value, or of the age): ``frame`` tells the values' types."""
        plan = _BlockPlan(Inputs(), kinds, day, before, frame)
        for aggregate in aggregates:
            plan.place(aggregate)
        blocks: list[Block] = []
        placed: dict[str, tuple[Block, int]] = {}
        for make, columns in plan.groups():
            for start in range(0, len(columns), BLOCK_COLUMNS):
                block = make(columns[start:start + BLOCK_COLUMNS])
                blocks.append(block)
                placed |= {column.key: (block, at) for at, column in enumerate(block.columns)}
        return cls(plan.inputs, blocks, plan.results(placed))


class _BlockPlan:
    """The columns each kind of block will hold, as aggregates are placed."""

    def __init__(self, inputs: Inputs, kinds: tuple[str, ...], day: int, before: bool,
                 frame: pl.DataFrame) -> None:
        self.inputs, self.kinds, self.day, self.before, self.frame = (
            inputs, kinds, day, before, frame)
        self.counts: list[Column] = []
        self.int_sums: list[Column] = []
        self.float_sums: list[Column] = []
        self.extremes: list[Column] = []
        self.scales: dict[str, int] = {}
        self.means: dict[str, tuple[str, str]] = {}

    def place(self, aggregate: Aggregate) -> None:
        cond = row_condition(replace(aggregate, window=None, lag=0), self.kinds,
                             before=self.before)
        window = Window.of(aggregate)
        key = aggregate.key
        if aggregate.op == "count":
            self.counts.append(Column(key, self.inputs.mask(aggregate, cond), -1, window))
            return
        if aggregate.op in ("min_age", "max_age"):
            value = self.inputs.value(AGE, pl.col(AGE), ints=False)
            self.extremes.append(Column(key, self.inputs.mask(aggregate, cond), value, window,
                                        largest=aggregate.op == "max_age"))
            return
        assert aggregate.value is not None
        exact = value_expr(aggregate.value, as_of_day=self.day, as_float=False)
        mask = self.inputs.mask(aggregate, valued_rows(cond, exact))
        if aggregate.op in ("min", "max"):
            as_float = value_expr(aggregate.value, as_of_day=self.day, as_float=True)
            value = self.inputs.value((aggregate.value, "float"), as_float, ints=False)
            self.extremes.append(Column(key, mask, value, window, largest=aggregate.op == "max"))
            return
        summand, ints, scale = summand_of(exact, self.frame)
        value = self.inputs.value((aggregate.value, "exact"), summand, ints=ints)
        total = Column(key if aggregate.op == "sum" else key + "_sum", mask, value, window)
        (self.int_sums if ints else self.float_sums).append(total)
        self.scales[total.key] = scale
        if aggregate.op == "mean":
            self.counts.append(Column(key + "_n", mask, -1, window))
            self.means[key] = (total.key, key + "_n")

    def groups(self) -> list[tuple[Callable[[Sequence[Column]], Block], list[Column]]]:
        groups: list[tuple[Callable[[Sequence[Column]], Block], list[Column]]] = [
            (CountBlock, self.counts),
            (partial(SumBlock, ints=True), self.int_sums),
            (partial(SumBlock, ints=False), self.float_sums),
            (ExtremeBlock, self.extremes),
        ]
        return [group for group in groups if group[1]]

    def results(self, placed: dict[str, tuple[Block, int]]) -> dict[str, Result]:
        """How each aggregate is read back: once, since scaled sums and means are written
        as floats over their slots (fresh memory for them costs more than the division)."""
        def raw(key: str) -> Result:
            block, at = placed[key]
            return lambda users: block.column(at, users)

        def read(key: str) -> Result:
            scale, column = self.scales.get(key, 0), raw(key)
            if scale:
                return lambda users: reduce.scaled_over(column(users), 10.0 ** scale)
            return column

        def mean(total: str, count: str) -> Result:
            divisor, sums, counts = 10.0 ** self.scales.get(total, 0), raw(total), raw(count)
            return lambda users: reduce.mean_over(sums(users), counts(users), divisor)

        inside = {column for pair in self.means.values() for column in pair}
        found = {key: read(key) for key in placed if key not in inside}
        found |= {key: mean(total, count) for key, (total, count) in self.means.items()}
        return found


def summand_of(value: pl.Expr, frame: pl.DataFrame) -> tuple[pl.Expr, bool, int]:
    """The value as exact integer units (decimals: units of their scale) or as floats."""
    dtype = frame.lazy().select(value).collect_schema().dtypes()[0]
    if isinstance(dtype, pl.Decimal):
        return value.to_physical().cast(pl.Int64), True, dtype.scale or 0
    if dtype.is_integer() or dtype == pl.Boolean:
        return value.cast(pl.Int64), True, 0
    return value.cast(pl.Float64), False, 0
