"""The plan rendered as Polars lazy expressions: the embedded engine.

Input is resolved events (the lake as known at T, see
:func:`features.lake.scan_events`); output is one row per user seen in them, one
Float64 column per feature. The events are first cut into parts
(:mod:`features.event_parts`): each kind's rows before D with just the columns
its aggregates read, and a spine of every row. Then one grouped pass per set of
kinds over just those rows, every aggregate of the pass a conditional aggregate
(``value.filter(cond).sum()`` or ``when(cond).then(value).sum()``, whichever the
share of rows kept makes cheaper) in one streaming ``group_by`` on the users'
integer key (floating-point sums apart, in a fixed order: see :func:`grouped`);
distinct counts of strings and latest values apart (a set or an order per user
would take the whole pass off the streaming engine); one pass over the
spine for the aggregates that read every kind and for each user's name; one
pass over the contact graph; and the features as column expressions over the
aggregates, joined on the key.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime

import numpy as np
import polars as pl

from config.feature_taxonomy import load_taxonomy
from features.event_parts import (
    AGE,
    CHECK,
    KEY,
    LATEST_ORDER,
    MICROS_PER_DAY,
    EventParts,
    aggregate_columns,
    as_of_micros,
    needs_kind,
)
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

__all__ = ["MICROS_PER_DAY", "as_of_instant", "as_of_micros", "feature_frame", "features_of_parts"]

BASE_COLUMNS = ("user_id", "kind", "event_id", "event_time")
SEPARATE_OPS = frozenset({"distinct", "latest"})
ROW = "_row"
CONTACT_KEY = "_contact_key"
CONTACT_NAME = "_contact_name"
STREAMING = "streaming"
BIT_WORDS = 4
DENSE_SHARE = 0.25
"""An aggregate whose condition keeps at least this share of its pass's rows reduces the
whole column (the other rows null) rather than the filtered rows (see :func:`grouped`)."""


class KeyCollision(RuntimeError):
    """Two user ids share a key hash: the computation is redone with the ids as keys."""


def as_of_instant(as_of: date) -> datetime:
    """The as-of date D as an instant: midnight UTC starting that day."""
    return datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC)


def day_number(day: date) -> int:
    """Days since 1970-01-01."""
    return (day - date(1970, 1, 1)).days


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
    frame = _users(parts, plan).sort("user_id")
    aligner = _Aligner(frame.get_column(KEY))
    for kinds, aggregates in plan.passes.items():
        if kinds:
            for result in _pass(parts, kinds, aggregates):
                frame = aligner.attach(frame, result)
    frame = frame.with_columns(
        pl.col(a.key).fill_null(0) for a in plan.aggregates if a.op in ZERO_WHEN_EMPTY
    )
    if plan.contacts:
        frame = aligner.attach(frame, contact_frame(parts.rows(["contact"]), frame, plan.contacts, parts))
    outputs = [
        _fill(output_expr(output.expr), output.fill_zero).cast(pl.Float64).alias(output.name)
        for output in plan.outputs
    ]
    return frame.select(pl.col("user_id"), *outputs)


def _pass(parts: EventParts, kinds: tuple[str, ...],
          aggregates: Sequence[Aggregate]) -> list[pl.DataFrame]:
    """One pass over the rows of ``kinds``: its results, keyed by user."""
    with_kind = any(needs_kind(aggregate, kinds) for aggregate in aggregates)
    columns = set().union(*(aggregate_columns(aggregate) for aggregate in aggregates))
    rows = parts.rows(kinds, columns, with_kind=with_kind)
    return pass_frames(rows, aggregates, kinds, parts.as_of)


class _Aligner:
    """Sets results beside the user frame, row for row by key (missing: null). Each result
    row's position is found by a binary search in the keys sorted once (the needles sorted
    too, so the searches walk memory in order); inverted, that gives for every user the row
    of the result that is theirs (or a row of nulls put after the others: a gather whose
    indices may be null costs Polars four times as much), and one gather per column lines
    the result up. A join would copy every column gathered so far, or sort to keep the
    frame's order."""

    def __init__(self, keys: pl.Series) -> None:
        self.keys = keys
        if keys.dtype == pl.UInt64:
            self.order = np.argsort(keys.to_numpy())
            self.sorted = keys.to_numpy()[self.order]

    def attach(self, frame: pl.DataFrame, result: pl.DataFrame) -> pl.DataFrame:
        if self.keys.dtype != pl.UInt64:   # string keys (after a collision): a join will do
            aligned = self.keys.to_frame().join(result, on=KEY, how="left", maintain_order="left")
            return frame.hstack(aligned.drop(KEY).get_columns())
        needles = result.get_column(KEY).to_numpy()
        by_key = result.get_column(KEY).arg_sort().to_numpy()  # Polars sorts on every core
        values = result.drop(KEY)
        rows = np.full(frame.height, values.height, dtype=np.uint32)  # no row: the null row
        rows[self.order[np.searchsorted(self.sorted, needles[by_key])]] = by_key
        with_null_row = pl.concat([values, values.clear(1)], rechunk=True)
        return frame.hstack(with_null_row.select(pl.all().gather(rows)).get_columns())


