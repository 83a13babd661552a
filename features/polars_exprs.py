"""The plan's row-level pieces rendered as Polars expressions: values, conditions, outputs.

Why apart: the embedded engine evaluates these over a pass's rows (Polars is fast at
column-wise conditions) and hands the results to per-user reductions
(:mod:`features.dense_pass`); the same expressions serve the contact graph pass and
the features computed from the aggregates.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import polars as pl

from features.event_parts import AGE
from features.plan import Aggregate, Cond, Diff, Expr, Ratio, Ref, Scale, Value


def day_number(day: date) -> int:
    """Days since 1970-01-01."""
    return (day - date(1970, 1, 1)).days


def value_expr(value: Value, *, as_of_day: int, as_float: bool) -> pl.Expr:
    """The per-row value an aggregate reads; ``as_float`` widens it to Float64."""
    column = pl.col(value.column)
    if value.mapping is not None:
        return column.cast(pl.String).replace_strict(
            dict(value.mapping), default=None, return_dtype=pl.Float64)
    if value.transform == "age_days":
        # Days from the date to D: D's day number minus the date's (days since 1970-01-01).
        days = pl.lit(as_of_day, pl.Int64) - column.cast(pl.Int32).cast(pl.Int64)
        return days.cast(pl.Float64) if as_float else days
    return column.cast(pl.Float64) if as_float else column


def row_condition(aggregate: Aggregate, pass_kinds: Sequence[str], *,
                  before: bool = False) -> pl.Expr | None:
    """Whether a row of the pass counts for the aggregate (None: every row does);
    ``before`` adds event_time < D, for rows not yet restricted to it."""
    parts: list[pl.Expr] = [pl.col(AGE) > 0] if before else []
    if aggregate.kinds and tuple(aggregate.kinds) != tuple(pass_kinds):
        parts.append(pl.col("kind").is_in(list(aggregate.kinds)))
    parts += [condition_expr(condition) for condition in aggregate.conditions]
    if aggregate.lag:
        parts.append(pl.col(AGE) > aggregate.lag)
    if aggregate.window is not None:
        parts.append(pl.col(AGE) <= aggregate.lag + aggregate.window)
    return pl.all_horizontal(parts) if len(parts) > 1 else (parts[0] if parts else None)


def valued_rows(condition: pl.Expr | None, value: pl.Expr) -> pl.Expr:
    """The rows that pass ``condition`` (every row, when None) and have a value."""
    present = value.is_not_null()
    return present if condition is None else condition & present


def condition_expr(condition: Cond) -> pl.Expr:
    column = pl.col(condition.column)
    value = condition.value
    predicate = {
        "eq": lambda: column == value,
        "ne": lambda: column != value,
        "lt": lambda: column < value,
        "le": lambda: column <= value,
        "gt": lambda: column > value,
        "ge": lambda: column >= value,
        "in": lambda: column.is_in(list(value)),  # type: ignore[arg-type]
        "not_in": lambda: ~column.is_in(list(value)),  # type: ignore[arg-type]
        "is_null": lambda: column.is_null(),
        "not_null": lambda: column.is_not_null(),
    }[condition.op]()
    if condition.op in ("in", "not_in"):
        predicate = pl.when(column.is_null()).then(None).otherwise(predicate)
    if condition.kinds:
        predicate = ~pl.col("kind").is_in(list(condition.kinds)) | predicate
    return predicate


def output_expr(expr: Expr) -> pl.Expr:
    """A feature as an expression over the aggregates' columns."""
    if isinstance(expr, Ref):
        return pl.col(expr.key).cast(pl.Float64)
    if isinstance(expr, Ratio):
        denominator = output_expr(expr.denominator)
        return pl.when(denominator != 0).then(output_expr(expr.numerator) / denominator)
    if isinstance(expr, Diff):
        return output_expr(expr.left) - output_expr(expr.right)
    if isinstance(expr, Scale):
        return output_expr(expr.operand) * expr.factor
    raise TypeError(f"unknown plan expression {expr!r}")
