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

from config.feature_taxonomy import load_taxonomy
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


def feature_frame(events: pl.LazyFrame | pl.DataFrame, *, as_of: date,
                  plan: Plan | None = None, chunk_rows: int | None = None) -> pl.DataFrame:
    """Features as of D for every user in ``events`` (resolved events as known at T).

    With ``chunk_rows``, in-memory events with more rows are processed in chunks of
    users (by a hash of the user id), which bounds memory; the contact graph still
    sees every contact, through flags computed for all users first.
    """
    plan = plan or compile_plan()
    if not isinstance(events, pl.DataFrame) or not chunk_rows or events.height <= chunk_rows:
        return _features(events.lazy(), plan, as_of, flags=None).collect()
    chunks = -(-events.height // chunk_rows)
    flags = _contact_flags(events.lazy(), plan, as_of).collect()
    chunk = pl.col("user_id").hash() % chunks
    parts = [_features(events.lazy().filter(chunk == number), plan, as_of, flags=flags.lazy())
             .collect() for number in range(chunks)]
    return pl.concat(parts, how="vertical").sort("user_id")


def _features(events: pl.LazyFrame, plan: Plan, as_of: date,
              flags: pl.LazyFrame | None) -> pl.LazyFrame:
    """One grouped pass over every event, so every user gets a row (even one whose events
    all lie after D), computing the aggregates that read every kind over the events
    before D; then one pass per set of kinds over just those rows; then the contacts."""
    everything = prepare(events.select(input_columns(events, plan)), plan, as_of)
    frame = everything.group_by("user_id").agg(
        aggregate_expr(aggregate, (), as_of, before=True).alias(aggregate.key)
        for aggregate in plan.passes.get((), ())
    )
    for kinds, aggregates in plan.passes.items():
        if not kinds:
            continue
        subset = everything.filter(pl.col("kind").is_in(list(kinds)) & (pl.col(AGE) > 0))
        if any(aggregate.op == "latest" for aggregate in aggregates):
            subset = subset.sort("event_time", "event_id")   # groups keep this order
        grouped = subset.group_by("user_id").agg(
            aggregate_expr(aggregate, kinds, as_of).alias(aggregate.key) for aggregate in aggregates
        )
        frame = frame.join(grouped, on="user_id", how="left")
    frame = frame.with_columns(
        pl.col(a.key).fill_null(0) for a in plan.aggregates if a.op in ZERO_WHEN_EMPTY
    )
    if plan.contacts:
        contacts = everything.filter((pl.col("kind") == "contact") & (pl.col(AGE) > 0))
        graph = contact_frame(contacts, frame if flags is None else flags, plan.contacts)
        frame = frame.join(graph, on="user_id", how="left")
    outputs = [
        _fill(output_expr(output.expr), output.fill_zero).cast(pl.Float64).alias(output.name)
        for output in plan.outputs
    ]
    return frame.select(pl.col("user_id"), *outputs).sort("user_id")


def _contact_flags(events: pl.LazyFrame, plan: Plan, as_of: date) -> pl.LazyFrame:
    """The per-user aggregates that flag a contact, for every user (the graph's first pass)."""
    flags = sorted({c.flag for c in plan.contacts if c.flag is not None}, key=lambda a: a.key)
    everything = prepare(events.select(input_columns(events, plan)), plan, as_of)
    return everything.group_by("user_id").agg(
        aggregate_expr(flag, (), as_of, before=True).alias(flag.key) for flag in flags)


def input_columns(events: pl.LazyFrame, plan: Plan) -> list[str]:
    """The event columns the plan reads (select them before materialising resolved events)."""
    schema = events.collect_schema()
    return [*BASE_COLUMNS, *(name for name in sorted(plan.columns) if name in schema)]


def prepare(events: pl.LazyFrame, plan: Plan, as_of: date) -> pl.LazyFrame:
    """The columns the plan reads: money as Float64, kinds and categories as Enums (cheap
    to filter and count), and each row's age in days before D (positive: before D)."""
    schema = events.collect_schema()
    wanted = [name for name in sorted(plan.columns) if name in schema]
    money = [name for name in wanted if isinstance(schema[name], pl.Decimal)]
    strings = [name for name in ("kind", *wanted) if schema[name] == pl.String]
    epoch_us = pl.col("event_time").dt.epoch("us")
    return events.select(*BASE_COLUMNS, *wanted).with_columns(
        *enum_casts(strings),
        *(pl.col(name).cast(pl.Float64) for name in money),
        ((as_of_micros(as_of) - epoch_us) / MICROS_PER_DAY).alias(AGE),
        (epoch_us // MICROS_PER_DAY).alias("event_day"),
        (pl.col("event_time").dt.year().cast(pl.Int64) * 12
         + pl.col("event_time").dt.month().cast(pl.Int64)).alias("event_month"),
    )


def enum_casts(columns: Sequence[str]) -> list[pl.Expr]:
    """The kind and categorical columns among ``columns`` as Enums: a byte per row instead
    of a 16-byte string view (most of them are null), and cheap to compare and count."""
    taxonomy = load_taxonomy()
    values = {"kind": frozenset(taxonomy.kinds), **taxonomy.categories}
    return [pl.col(name).cast(pl.Enum(sorted(values[name]))) for name in columns
            if name in values]


def aggregate_expr(aggregate: Aggregate, pass_kinds: Sequence[str], as_of: date, *,
                   before: bool = False) -> pl.Expr:
    """One conditional aggregate inside a ``group_by(user_id).agg``; ``before`` adds the
    condition event_time < D (for a pass over rows not yet restricted to it). Rows of a
    pass with a ``latest`` aggregate come sorted by (event_time, event_id)."""
    cond = _row_condition(aggregate, pass_kinds, before=before)
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
        return value.filter(keep).last()
    picked = _when(cond, value)
    if op == "distinct":
        return picked.drop_nulls().n_unique()
    return getattr(picked, op)()  # sum, mean, min, max, std


def value_expr(value: Value, *, as_of_day: int, as_float: bool) -> pl.Expr:
    column = pl.col(value.column)
    if value.mapping is not None:
        return column.cast(pl.String).replace_strict(
            dict(value.mapping), default=None, return_dtype=pl.Float64)
    if value.transform == "age_days":
        # Days from the date to D: D's day number minus the date's (days since 1970-01-01).
        return (pl.lit(as_of_day, pl.Int64) - column.cast(pl.Int32).cast(pl.Int64)).cast(pl.Float64)
    return column.cast(pl.Float64) if as_float else column


def _row_condition(aggregate: Aggregate, pass_kinds: Sequence[str], *,
                   before: bool = False) -> pl.Expr | None:
    parts: list[pl.Expr] = [pl.col(AGE) > 0] if before else []
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
