"""Resolved events cut to what a feature plan reads: a spine of every row, one frame per kind.

Why: a feature pass reads the rows of one or two kinds and a handful of their
columns, so the Polars engine keeps, for each kind, only that kind's rows before
the as-of date D with only the columns its aggregates read (money as exact decimals,
categories as Enums), and for all rows together only what every user needs to
get a row (the *spine*: each row's user, its time, and what the plan's
all-kinds aggregates read). Most of an event's columns are null for most kinds;
nothing null-for-this-kind is ever copied.

Users are keyed by a 64-bit hash of ``user_id`` (``KEY``): grouping and joining
on it costs a fraction of doing so on the string. A second, independent hash
(``CHECK``) travels in the spine; :func:`features.engine_polars` verifies that
every key holds one ``CHECK`` value, and on a collision (about one chance in
10^7 for a million users) the whole computation is redone with the string
itself as the key (``hashed=False``), so a collision can never merge two
people. Events may be added in pieces (file by file), which bounds the memory
the unread columns of a file would otherwise take. Each kind's row carries its
position in the spine (``POS``), so once the spine's users are numbered a kind's
rows find their user's number by position, with no second lookup by key.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

import polars as pl

from config.feature_taxonomy import load_taxonomy
from features.plan import Aggregate, Plan

KEY = "_key"
CHECK = "_check"
POS = "_pos"
"""A kind row's position in the spine (which row of every row added it is)."""
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


def derived_columns() -> dict[str, pl.Expr]:
    """The columns every engine derives from ``event_time`` (see config/feature_taxonomy.py)."""
    epoch_us = pl.col("event_time").dt.epoch("us")
    return {
        "event_day": epoch_us // MICROS_PER_DAY,
        "event_month": (pl.col("event_time").dt.year().cast(pl.Int64) * 12
                        + pl.col("event_time").dt.month().cast(pl.Int64)),
    }


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


@dataclass(frozen=True)
class Cut:
    """One piece of events cut into parts: its spine rows and its rows of each kind."""

    spine: pl.DataFrame
    kinds: dict[str, pl.DataFrame]


