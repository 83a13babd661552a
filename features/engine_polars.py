"""The plan rendered for Polars: the embedded engine.

Input is resolved events (the lake as known at T, see
:func:`features.lake.scan_events`), in any number of pieces; output is one row per
user seen in them, one Float64 column per feature. Each piece is reduced as it comes
(:mod:`features.feature_stream`): its users numbered (by the lake, when it can), and
one pass per set of kinds in which Polars evaluates each aggregate's condition and
value over the piece's rows and loops over plain arrays add them into per-user slots
(:mod:`features.dense_pass`). A last pass over the contact graph, and the features
are column expressions over the aggregates (:mod:`features.polars_exprs`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any

import polars as pl

from features.event_parts import (
    KEY,
    LATEST_ORDER,
    MICROS_PER_DAY,
    as_of_micros,
    category_enums,
)
from features.feature_stream import PRESENT, FeatureStream
from features.lake_users import LakeUsers, UnknownUser
from features.plan import ContactAggregate, Plan, compile_plan
from features.polars_exprs import condition_expr, output_expr
from features.user_numbers import KeyCollision

__all__ = ["MICROS_PER_DAY", "KeyCollision", "as_of_instant", "as_of_micros", "feature_frame",
           "features_of_stream", "stream_features"]

BASE_COLUMNS = ("user_id", "kind", "event_id", "event_time")
logger = logging.getLogger(__name__)


def as_of_instant(as_of: date) -> datetime:
    """The as-of date D as an instant: midnight UTC starting that day."""
    return datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC)


def feature_frame(events: pl.LazyFrame | pl.DataFrame, *, as_of: date,
                  plan: Plan | None = None, chunk_rows: int | None = None) -> pl.DataFrame:
    """Features as of D for every user in ``events`` (resolved events as known at T).

    With ``chunk_rows``, the events are reduced that many rows at a time (what the
    feature build does with the lake's pieces).
    """
    plan = plan or compile_plan()
    frame = events.lazy().select(input_columns(events.lazy(), plan)).collect()
    step = chunk_rows or max(frame.height, 1)

    def feed(stream: FeatureStream) -> None:
        for offset in range(0, max(frame.height, 1), step):
            stream.add(stream.prepare(frame.slice(offset, step)))

    return stream_features(plan, as_of, feed).collect()


def stream_features(plan: Plan, as_of: date, feed: Callable[[FeatureStream], None], *,
                    lake_users: LakeUsers | None = None) -> pl.LazyFrame:
    """The features of what ``feed`` adds to a stream: users numbered by the lake when
    ``lake_users`` is given, else by a hash of their ids; fed again, numbered by the ids
    themselves, should the lake's numbers miss a user or two ids share a hash."""
    numberings: list[dict[str, Any]] = [{"lake_users": lake_users}] if lake_users else []
    numberings += [{"hashed": True}, {"hashed": False}]
    for numbering in numberings:
        with FeatureStream(plan, as_of, **numbering) as stream:
            try:
                feed(stream)
                return features_of_stream(stream)
            except (KeyCollision, UnknownUser) as exc:
                logger.warning("%s: computing the features again, numbering users otherwise",
                               exc)
    raise AssertionError("string keys cannot collide")


def features_of_stream(stream: FeatureStream) -> pl.LazyFrame:
    """The features of every user added to ``stream``, sorted by user_id: a lazy frame
    over the stream's slots, so that writing it streams the features out a slice of
    users at a time instead of holding them all (a gigabyte for a million users)."""
    plan = stream.plan
    aggregates = stream.aggregates()
    frame = aggregates.lazy().with_columns(pl.col(pl.Float64).fill_nan(None))
    if plan.contacts:
        contacts = contact_frame(stream.contact_rows(), frame, plan.contacts)
        frame = frame.join(contacts.lazy(), on=KEY, how="left", maintain_order="left")
    if PRESENT in aggregates.columns:
        frame = frame.filter(pl.col(PRESENT))
    outputs = [
        _fill(output_expr(output.expr), output.fill_zero).cast(pl.Float64).alias(output.name)
        for output in plan.outputs
    ]
    return frame.select(pl.col("user_id"), *outputs)


def input_columns(events: pl.LazyFrame, plan: Plan) -> list[str]:
    """The event columns the plan reads (select them before materialising resolved events)."""
    schema = events.collect_schema()
    return [*BASE_COLUMNS, *(name for name in sorted(plan.columns) if name in schema)]


def enum_casts(columns: Sequence[str]) -> list[pl.Expr]:
    """The kind and categorical columns among ``columns`` as Enums (most of them are null)."""
    enums = category_enums()
    return [pl.col(name).cast(enums[name]) for name in columns if name in enums]


def contact_frame(rows: pl.LazyFrame, users: pl.LazyFrame,
                  contacts: Sequence[ContactAggregate]) -> pl.DataFrame:
    """The graph pass: each person's contacts as of D (their latest action, by event time
    then id, is 'added'), flagged by the contact's own aggregates from ``users`` (found by
    id: a contact who is not a user has no flags)."""
    latest = [pl.col(name).sort_by(*LATEST_ORDER).last() for name in ("contact_action", "relation")]
    edges = (
        rows.group_by(KEY, "contact_user_id").agg(pl.col("user_id").first(), *latest)
        .filter((pl.col("contact_action") == "added")
                & (pl.col("contact_user_id") != pl.col("user_id")))
    )
    flags = sorted({contact.flag.key for contact in contacts if contact.flag is not None})
    if flags:
        flagged = users.select(pl.col("user_id").alias("contact_user_id"), *flags)
        edges = edges.join(flagged, on="contact_user_id", how="left")
    aggregates = [contact_expr(contact).alias(contact.key) for contact in contacts]
    return edges.group_by(KEY).agg(aggregates).collect()


def contact_expr(contact: ContactAggregate) -> pl.Expr:
    edge = pl.all_horizontal([condition_expr(c).fill_null(False) for c in contact.conditions]) \
        if contact.conditions else pl.col("contact_user_id").is_not_null()
    if contact.flag is None:
        return edge.sum()
    hit = edge & (pl.col(contact.flag.key).fill_null(0) > 0)
    if contact.op == "count":
        return hit.sum()
    return pl.when(edge.sum() > 0).then(hit.sum() / edge.sum())


def _fill(expr: pl.Expr, fill_zero: bool) -> pl.Expr:
    return expr.fill_null(0.0) if fill_zero else expr
