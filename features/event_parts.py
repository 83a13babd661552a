"""What a feature plan reads of the events: the columns of each kind, and of every row.

Why: a feature pass reads the rows of one or two kinds and a handful of their
columns, so the Polars engine hands each pass only its kinds' rows with only the
columns its aggregates read (money as exact decimals, categories as Enums), and the
aggregates over every kind only what they need (the *spine*: each row's user, its
time, and what those aggregates read). Most of an event's columns are null for most
kinds; a lake file stored kind by kind (:class:`KindRuns`) lets each kind's own
columns be read from its row groups only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache

import numpy as np
import polars as pl

from config.feature_taxonomy import load_taxonomy
from features.plan import Aggregate, Plan

KEY = "_key"
CHECK = "_check"
AGE = "_age_days"
KIND = "kind"
MICROS_PER_DAY = 86_400_000_000
SEEDS = (0x5EED_0001, 0x5EED_0002)
"""Seeds of the key hash and of the check hash."""
LATEST_ORDER = ("event_time", "event_id")
CONTACT_COLUMNS = ("user_id", "contact_user_id", "contact_action", "relation", *LATEST_ORDER)


def as_of_micros(as_of: date) -> int:
    """Microseconds from 1970-01-01 UTC to midnight UTC starting D."""
    return (as_of - date(1970, 1, 1)).days * MICROS_PER_DAY


@cache
def category_enums() -> dict[str, pl.Enum]:
    """The kind and categorical columns of the lake as the Enums the engine reads them
    as: a byte per row instead of a 16-byte string view, cheap to compare and count."""
    taxonomy = load_taxonomy()
    return {name: pl.Enum(sorted(values))
            for name, values in {"kind": taxonomy.kinds, **taxonomy.categories}.items()}


def derived_columns(events: pl.DataFrame | None = None) -> dict[str, pl.Expr]:
    """The columns every engine derives from ``event_time`` (see config/feature_taxonomy.py).

    Given the ``events`` they are for, months are looked up by day in a table when every
    event falls between 1900 and 2200: six times faster than the calendar arithmetic,
    which a feature build would otherwise do for every event of every piece.
    """
    epoch_us = pl.col("event_time").dt.epoch("us")
    day = epoch_us // MICROS_PER_DAY
    month = (pl.col("event_time").dt.year().cast(pl.Int64) * 12
             + pl.col("event_time").dt.month().cast(pl.Int64))
    if events is not None and events.height and _in_month_table(events.get_column("event_time")):
        month = pl.lit(_month_table()).gather(day - MONTH_TABLE_DAYS[0])
    return {"event_day": day, "event_month": month}


MONTH_TABLE_DAYS = ((date(1900, 1, 1) - date(1970, 1, 1)).days,
                    (date(2200, 1, 1) - date(1970, 1, 1)).days)
"""The days (since 1970-01-01) the month table covers: [first, last)."""


@cache
def _month_table() -> pl.Series:
    """year * 12 + month of each day of :data:`MONTH_TABLE_DAYS`."""
    days = np.arange(*MONTH_TABLE_DAYS, dtype=np.int64)
    months = days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    return pl.Series("event_month", months + 1970 * 12 + 1)


def _in_month_table(times: pl.Series) -> bool:
    first, last = (datetime(year, 1, 1, tzinfo=UTC) for year in (1900, 2200))
    low, high = times.min(), times.max()
    return low is not None and high is not None and first <= low and high < last  # type: ignore[operator]


def age_expr(as_of: date) -> pl.Expr:
    """Days from the event to D (positive: before D), as a float: windows compare against it."""
    return ((as_of_micros(as_of) - pl.col("event_time").dt.epoch("us")) / MICROS_PER_DAY).alias(AGE)


def aggregate_columns(aggregate: Aggregate) -> set[str]:
    """The event columns one aggregate reads (derived ones included, ``kind`` excluded)."""
    columns = {condition.column for condition in aggregate.conditions}
    if aggregate.value is not None:
        columns.add(aggregate.value.column)
    if aggregate.op == "latest":
        columns.update(LATEST_ORDER)
    return columns


def needs_kind(aggregate: Aggregate, pass_kinds: Sequence[str]) -> bool:
    """Whether the aggregate tells the kinds of its pass's rows apart."""
    narrower = bool(aggregate.kinds) and tuple(aggregate.kinds) != tuple(pass_kinds)
    return narrower or any(condition.kinds for condition in aggregate.conditions)


@dataclass(frozen=True)
class Layout:
    """What each part keeps: lake or derived columns per kind, and the spine's extra columns."""

    kinds: dict[str, frozenset[str]]
    spine: frozenset[str]
    spine_kind: bool

    @classmethod
    def of(cls, plan: Plan) -> Layout:
        kinds: dict[str, set[str]] = {}
        for pass_kinds, aggregates in plan.passes.items():
            columns = set().union(*(aggregate_columns(a) for a in aggregates))
            for kind in pass_kinds:
                kinds.setdefault(kind, set()).update(columns)
        if plan.contacts:
            contact = kinds.setdefault("contact", set())
            contact.update(CONTACT_COLUMNS)
            for aggregate in plan.contacts:
                contact.update(condition.column for condition in aggregate.conditions)
        everything = plan.passes.get((), ())
        spine = set().union(*(aggregate_columns(a) for a in everything)) if everything else set()
        return cls(kinds={kind: frozenset(columns) for kind, columns in kinds.items()},
                   spine=frozenset(spine) - {"user_id"},
                   spine_kind=any(needs_kind(a, ()) for a in everything))


@dataclass(frozen=True)
class KindRuns:
    """A piece of a lake file stored kind by kind (:mod:`features.lake_clusters`): the
    columns every row has (``base``), each kind's row range in it, and, for each kind the
    plan reads, that kind's own columns over its range (read from its row groups only)."""

    base: pl.DataFrame
    ranges: dict[str, tuple[int, int]]
    own: dict[str, pl.DataFrame]

    def of_kind(self, kind: str, base: pl.DataFrame | None = None) -> pl.DataFrame:
        """The kind's rows: ``base`` (default: the piece's) over its range, and its own
        columns."""
        start, stop = self.ranges.get(kind, (0, 0))
        rows = (self.base if base is None else base).slice(start, stop - start)
        own = self.own.get(kind)
        return rows if own is None else rows.hstack(own.get_columns())

    def gather(self, mask: pl.Series, schema: pl.Schema) -> pl.DataFrame:
        """The rows in ``mask`` with every column of ``schema``, null where their kind's
        columns were not read: for the few rows a correction touches."""
        frames = []
        for kind, (start, stop) in self.ranges.items():
            picked = mask.slice(start, stop - start)
            if picked.any():
                frames.append(self.of_kind(kind).filter(picked))
        rows = pl.concat(frames, how="diagonal") if frames else self.base.clear()
        missing = [pl.lit(None, dtype).alias(name) for name, dtype in schema.items()
                   if name not in rows.columns]
        return rows.with_columns(missing).select(schema.names())
