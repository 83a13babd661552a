"""The plan rendered as PySpark column expressions: the engine for a cluster.

Everything a feature means comes from features/plan.py; this module only says
how each plan node is written in Spark, mirroring features/engine_polars.py
node for node, so both give the same values (tested to 1e-9). It also
re-implements the lake's point-in-time resolution on the lake's Parquet files,
so a cluster needs nothing but those files.

PySpark is an optional dependency (``pip install altcredit[spark]``); it is
imported only when this module is.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path

import polars as pl
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from config.settings import Settings
from features.engine_polars import MICROS_PER_DAY, as_of_micros
from features.lake import lake_files
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

AGE = "_age_days"
SET_OPS = frozenset({"distinct", "latest"})
BASE_COLUMNS = ("user_id", "kind", "event_id", "event_time")


def spark_session(master: str = "local[2]", *, shuffle_partitions: int = 8) -> SparkSession:
    """A Spark session in UTC (day and month boundaries are UTC, as in Polars)."""
    # py4j logs at INFO from finalizers, even after logging's streams are closed at exit.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    return (
        SparkSession.builder.master(master)
        .appName("altcredit-features")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )


def spark_features(settings: Settings, *, as_of: date, as_known_at: datetime,
                   watermark: datetime | None, plan: Plan | None = None) -> pl.DataFrame:
    """Features as of D from the lake's Parquet files, computed by Spark, as a Polars frame."""
    spark = spark_session(settings.features_spark_master,
                          shuffle_partitions=settings.features_spark_shuffle_partitions)
    events = read_events(spark, lake_files(settings), as_known_at=as_known_at,
                         watermark=watermark)
    frame = pl.from_arrow(feature_frame(events, as_of=as_of, plan=plan).toArrow())
    assert isinstance(frame, pl.DataFrame)
    return frame.sort("user_id")


def read_events(spark: SparkSession, paths: Sequence[Path], *, as_known_at: datetime,
                watermark: datetime | None) -> DataFrame:
    """The lake as known at T (with ingest watermark W): the point-in-time rule, in Spark.

    Rows with known_at <= T and ingested_at <= W; for each (source, corrects or
    event_id) the row with the latest known_at wins (ties: the latest ingested_at,
    then a correction over the original, then the larger event_id, exactly as
    :func:`features.lake.resolve`); a winning void drops the event.
    """
    rows = spark.read.parquet(*[str(path) for path in paths])
    rows = rows.where(F.col("known_at") <= F.lit(as_known_at))
    if watermark is not None:
        rows = rows.where(F.col("ingested_at") <= F.lit(watermark))
    key = F.coalesce(F.col("corrects"), F.col("event_id"))
    latest = Window.partitionBy(F.col("source"), key).orderBy(
        F.col("known_at").desc(), F.col("ingested_at").desc(),
        F.col("corrects").isNotNull().desc(), F.col("event_id").desc())
    return (
        rows.withColumn("_rank", F.row_number().over(latest))
        .where((F.col("_rank") == 1) & ~F.coalesce(F.col("voided"), F.lit(False)))
        .drop("_rank")
    )


def feature_frame(events: DataFrame, *, as_of: date, plan: Plan | None = None) -> DataFrame:
    """Features as of D for every user in ``events``; the same values as the Polars engine.

    One grouped pass over every event (each aggregate names its kinds and keeps only
    rows before D), so every user gets a row without a join, and Spark generates the
    whole aggregation as one stage; then the contact graph; then the outputs. Rows
    come in no particular order (sort after collecting, never on the cluster).
    """
    plan = plan or compile_plan()
    rows = prepare(events, plan, as_of)
    simple = [a for a in plan.aggregates if a.op not in SET_OPS]
    frame = rows.groupBy("user_id").agg(
        *[aggregate_expr(aggregate, as_of).alias(aggregate.key) for aggregate in simple])
    sets = [a for a in plan.aggregates if a.op in SET_OPS]
    if sets:
        frame = frame.join(_set_aggregates(rows, sets, as_of), on="user_id", how="left")
    if plan.contacts:
        before = rows.where(F.col(AGE) > F.lit(0.0))
        frame = frame.join(contact_frame(before, frame, plan.contacts), on="user_id", how="left")
    zero_when_empty = {a.key for a in plan.aggregates if a.op in ZERO_WHEN_EMPTY}
    outputs = [output_expr(output.expr, output.fill_zero, zero_when_empty).alias(output.name)
               for output in plan.outputs]
    return frame.select(F.col("user_id"), *outputs)


