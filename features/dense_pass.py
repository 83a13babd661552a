"""One pass of the plan: its aggregates over the rows of its kinds, one array per aggregate.

Polars evaluates, for a few aggregates at a time, each one's row condition and
value over the pass's rows (column-wise, on every core); the per-user reduction is
then a loop over plain arrays (:mod:`features.dense_reduce`), the aggregates of a
batch on several threads. Exactness follows the lake's types: money is summed as
integer cents and integers as integers (the result is then what a decimal sum
gives), floating-point values in row order, so every run gives the same bits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from features import dense_reduce as reduce
from features.event_parts import AGE
from features.plan import Aggregate
from features.polars_exprs import day_number, row_condition, value_expr

BATCH = 6
"""Aggregates whose rows are evaluated at once (bounds the memory of their columns)."""
THREADS = 2
MAX_CODE_WORDS = 8
"""Distinct counts of integer codes spanning up to 64 times this many values use bit sets."""
ROW = "_row"


@dataclass(frozen=True)
class PassRows:
    """A pass's rows, each user's dense number per row, and how many users there are."""

    frame: pl.DataFrame
    idx: reduce.Index
    users: int
    kinds: tuple[str, ...]
    before: bool


def reduce_pass(rows: PassRows, aggregates: Sequence[Aggregate],
                as_of: date) -> dict[str, np.ndarray]:
    """Every aggregate of the pass, as an array with one value per user."""
    results: dict[str, np.ndarray] = {}
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        for batch in _batches(aggregates, BATCH):
            reads = [_Read.of(aggregate, rows, as_of) for aggregate in batch]
            # lazily: identical value expressions of a batch (one column over several
            # windows) are evaluated once
            columns = rows.frame.lazy().select(
                expr for read in reads for expr in read.exprs()).collect()
            done = pool.map(_Read.reduce, reads, [columns] * len(reads))
            for read, result in zip(reads, done, strict=True):
                results[read.aggregate.key] = result
    return results


def _batches(items: Sequence[Aggregate], size: int) -> Iterator[Sequence[Aggregate]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


@dataclass(frozen=True)
class _Read:
    """What one aggregate reads from the rows (its mask, its value) and how it reduces."""

    aggregate: Aggregate
    rows: PassRows
    mask: pl.Expr | None
    value: pl.Expr | None
    kind: str
    scale: int = 0

    @classmethod
    def of(cls, aggregate: Aggregate, rows: PassRows, as_of: date) -> _Read:
        cond = row_condition(aggregate, rows.kinds, before=rows.before)
        op = aggregate.op
        if op == "count":
            return cls(aggregate, rows, cond, None, "count")
        if op in ("min_age", "max_age"):
            return cls(aggregate, rows, cond, pl.col(AGE), op)
        assert aggregate.value is not None
        day = day_number(as_of)
        exact = value_expr(aggregate.value, as_of_day=day, as_float=False)
        dtype = rows.frame.lazy().select(exact).collect_schema().dtypes()[0]
        if op in ("sum", "mean"):
            value, kind, scale = _summand(exact, dtype)
            return cls(aggregate, rows, _keep(cond, exact), value, f"{op}_{kind}", scale)
        if op == "distinct":
            code = _code(exact, dtype)
            if code is None:
                return cls(aggregate, rows, _keep(cond, exact), exact, "distinct_values")
            return cls(aggregate, rows, _keep(cond, exact), code, "distinct_codes")
        as_float = value_expr(aggregate.value, as_of_day=day, as_float=True)
        return cls(aggregate, rows, _keep(cond, exact), as_float, op)  # min, max, std, latest

    def exprs(self) -> list[pl.Expr]:
        key = self.aggregate.key
        found = [] if self.mask is None else [self.mask.fill_null(False).alias(f"{key}_m")]
        if self.value is not None:
            found.append(self.value.alias(f"{key}_v"))
        return found

    def reduce(self, columns: pl.DataFrame) -> np.ndarray:
        key, rows = self.aggregate.key, self.rows
        mask = (np.ones(len(rows.idx), dtype=np.bool_) if self.mask is None
                else columns.get_column(f"{key}_m").to_numpy())
        value = None if self.value is None else columns.get_column(f"{key}_v")
        return _REDUCERS[self.kind](self, mask, value)


def _keep(cond: pl.Expr | None, value: pl.Expr) -> pl.Expr:
    present = value.is_not_null()
    return present if cond is None else cond & present


def _summand(value: pl.Expr, dtype: pl.DataType) -> tuple[pl.Expr, str, int]:
    """The value as exact integer units (decimals: units of their scale) or as floats."""
    if isinstance(dtype, pl.Decimal):
        return value.to_physical().cast(pl.Int64), "ints", dtype.scale or 0
    if dtype.is_integer() or dtype == pl.Boolean:
        return value.cast(pl.Int64), "ints", 0
    return value.cast(pl.Float64), "floats", 0


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


def _count(read: _Read, mask: np.ndarray, _: pl.Series | None) -> np.ndarray:
    return reduce.count(read.rows.idx, mask, read.rows.users)


def _sum_ints(read: _Read, mask: np.ndarray, value: pl.Series | None) -> np.ndarray:
    total = reduce.sums(read.rows.idx, mask, _ints(value), read.rows.users)
    return total if read.scale == 0 else total / 10.0 ** read.scale


def _sum_floats(read: _Read, mask: np.ndarray, value: pl.Series | None) -> np.ndarray:
    return reduce.sums(read.rows.idx, mask, _floats(value), read.rows.users)


def _mean(read: _Read, mask: np.ndarray, value: pl.Series | None) -> np.ndarray:
    total = (_sum_ints if read.kind == "mean_ints" else _sum_floats)(read, mask, value)
    n = reduce.count(read.rows.idx, mask, read.rows.users)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / n, np.nan)


def _extreme(largest: bool) -> Callable[[_Read, np.ndarray, pl.Series | None], np.ndarray]:
    def run(read: _Read, mask: np.ndarray, value: pl.Series | None) -> np.ndarray:
        return reduce.extreme(read.rows.idx, mask, _floats(value), read.rows.users, largest)
    return run


def _std(read: _Read, mask: np.ndarray, value: pl.Series | None) -> np.ndarray:
    return reduce.std(read.rows.idx, mask, _floats(value), read.rows.users)


def _distinct_codes(read: _Read, mask: np.ndarray, value: pl.Series | None) -> np.ndarray:
    codes = _ints(value)
    low, high = reduce.code_range(mask, codes)
    words = (high - low) // 64 + 1
    if words > MAX_CODE_WORDS:
        return _distinct_values(read, mask, value)
    return reduce.distinct_codes(read.rows.idx, mask, codes, low, max(words, 1), read.rows.users)


def _distinct_values(read: _Read, mask: np.ndarray, value: pl.Series | None) -> np.ndarray:
    assert value is not None
    pairs = pl.DataFrame({"_user": read.rows.idx, "_value": value}).filter(pl.Series(mask))
    users = pairs.unique().get_column("_user").to_numpy()
    return np.bincount(users, minlength=read.rows.users).astype(np.int64)


def _latest(read: _Read, mask: np.ndarray, value: pl.Series | None) -> np.ndarray:
    """The value of each user's latest row by (event_time, event_id), then row order."""
    rows = read.rows
    times = rows.frame.get_column("event_time").dt.epoch("us").to_numpy()
    best, ties = reduce.latest_rows(rows.idx, mask, times, rows.users)
    if (ties > 1).any():
        tied = mask & (ties[rows.idx] > 1)
        tied[tied] = times[tied] == times[best[rows.idx[tied]]]
        at = np.flatnonzero(tied)
        last = (pl.DataFrame({"_user": rows.idx[at], "_id": rows.frame.get_column("event_id")
                              .gather(at), ROW: at})
                .sort("_user", "_id", ROW).group_by("_user", maintain_order=True).last())
        best[last.get_column("_user").to_numpy()] = last.get_column(ROW).to_numpy()
    values = _floats(value)
    found = best >= 0
    out = np.full(rows.users, np.nan)
    out[found] = values[best[found]]
    return out


_REDUCERS: dict[str, Callable[[_Read, np.ndarray, pl.Series | None], np.ndarray]] = {
    "count": _count,
    "sum_ints": _sum_ints,
    "sum_floats": _sum_floats,
    "mean_ints": _mean,
    "mean_floats": _mean,
    "min": _extreme(largest=False),
    "max": _extreme(largest=True),
    "min_age": _extreme(largest=False),
    "max_age": _extreme(largest=True),
    "std": _std,
    "distinct_codes": _distinct_codes,
    "distinct_values": _distinct_values,
    "latest": _latest,
}