def _users(parts: EventParts, plan: Plan) -> pl.DataFrame:
    """One row per user (key and user_id) with the aggregates that read every kind."""
    everything = plan.passes.get((), ())
    spine = parts.spine()
    if parts.hashed:
        spine = spine.with_row_index(ROW)
        extra = [pl.col(ROW).min(), pl.col(CHECK).min().alias("_check_min"),
                 pl.col(CHECK).max().alias("_check_max")]
    else:
        extra = [pl.col("user_id").first()]
    frame, rest = grouped(spine, everything, (), parts.as_of, extra=extra, before=True)
    if parts.hashed:
        if (frame["_check_min"] != frame["_check_max"]).any():
            raise KeyCollision("two user ids share a key hash")
        names = spine.select("user_id").collect().to_series().gather(frame[ROW])
        frame = frame.drop(ROW, "_check_min", "_check_max").with_columns(names)
    for result in pass_frames(spine.filter(pl.col(AGE) > 0), rest, (), parts.as_of):
        frame = frame.join(result, on=KEY, how="left")
    return frame


def pass_frames(rows: pl.LazyFrame, aggregates: Sequence[Aggregate], kinds: Sequence[str],
                as_of: date) -> list[pl.DataFrame]:
    """The aggregates of one pass over its rows, as frames keyed by user (to join)."""
    frame, rest = grouped(rows, aggregates, kinds, as_of)
    frames = [frame] if frame.width > 1 else []
    frames += [distinct_frame(rows, a, kinds, as_of) for a in rest if a.op == "distinct"]
    latest = [a for a in rest if a.op == "latest"]
    if latest:
        ordered = rows.sort(KEY, *LATEST_ORDER)
        frames.append(ordered.group_by(KEY, maintain_order=True).agg(
            aggregate_expr(a, kinds, as_of).alias(a.key) for a in latest).collect())
    return frames


def grouped(rows: pl.LazyFrame, aggregates: Sequence[Aggregate], kinds: Sequence[str],
            as_of: date, *, extra: Sequence[pl.Expr] = (), before: bool = False,
            ) -> tuple[pl.DataFrame, list[Aggregate]]:
    """One ``group_by(KEY)`` with every aggregate that reduces row by row (and ``extra``);
    distinct counts of small-range codes go in as bit sets. Returns the frame and the
    aggregates left for apart (distinct strings, latest values).

    The pass runs on the streaming engine, whose group-by looks each row's user up
    once for every aggregate over a filtered column (``value.filter(cond).sum()``), but
    once for all the aggregates over whole columns (``when(cond).then(value).sum()``,
    where the column itself costs a little per row): so an aggregate whose condition
    keeps few rows (a 30- or 90-day window) is written the first way, and one that
    keeps at least ``DENSE_SHARE`` of them the second (the shares are read in the same
    query as the codes' ranges). Streaming hands rows to threads as they come, so it
    only takes reductions whose result cannot depend on the order of the rows: counts,
    minima, maxima, bit sets, and sums of integers and decimals (exact; a mean is such a
    sum over a count). A pass with a sum or mean of floating-point values, or a
    standard deviation, which would differ in its last bits from one run to the next,
    runs whole on the in-memory engine instead, which combines partial results in a
    fixed order (measured, that beats splitting the pass in two).
    """
    value_types = _value_types(rows, aggregates, as_of)
    ranges, shares = _survey(rows, aggregates, kinds, as_of, before=before)
    ordered = any(_order_sensitive(a, value_types.get(a.key)) for a in aggregates)
    exprs: list[pl.Expr] = list(extra)
    finish: list[pl.Expr] = []
    rest: list[Aggregate] = []
    for aggregate in aggregates:
        dense = ordered or _dense(aggregate, shares)
        if aggregate.op == "latest" or (aggregate.op == "distinct" and aggregate.key not in ranges):
            rest.append(aggregate)
        elif aggregate.op == "distinct":
            words, count = distinct_bits(aggregate, kinds, as_of, ranges[aggregate.key], rows,
                                         before=before, dense=dense)
            exprs += words
            finish.append(count)
        elif ordered:
            exprs.append(aggregate_expr(aggregate, kinds, as_of, before=before).alias(aggregate.key))
        else:
            reductions, finished = streamed_expr(aggregate, kinds, as_of, before=before, dense=dense)
            exprs += reductions
            finish += [] if finished is None else [finished]
    if not exprs:
        return rows.select(KEY).unique().collect(), rest
    frame = rows.group_by(KEY).agg(exprs).collect(engine="in-memory" if ordered else STREAMING)
    names = [KEY, *(expr.meta.output_name() for expr in extra),
             *(a.key for a in aggregates if a not in rest)]
    return frame.with_columns(finish).select(names), rest