def _set_aggregates(rows: DataFrame, aggregates: list[Aggregate], as_of: date) -> DataFrame:
    """Distinct counts and latest values, apart: their buffers (a set, a struct) would turn
    the whole aggregation into a slow object or sort aggregate. Only their kinds' rows."""
    kinds = sorted({kind for a in aggregates for kind in a.kinds})
    every_kind = any(not a.kinds for a in aggregates)
    subset = rows if every_kind else rows.where(F.col("kind").isin(kinds))
    return subset.groupBy("user_id").agg(
        *[aggregate_expr(aggregate, as_of).alias(aggregate.key) for aggregate in aggregates])


def prepare(events: DataFrame, plan: Plan, as_of: date) -> DataFrame:
    """The columns the plan reads, money as double, each row's age in days before D."""
    present = dict(events.dtypes)
    wanted = [name for name in sorted(plan.columns) if name in present]
    epoch_us = F.unix_micros(F.col("event_time"))
    columns = [F.col(name) for name in BASE_COLUMNS]
    for name in wanted:
        is_money = present[name].startswith("decimal")
        columns.append(F.col(name).cast("double").alias(name) if is_money else F.col(name))
    return events.select(
        *columns,
        ((F.lit(as_of_micros(as_of)) - epoch_us) / F.lit(float(MICROS_PER_DAY))).alias(AGE),
        F.expr(f"unix_micros(event_time) div {MICROS_PER_DAY}").alias("event_day"),
        (F.year("event_time").cast("long") * 12 + F.month("event_time").cast("long"))
        .alias("event_month"),
    )


def aggregate_expr(aggregate: Aggregate, as_of: date) -> Column:
    """One conditional aggregate, rendered as Spark SQL text (one JVM call per aggregate:
    building thousands of small Column objects over py4j costs seconds)."""
    return F.expr(aggregate_sql(aggregate, as_of))


def aggregate_sql(aggregate: Aggregate, as_of: date) -> str:
    cond = _row_condition(aggregate)
    op = aggregate.op
    if op == "count":
        return f"count(CASE WHEN {cond} THEN 1 END)"
    if op in ("min_age", "max_age"):
        return f"{op[:3]}(CASE WHEN {cond} THEN {AGE} END)"
    assert aggregate.value is not None
    value = value_sql(aggregate.value, as_of=as_of, as_float=op != "distinct")
    if op == "latest":
        keep = f"({value}) IS NOT NULL AND {cond}"
        return (f"max(CASE WHEN {keep} THEN named_struct('t', event_time, 'i', event_id, "
                f"'v', {value}) END).v")
    picked = f"CASE WHEN {cond} THEN {value} END"
    if op == "distinct":
        # Not count(DISTINCT ...): several of those make Spark expand every row once per
        # distinct aggregate. A set per user is exact and keeps one aggregation pass.
        return f"size(collect_set({picked}))"
    functions = {"sum": "sum", "mean": "avg", "min": "min", "max": "max", "std": "stddev_samp"}
    return f"{functions[op]}({picked})"


def value_sql(value: Value, *, as_of: date, as_float: bool) -> str:
    column = _name(value.column)
    if value.mapping is not None:
        cases = " ".join(f"WHEN {column} = {_literal(key)} THEN CAST({float(number)!r} AS DOUBLE)"
                         for key, number in value.mapping)
        return f"CASE {cases} END"
    if value.transform == "age_days":
        return f"CAST(datediff(DATE'{as_of.isoformat()}', {column}) AS DOUBLE)"
    return f"CAST({column} AS DOUBLE)" if as_float else column


def _row_condition(aggregate: Aggregate) -> str:
    """Kinds, filters and window; every aggregate also keeps only events before D (age > 0),
    since the one aggregation reads every event (so that every user gets a row)."""
    parts: list[str] = []
    if aggregate.kinds:
        parts.append(f"kind IN ({_literals(aggregate.kinds)})")
    parts += [condition_sql(condition) for condition in aggregate.conditions]
    parts.append(f"{AGE} > CAST({float(aggregate.lag)!r} AS DOUBLE)")   # event_time < D
    if aggregate.window is not None:
        parts.append(f"{AGE} <= CAST({float(aggregate.lag + aggregate.window)!r} AS DOUBLE)")
    return " AND ".join(f"({part})" for part in parts)


