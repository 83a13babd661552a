"""The plan rendered for Polars: the embedded engine.

Input is resolved events (the lake as known at T, see
:func:`features.lake.scan_events`); output is one row per user seen in them, one
Float64 column per feature. The events are first cut into parts
(:mod:`features.event_parts`): each kind's rows before D with just the columns
its aggregates read, and a spine of every row. Every user gets a number, 0 to
n - 1 in user_id order, from one pass over the spine's keys; each kind's rows know
their spine row, hence their user's number. Then one pass per set of kinds: Polars
evaluates each aggregate's condition and value over the pass's rows, and a loop
over plain arrays reduces them per user (:mod:`features.dense_pass`). A last pass
over the contact graph, and the features are column expressions over the
aggregates (:mod:`features.polars_exprs`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np
import polars as pl

from config.feature_taxonomy import load_taxonomy
from features.dense_pass import PassRows, reduce_pass
from features.dense_reduce import dense_keys, first_rows
from features.event_parts import (
    CHECK,
    KEY,
    LATEST_ORDER,
    MICROS_PER_DAY,
    POS,
    EventParts,
    aggregate_columns,
    as_of_micros,
    needs_kind,
)
from features.plan import Aggregate, ContactAggregate, Plan, compile_plan
from features.polars_exprs import condition_expr, output_expr

__all__ = ["MICROS_PER_DAY", "as_of_instant", "as_of_micros", "feature_frame", "features_of_parts"]

BASE_COLUMNS = ("user_id", "kind", "event_id", "event_time")
CONTACT_KEY = "_contact_key"
CONTACT_NAME = "_contact_name"


class KeyCollision(RuntimeError):
    """Two user ids share a key hash: the computation is redone with the ids as keys."""


def as_of_instant(as_of: date) -> datetime:
    """The as-of date D as an instant: midnight UTC starting that day."""
    return datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC)


def feature_frame(events: pl.LazyFrame | pl.DataFrame, *, as_of: date,
                  plan: Plan | None = None, chunk_rows: int | None = None) -> pl.DataFrame:
    """Features as of D for every user in ``events`` (resolved events as known at T).

    With ``chunk_rows``, the events are cut into parts that many rows at a time,
    which bounds the memory of the columns no part keeps.
    """
    plan = plan or compile_plan()
    frame = events.lazy().select(input_columns(events.lazy(), plan)).collect()
    step = chunk_rows or max(frame.height, 1)
    for hashed in (True, False):
        parts = EventParts(plan, as_of, hashed=hashed)
        for offset in range(0, max(frame.height, 1), step):
            parts.add(frame.slice(offset, step))
        try:
            return features_of_parts(parts, plan)
        except KeyCollision:
            continue
    raise AssertionError("string keys cannot collide")


def features_of_parts(parts: EventParts, plan: Plan) -> pl.DataFrame:
    """The features of every user in ``parts``, sorted by user_id.

    Raises :class:`KeyCollision` when two users share a hashed key (then build the
    parts again with ``hashed=False``).
    """
    users = _Users.of(parts)
    columns: dict[str, np.ndarray] = {}
    for kinds, aggregates in plan.passes.items():
        columns |= reduce_pass(users.pass_rows(parts, kinds, aggregates), aggregates, parts.as_of)
    frame = pl.DataFrame([users.names, *(_column(key, values) for key, values in columns.items())])
    if plan.contacts:
        contacts = contact_frame(parts.rows(["contact"]), users.frame(frame), plan.contacts, parts)
        aligned = users.keys.to_frame().join(contacts, on=KEY, how="left", maintain_order="left")
        frame = frame.hstack(aligned.drop(KEY).get_columns())
    outputs = [
        _fill(output_expr(output.expr), output.fill_zero).cast(pl.Float64).alias(output.name)
        for output in plan.outputs
    ]
    return frame.select(pl.col("user_id"), *outputs)


@dataclass(frozen=True)
class _Users:
    """Every user in the parts, numbered 0 .. n - 1 in user_id order: ``idx`` is each spine
    row's number, ``names`` and ``keys`` each number's user_id and key."""

    idx: np.ndarray
    names: pl.Series
    keys: pl.Series

    @classmethod
    def of(cls, parts: EventParts) -> _Users:
        spine = parts.spine().select(KEY, "user_id", *([CHECK] if parts.hashed else [])).collect()
        keys = spine.get_column(KEY)
        if parts.hashed:
            idx, first, collided = dense_keys(keys.to_numpy(), spine.get_column(CHECK).to_numpy())
            if collided:
                raise KeyCollision("two user ids share a key hash")
        else:
            idx = keys.rank("dense").to_numpy().astype(np.int32) - 1
            first = first_rows(idx, int(idx.max()) + 1 if len(idx) else 0)
        names = spine.get_column("user_id").gather(first)
        order = names.arg_sort().to_numpy()
        number = np.empty(len(order), dtype=np.int32)
        number[order] = np.arange(len(order), dtype=np.int32)
        return cls(idx=number[idx], names=names.gather(order).alias("user_id"),
                   keys=keys.gather(first[order]).alias(KEY))

    @property
    def count(self) -> int:
        return len(self.names)

    def pass_rows(self, parts: EventParts, kinds: tuple[str, ...],
                  aggregates: Sequence[Aggregate]) -> PassRows:
        """The rows a pass reads: the spine for the aggregates over every kind."""
        if not kinds:
            return PassRows(parts.spine().collect(), self.idx, self.count, kinds, before=True)
        with_kind = any(needs_kind(aggregate, kinds) for aggregate in aggregates)
        columns = set().union(*(aggregate_columns(aggregate) for aggregate in aggregates))
        frame = parts.rows(kinds, columns, with_kind=with_kind).collect()
        return PassRows(frame, self.idx[frame.get_column(POS).to_numpy()], self.count, kinds,
                        before=False)

    def frame(self, aggregates: pl.DataFrame) -> pl.DataFrame:
        """The users' keys, names and aggregates, for the contact graph's flags."""
        return aggregates.with_columns(self.keys)


def _column(key: str, values: np.ndarray) -> pl.Series:
    """An aggregate's array as a column, NaN (no rows) as null."""
    return pl.Series(key, values, nan_to_null=values.dtype.kind == "f")