def _value_types(rows: pl.LazyFrame, aggregates: Sequence[Aggregate],
                 as_of: date) -> dict[str, pl.DataType]:
    """The type of each summed or averaged value (from the schema: no data is read)."""
    summed = [a for a in aggregates if a.op in ("sum", "mean") and a.value is not None]
    if not summed:
        return {}
    day = day_number(as_of)
    values = [value_expr(a.value, as_of_day=day, as_float=False).alias(a.key)  # type: ignore[arg-type]
              for a in summed]
    return dict(rows.select(values).collect_schema().items())


def _order_sensitive(aggregate: Aggregate, value_type: pl.DataType | None) -> bool:
    """Whether the result could depend on the order rows are reduced in (see :func:`grouped`)."""
    if aggregate.op == "std":
        return True
    return aggregate.op in ("sum", "mean") and value_type is not None and value_type.is_float()


def streamed_expr(aggregate: Aggregate, pass_kinds: Sequence[str], as_of: date, *,
                  before: bool = False, dense: bool = False) -> tuple[list[pl.Expr], pl.Expr | None]:
    """One aggregate as reductions for the streaming group-by, and the expression that
    finishes it from their results (None when the one reduction is the aggregate).
    ``dense``: over the whole column, values outside the condition null (see :func:`grouped`)."""
    cond = _row_condition(aggregate, pass_kinds, before=before)
    key, op = aggregate.key, aggregate.op

    def kept(expr: pl.Expr) -> pl.Expr:
        if cond is None:
            return expr
        return pl.when(cond).then(expr) if dense else expr.filter(cond)

    if op == "count":
        if cond is None:
            return [pl.len().alias(key)], None
        return [(cond.sum() if dense else pl.col(KEY).filter(cond).len()).alias(key)], None
    if op in ("min_age", "max_age"):
        age = kept(pl.col(AGE))
        return [(age.min() if op == "min_age" else age.max()).alias(key)], None
    assert aggregate.value is not None
    value = kept(value_expr(aggregate.value, as_of_day=day_number(as_of), as_float=False))
    if op == "mean":
        total, count = f"{key}_sum", f"{key}_n"
        return ([value.sum().alias(total), value.count().alias(count)],
                pl.when(pl.col(count) > 0)
                .then(pl.col(total).cast(pl.Float64) / pl.col(count)).alias(key))
    return [getattr(value, op)().alias(key)], None  # sum, min, max


def _dense(aggregate: Aggregate, shares: dict[str, float]) -> bool:
    return shares.get(aggregate.key, 0.0) >= DENSE_SHARE


def _survey(rows: pl.LazyFrame, aggregates: Sequence[Aggregate], kinds: Sequence[str],
            as_of: date, *, before: bool = False,
            ) -> tuple[dict[str, tuple[int, int]], dict[str, float]]:
    """Two facts about a pass's rows, read in one query. For each distinct count whose
    values are integer codes (enums, booleans, integers, dates) spanning at most
    ``64 * BIT_WORDS`` values, the lowest and highest code (the others are counted apart,
    by :func:`distinct_frame`); and for each aggregate with a condition, the share of
    the rows it keeps."""
    reads: dict[str, pl.Expr] = {}
    codes = []
    for aggregate in aggregates:
        cond = _row_condition(aggregate, kinds, before=before)
        if cond is not None:
            reads[f"{aggregate.key}_share"] = cond.fill_null(False).mean()
        code = _code(aggregate, as_of, rows) if aggregate.op == "distinct" else None
        if code is not None:
            code = code if cond is None else code.filter(cond)
            reads[f"{aggregate.key}_low"], reads[f"{aggregate.key}_high"] = code.min(), code.max()
            codes.append(aggregate.key)
    if not reads:
        return {}, {}
    found = rows.select(expr.alias(name) for name, expr in reads.items()).collect().row(0, named=True)
    ranges = {}
    for key in codes:
        low, high = found[f"{key}_low"], found[f"{key}_high"]
        if low is None:
            ranges[key] = (0, 0)
        elif high - low < 64 * BIT_WORDS:
            ranges[key] = (low, high)
    shares = {name.removesuffix("_share"): value or 0.0 for name, value in found.items()
              if name.endswith("_share")}
    return ranges, shares