def condition_sql(condition: Cond) -> str:
    column = _name(condition.column)
    value = condition.value
    operators = {"eq": "=", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
    if condition.op in operators:
        predicate = f"{column} {operators[condition.op]} {_literal(value)}"
    elif condition.op in ("in", "not_in"):
        negate = "NOT " if condition.op == "not_in" else ""
        predicate = f"{column} {negate}IN ({_literals(value)})"  # type: ignore[arg-type]
    else:
        predicate = f"{column} IS {'NOT ' if condition.op == 'not_null' else ''}NULL"
    if condition.kinds:
        predicate = f"NOT kind IN ({_literals(condition.kinds)}) OR ({predicate})"
    return f"({predicate})"


def _name(column: str) -> str:
    return f"`{column}`"


def _literal(value: object) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"CAST({value!r} AS DOUBLE)"
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def _literals(values: Sequence[object]) -> str:
    return ", ".join(_literal(value) for value in values)


def contact_frame(rows: DataFrame, users: DataFrame,
                  contacts: Sequence[ContactAggregate]) -> DataFrame:
    """The graph pass, as in the Polars engine: contacts as of D, flagged by their aggregates."""
    latest = F.max(F.struct("event_time", "event_id", "contact_action", "relation")).alias("last")
    edges = (
        rows.where(F.col("kind") == "contact")
        .groupBy("user_id", "contact_user_id").agg(latest)
        .select("user_id", "contact_user_id", F.col("last.contact_action").alias("contact_action"),
                F.col("last.relation").alias("relation"))
        .where((F.col("contact_action") == "added") & (F.col("contact_user_id") != F.col("user_id")))
    )
    flags = sorted({contact.flag.key for contact in contacts if contact.flag is not None})
    if flags:
        flagged = users.select(F.col("user_id").alias("contact_user_id"), *flags)
        edges = edges.join(flagged, on="contact_user_id", how="left")
    return edges.groupBy("user_id").agg(
        *[contact_expr(contact).alias(contact.key) for contact in contacts])


def contact_expr(contact: ContactAggregate) -> Column:
    edge = " AND ".join(f"coalesce({condition_sql(c)}, FALSE)" for c in contact.conditions) or "TRUE"
    edges = f"sum(CASE WHEN {edge} THEN 1 ELSE 0 END)"
    if contact.flag is None:
        return F.expr(edges)
    hit = f"({edge}) AND coalesce({contact.flag.key}, 0) > 0"
    hits = f"sum(CASE WHEN {hit} THEN 1 ELSE 0 END)"
    if contact.op == "count":
        return F.expr(hits)
    return F.expr(f"CASE WHEN {edges} > 0 THEN {hits} / {edges} END")


def output_sql(expr: Expr, zero_when_empty: set[str]) -> str:
    if isinstance(expr, Ref):
        if expr.key in zero_when_empty:
            return f"CAST(coalesce({expr.key}, 0) AS DOUBLE)"
        return f"CAST({expr.key} AS DOUBLE)"
    if isinstance(expr, Ratio):
        denominator = output_sql(expr.denominator, zero_when_empty)
        numerator = output_sql(expr.numerator, zero_when_empty)
        return f"CASE WHEN {denominator} != 0 THEN {numerator} / {denominator} END"
    if isinstance(expr, Diff):
        left, right = (output_sql(e, zero_when_empty) for e in (expr.left, expr.right))
        return f"({left} - {right})"
    if isinstance(expr, Scale):
        return f"({output_sql(expr.operand, zero_when_empty)} * CAST({expr.factor!r} AS DOUBLE))"
    raise TypeError(f"unknown plan expression {expr!r}")


def output_expr(expr: Expr, fill_zero: bool, zero_when_empty: set[str]) -> Column:
    sql = output_sql(expr, zero_when_empty)
    return F.expr(f"CAST(coalesce({sql}, 0.0) AS DOUBLE)" if fill_zero else f"CAST({sql} AS DOUBLE)")