def input_columns(events: pl.LazyFrame, plan: Plan) -> list[str]:
    """The event columns the plan reads (select them before materialising resolved events)."""
    schema = events.collect_schema()
    return [*BASE_COLUMNS, *(name for name in sorted(plan.columns) if name in schema)]


def enum_casts(columns: Sequence[str]) -> list[pl.Expr]:
    """The kind and categorical columns among ``columns`` as Enums: a byte per row instead
    of a 16-byte string view (most of them are null), and cheap to compare and count."""
    taxonomy = load_taxonomy()
    values = {"kind": frozenset(taxonomy.kinds), **taxonomy.categories}
    return [pl.col(name).cast(pl.Enum(sorted(values[name]))) for name in columns
            if name in values]


def contact_frame(rows: pl.LazyFrame, users: pl.DataFrame,
                  contacts: Sequence[ContactAggregate], parts: EventParts) -> pl.DataFrame:
    """The graph pass: each person's contacts as of D (their latest action, by event time
    then id, is 'added'), flagged by the contact's own aggregates from ``users``."""
    latest = [pl.col(name).sort_by(*LATEST_ORDER).last() for name in ("contact_action", "relation")]
    edges = (
        rows.group_by(KEY, "contact_user_id").agg(pl.col("user_id").first(), *latest)
        .filter((pl.col("contact_action") == "added")
                & (pl.col("contact_user_id") != pl.col("user_id")))
    )
    flags = sorted({contact.flag.key for contact in contacts if contact.flag is not None})
    if flags:
        # A key names one user among ``users``; a contact is that user only if the names
        # agree too (a contact who is not a user could share a hash with one).
        flagged = users.lazy().select(pl.col(KEY).alias(CONTACT_KEY),
                                      pl.col("user_id").alias(CONTACT_NAME), *flags)
        same = pl.col(CONTACT_NAME) == pl.col("contact_user_id")
        edges = (edges.with_columns(parts.key_expr("contact_user_id").alias(CONTACT_KEY))
                 .join(flagged, on=CONTACT_KEY, how="left")
                 .with_columns(pl.when(same).then(pl.col(flag)).alias(flag) for flag in flags))
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