def _code(aggregate: Aggregate, as_of: date, rows: pl.LazyFrame) -> pl.Expr | None:
    """The aggregate's values as Int64 codes; None when they are not integer codes."""
    assert aggregate.value is not None
    value = value_expr(aggregate.value, as_of_day=day_number(as_of), as_float=False)
    dtype = rows.select(value).collect_schema().dtypes()[0]
    if isinstance(dtype, pl.Enum | pl.Categorical):
        return value.to_physical().cast(pl.Int64)
    if dtype.is_integer() or dtype in (pl.Boolean, pl.Date):
        return value.cast(pl.Int64)
    return None


def distinct_bits(aggregate: Aggregate, kinds: Sequence[str], as_of: date,
                  span: tuple[int, int], rows: pl.LazyFrame, *, before: bool = False,
                  dense: bool = False) -> tuple[list[pl.Expr], pl.Expr]:
    """A distinct count of the codes in ``span`` as up to ``BIT_WORDS`` 64-bit sets OR-ed
    per user (a reduction the streaming group-by does row by row, instead of a set per
    user), and the expression that counts their bits."""
    low, high = span
    code = _code(aggregate, as_of, rows)
    assert code is not None
    cond = _row_condition(aggregate, kinds, before=before)
    offset = code - low
    bit = pl.lit(2, pl.UInt64).pow((offset % 64).cast(pl.UInt64))
    names = [f"{aggregate.key}_w{word}" for word in range((high - low) // 64 + 1)]
    words = []
    for word, name in enumerate(names):
        keep = code.is_not_null() & (offset // 64 == word)
        keep = keep if cond is None else cond & keep
        words.append((pl.when(keep).then(bit) if dense else bit.filter(keep)).bitwise_or().alias(name))
    count = pl.sum_horizontal(pl.col(name).bitwise_count_ones().fill_null(0) for name in names)
    return words, count.cast(pl.UInt32).alias(aggregate.key)


def distinct_frame(rows: pl.LazyFrame, aggregate: Aggregate, kinds: Sequence[str],
                   as_of: date) -> pl.DataFrame:
    """Distinct non-null values per user among the rows passing the aggregate's condition."""
    assert aggregate.value is not None
    value = value_expr(aggregate.value, as_of_day=day_number(as_of), as_float=False)
    cond = _row_condition(aggregate, kinds)
    keep = value.is_not_null() if cond is None else cond & value.is_not_null()
    return (rows.filter(keep).select(KEY, value.alias("_value")).unique()
            .group_by(KEY).agg(pl.len().alias(aggregate.key)).collect(engine=STREAMING))


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


def aggregate_expr(aggregate: Aggregate, pass_kinds: Sequence[str], as_of: date, *,
                   before: bool = False) -> pl.Expr:
    """One conditional aggregate inside a ``group_by(KEY).agg``; ``before`` adds the
    condition event_time < D (for a pass over rows not yet restricted to it). Rows of a
    pass with a ``latest`` aggregate come sorted by (event_time, event_id) within each
    user; distinct counts are computed apart (:func:`distinct_frame`)."""
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
    return getattr(_when(cond, value), op)()  # sum, mean, min, max, std


def value_expr(value: Value, *, as_of_day: int, as_float: bool) -> pl.Expr:
    column = pl.col(value.column)
    if value.mapping is not None:
        return column.cast(pl.String).replace_strict(
            dict(value.mapping), default=None, return_dtype=pl.Float64)
    if value.transform == "age_days":
        # Days from the date to D: D's day number minus the date's (days since 1970-01-01).
        days = pl.lit(as_of_day, pl.Int64) - column.cast(pl.Int32).cast(pl.Int64)
        return days.cast(pl.Float64) if as_float else days
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