class EventParts:
    """Resolved events, added in any number of pieces, kept as the plan's parts.

    ``hashed=False`` keys users by ``user_id`` itself (the fallback after a hash
    collision, and a reference for tests).
    """

    def __init__(self, plan: Plan, as_of: date, *, hashed: bool = True) -> None:
        self.layout = Layout.of(plan)
        self.as_of = as_of
        self.hashed = hashed
        self._spine: list[pl.DataFrame] = []
        self._offsets: list[int] = []
        self._spine_rows = 0
        self._kinds: dict[str, list[pl.DataFrame]] = {kind: [] for kind in self.layout.kinds}
        taxonomy = load_taxonomy()
        self._kind_enum = pl.Enum(sorted(taxonomy.kinds))
        self._kind_codes = {kind: code for code, kind in enumerate(sorted(taxonomy.kinds))}
        self._categories = {name: pl.Enum(sorted(values))
                            for name, values in taxonomy.categories.items()}

    def key_expr(self, column: str = "user_id") -> pl.Expr:
        """The key of the user named in ``column`` (a hash, or the string itself)."""
        return pl.col(column).hash(SEEDS[0]) if self.hashed else pl.col(column)

    def add(self, events: pl.DataFrame | KindRuns, keep: pl.Series | None = None) -> None:
        """Keep the parts of these events (lake columns; kinds and categories as strings or
        Enums), or of those where ``keep`` is true: a mask is cheaper than a filtered copy."""
        self.append(self.cut(events, keep))

    def cut(self, events: pl.DataFrame | KindRuns, keep: pl.Series | None = None) -> Cut:
        """The parts of these events, not yet kept: several pieces may be cut at once, on
        threads, and then appended in their order (:meth:`append`)."""
        runs = events if isinstance(events, KindRuns) else None
        keyed = (events if runs is None else runs.base).with_columns(
            self.key_expr().alias(KEY), pl.col(KIND).cast(self._kind_enum), age_expr(self.as_of))
        first = [KEY, "user_id", "event_time", AGE]
        if self.layout.spine_kind:
            first.append(KIND)
        if self.hashed:
            keyed = keyed.with_columns(pl.col("user_id").hash(SEEDS[1]).alias(CHECK))
            first.append(CHECK)
        spine = self._shape(keyed, first, self.layout.spine, keep)
        before = keyed.get_column(AGE) > 0
        if keep is not None:
            before = before & keep
        # Added to each kind's rows after they are picked: a column chunked unlike the
        # others would make Polars realign every column the kinds select.
        position = (pl.int_range(keyed.height, dtype=pl.Int64, eager=True) if keep is None
                    else keep.cast(pl.Int64).cum_sum() - 1).alias(POS)
        codes = keyed.get_column(KIND).to_physical() if runs is None else None
        kinds = {}
        for kind, columns in self.layout.kinds.items():
            if codes is not None:
                frame, picked, mask = keyed, position, before & (codes == self._kind_codes[kind])
            else:
                assert runs is not None
                start, stop = runs.ranges.get(kind, (0, 0))
                frame, picked = runs.of_kind(kind, keyed), position.slice(start, stop - start)
                mask = before.slice(start, stop - start)
            every = mask.all()
            rows = self._shape(frame, [KEY, AGE], columns, None if every else mask)
            kinds[kind] = rows.insert_column(2, picked if every else picked.filter(mask))
        return Cut(spine=spine, kinds=kinds)

    def append(self, cut: Cut) -> None:
        """Keep a piece's parts (pieces in the order they are appended)."""
        self._spine.append(cut.spine)
        self._offsets.append(self._spine_rows)
        self._spine_rows += cut.spine.height
        for kind, rows in cut.kinds.items():
            self._kinds[kind].append(rows)

    def spine(self) -> pl.LazyFrame:
        """Every row added: key, user_id, event_time, age, and what all-kinds aggregates read."""
        return _concat(self._spine)

    def rows(self, kinds: Iterable[str], columns: Iterable[str] | None = None, *,
             with_kind: bool = False) -> pl.LazyFrame:
        """The rows before D of these kinds: key, age, position in the spine and ``columns``
        (default: all the kind keeps; several kinds need them named), with the ``kind``
        column when asked."""
        frames = []
        for kind in kinds:
            pieces = [piece.with_columns(pl.col(POS) + offset)
                      for piece, offset in zip(self._kinds[kind], self._offsets, strict=True)]
            if columns is not None:
                pieces = [piece.select(KEY, AGE, POS, *sorted(set(columns))) for piece in pieces]
            if with_kind:
                pieces = [piece.with_columns(pl.lit(kind, self._kind_enum).alias(KIND))
                          for piece in pieces]
            frames.extend(pieces)
        return _concat(frames)

    def _shape(self, events: pl.DataFrame, first: list[str], columns: frozenset[str],
               mask: pl.Series | None = None) -> pl.DataFrame:
        """``first``, then ``columns`` (money as exact decimals, categories as Enums,
        derived ones computed), of the rows in ``mask``: only the columns kept are copied."""
        derived = {name: expr for name, expr in derived_columns().items() if name in columns}
        stored = sorted(name for name in columns
                        if name in events.columns and name not in first and name not in derived)
        helper = [] if not derived or "event_time" in (*first, *stored) else ["event_time"]
        rows = events.select(*first, *stored, *helper)
        if mask is not None and not mask.all():
            rows = rows.filter(mask)
        casts = []
        for name in stored:
            dtype = rows.schema[name]
            if name in self._categories and dtype != self._categories[name]:
                casts.append(pl.col(name).cast(self._categories[name]))
        rows = rows.with_columns(*casts, *(expr.alias(name) for name, expr in derived.items()))
        return rows.drop(helper)


def _concat(frames: list[pl.DataFrame]) -> pl.LazyFrame:
    if not frames:
        raise LookupError("no rows")
    if len(frames) == 1:
        return frames[0].lazy()
    return pl.concat(frames, how="vertical", rechunk=False).lazy()
