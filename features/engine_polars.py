"""The plan rendered as Polars lazy expressions: the embedded engine.

Input is a LazyFrame of *resolved* events (the lake as known at T, see
:func:`features.lake.scan_events`); output is one row per user seen in it, one
Float64 column per feature. The work is one grouped pass per set of kinds, each
over only its own rows, with every aggregate of that pass computed as a
conditional aggregate (``when(cond).then(value).sum()`` ...) in the same
``group_by``; then one pass over the contact graph; then the features as
column expressions over the aggregates.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime

import polars as pl

from features.plan import (
    ZERO_WHEN_EMPTY,
    Aggregate,
    Cond,
    ContactAggregate,
    Diff,
    Expr,
    Plan,
    Ratio,
    Ref,
    Scale,
    Value,
    compile_plan,
)

MICROS_PER_DAY = 86_400_000_000
AGE = "_age_days"
BASE_COLUMNS = ("user_id", "kind", "event_id", "event_time")


def as_of_instant(as_of: date) -> datetime:
    """The as-of date D as an instant: midnight UTC starting that day."""
    return datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC)


def as_of_micros(as_of: date) -> int:
    return int(as_of_instant(as_of).timestamp()) * 1_000_000


def day_number(day: date) -> int:
    """Days since 1970-01-01."""
    return (day - date(1970, 1, 1)).days


def feature_frame(events: pl.LazyFrame, *, as_of: date, plan: Plan | None = None) -> pl.LazyFrame:
    """Features as of D for every user in ``events`` (resolved events as known at T)."""
    plan = plan or compile_plan()
    events = events.select(input_columns(events, plan))
    users = events.select("user_id").unique()
    rows = prepare(events, plan, as_of)
    frame = users
    for kinds, aggregates in plan.passes.items():
        subset = rows.filter(pl.col("kind").is_in(list(kinds))) if kinds else rows
        grouped = subset.group_by("user_id").agg(
            [aggregate_expr(aggregate, kinds, as_of).alias(aggregate.key) for aggregate in aggregates]
        )
        frame = frame.join(grouped, on="user_id", how="left")
    frame = frame.with_columns(
        pl.col(a.key).fill_null(0) for a in plan.aggregates if a.op in ZERO_WHEN_EMPTY
    )
    if plan.contacts:
        frame = frame.join(contact_frame(rows, frame, plan.contacts), on="user_id", how="left")
    outputs = [
        _fill(output_expr(output.expr), output.fill_zero).cast(pl.Float64).alias(output.name)
        for output in plan.outputs
    ]
    return frame.select(pl.col("user_id"), *outputs).sort("user_id")


def input_columns(events: pl.LazyFrame, plan: Plan) -> list[str]:
    """The event columns the plan reads (select them before materialising resolved events)."""
    schema = events.collect_schema()
    return [*BASE_COLUMNS, *(name for name in sorted(plan.columns) if name in schema)]


def prepare(events: pl.LazyFrame, plan: Plan, as_of: date) -> pl.LazyFrame:
    """Events before D, the columns the plan reads, money as Float64, each row's age in days."""
    schema = events.collect_schema()
    wanted = [name for name in sorted(plan.columns) if name in schema]
    money = [name for name in wanted if isinstance(schema[name], pl.Decimal)]
    epoch_us = pl.col("event_time").dt.epoch("us")
    return (
        events.filter(pl.col("event_time") < as_of_instant(as_of))
        .select(*BASE_COLUMNS, *wanted)
        .with_columns(
            *(pl.col(name).cast(pl.Float64) for name in money),
            ((as_of_micros(as_of) - epoch_us) / MICROS_PER_DAY).alias(AGE),
            (epoch_us // MICROS_PER_DAY).alias("event_day"),
            (pl.col("event_time").dt.year().cast(pl.Int64) * 12
             + pl.col("event_time").dt.month().cast(pl.Int64)).alias("event_month"),
        )
    )


def aggregate_expr(aggregate: Aggregate, pass_kinds: Sequence[str], as_of: date) -> pl.Expr:
    """One conditional aggregate inside a ``group_by(user_id).agg``."""
    cond = _row_condition(aggregate, pass_kinds)
    op = aggregate.op
    if op == "count":
        return pl.len() if cond is None else cond.sum()
    if op in ("min_age", "max_age"):
        age = _when(cond, pl.col(AGE))
        return age.min() if op == "min_age" else age.max()
    assert aggregate.value is not None
    value = value_expr(aggregate.value, as_of_day=day_number(as_of), as_float=op != "distinct")
    if op == "latest":
        keep = value.is_not_null() if cond is None else cond & value.is_not_null()
        order = [pl.col("event_time").filter(keep), pl.col("event_id").filter(keep)]
        return value.filter(keep).sort_by(order).last()
    picked = _when(cond, value)
    if op == "distinct":
        return picked.drop_nulls().n_unique()
    return getattr(picked, op)()  # sum, mean, min, max, std


def value_expr(value: Value, *, as_of_day: int, as_float: bool) -> pl.Expr:
    column = pl.col(value.column)
    if value.mapping is not None:
        return column.replace_strict(dict(value.mapping), default=None, return_dtype=pl.Float64)
    if value.transform == "age_days":
        # Days from the date to D: D's day number minus the date's (days since 1970-01-01).
        return (pl.lit(as_of_day, pl.Int64) - column.cast(pl.Int32).cast(pl.Int64)).cast(pl.Float64)
    return column.cast(pl.Float64) if as_float else column


def _row_condition(aggregate: Aggregate, pass_kinds: Sequence[str]) -> pl.Expr | None:
    parts: list[pl.Expr] = []
    if aggregate.kinds and tuple(aggregate.kinds) != tuple(pass_kinds):
        parts.append(pl.col("kind").is_in(list(aggregate.kinds)))
    parts += [condition_expr(condition) for condition in aggregate.conditions]
    if aggregate.lag:
        parts.append(pl.col(AGE) > aggregate.lag)
    if aggregate.window is not None:
        parts.append(pl.col(AGE) <= aggregate.lag + aggregate.window)
    return pl.all_horizontal(parts) if len(parts) > 1 else (parts[0] if parts else None)


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


def _when(cond: pl.Expr | None, value: pl.Expr) -> pl.Expr:
    return value if cond is None else pl.when(cond).then(value)


def contact_frame(rows: pl.LazyFrame, users: pl.LazyFrame,
                  contacts: Sequence[ContactAggregate]) -> pl.LazyFrame:
    """The graph pass: each person's contacts as of D, flagged by the contact's own aggregates."""
    edges = (
        rows.filter(pl.col("kind") == "contact")
        .sort("event_time", "event_id")
        .group_by("user_id", "contact_user_id")
        .agg(pl.col("contact_action").last(), pl.col("relation").last())
        .filter((pl.col("contact_action") == "added")
                & (pl.col("contact_user_id") != pl.col("user_id")))
    )
    flags = sorted({contact.flag.key for contact in contacts if contact.flag is not None})
    if flags:
        flagged = users.select(pl.col("user_id").alias("contact_user_id"),
                               *(pl.col(key) for key in flags))
        edges = edges.join(flagged, on="contact_user_id", how="left")
    aggregates = [contact_expr(contact).alias(contact.key) for contact in contacts]
    return edges.group_by("user_id").agg(aggregates)


def contact_expr(contact: ContactAggregate) -> pl.Expr:
    edge = pl.all_horizontal([condition_expr(c).fill_null(False) for c in contact.conditions]) \
        if contact.conditions else pl.col("contact_user_id").is_not_null()
    if contact.flag is None:
        return edge.sum()
    hit = edge & (pl.col(contact.flag.key).fill_null(0) > 0)
    if contact.op == "count":
        return hit.sum()
    return pl.when(edge.sum() > 0).then(hit.sum() / edge.sum())


def output_expr(expr: Expr) -> pl.Expr:
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


def _fill(expr: pl.Expr, fill_zero: bool) -> pl.Expr:
    return expr.fill_null(0.0) if fill_zero else expr
