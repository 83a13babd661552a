"""Feature definitions compiled to an engine-neutral plan.

The plan is what both engines render, so no feature is ever written twice by
hand: Polars (features/engine_polars.py) and Spark (features/engine_spark.py)
each translate the same few node types.

- :class:`Aggregate` — one conditional aggregate per user over the events before
  the as-of date D: rows of some kinds, passing some conditions, inside a window
  of ages (days before D). Aggregates are deduplicated across features (the
  on-time share and the count of repayments share their denominator) and grouped
  into *passes*, one per set of kinds, so each engine makes one grouped pass over
  just those rows.
- :class:`ContactAggregate` — the second pass over the contact graph: a person's
  contacts as of D, each flagged by one of the per-user aggregates (computed from
  the same point-in-time events, so a contact's future is never seen).
- :class:`Output` — each feature as a small expression over those aggregates
  (a reference, a ratio, a difference, a scale) plus its null policy.

Windows: a row belongs to window ``(lag, lag + window]`` when its age,
``(D - event_time)`` in days, lies in that interval. ``lag`` is 0 except for the
earlier half of a trend. Since only events with ``event_time < D`` are read,
every age is positive, and an event exactly ``window`` days before D counts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

from config.feature_definitions import (
    ANY_KIND,
    Condition,
    Feature,
    FeatureSet,
    Part,
    load_feature_definitions,
)

DAYS_PER_MONTH = 30.4375
ZERO_WHEN_EMPTY = frozenset({"count", "sum", "distinct"})
"""Aggregates whose value over no rows is 0 (the others are missing)."""

AggregateOp = Literal[
    "count", "sum", "mean", "min", "max", "std", "distinct", "latest", "min_age", "max_age",
]


@dataclass(frozen=True)
class Cond:
    """A row predicate; with ``kinds`` it constrains only rows of those kinds (others pass)."""

    column: str
    op: str
    value: str | int | float | bool | tuple[str | int | float | bool, ...] | None = None
    kinds: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Value:
    """The per-row value aggregated: a column, maybe mapped (categorical) or aged (a date)."""

    column: str
    mapping: tuple[tuple[str, float], ...] | None = None
    transform: str | None = None


@dataclass(frozen=True)
class Aggregate:
    kinds: tuple[str, ...]
    conditions: tuple[Cond, ...]
    window: int | None
    lag: int
    op: AggregateOp
    value: Value | None = None

    @property
    def key(self) -> str:
        """A stable column name for this aggregate (the same in every engine)."""
        return "_a" + hashlib.sha1(repr(self).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Ref:
    key: str


@dataclass(frozen=True)
class Ratio:
    """numerator / denominator; missing when the denominator is 0 or missing."""

    numerator: Expr
    denominator: Expr


@dataclass(frozen=True)
class Diff:
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Scale:
    operand: Expr
    factor: float


Expr = Ref | Ratio | Diff | Scale


@dataclass(frozen=True)
class ContactAggregate:
    """Over a person's contacts as of D (latest action 'added'), passing ``conditions``:
    ``count`` of them (flagged ones only when ``flag`` is set) or the ``share`` flagged."""

    conditions: tuple[Cond, ...]
    flag: Aggregate | None
    op: Literal["count", "share"]

    @property
    def key(self) -> str:
        return "_c" + hashlib.sha1(repr(self).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Output:
    name: str
    expr: Expr
    fill_zero: bool


@dataclass(frozen=True)
class Plan:
    passes: dict[tuple[str, ...], tuple[Aggregate, ...]]
    contacts: tuple[ContactAggregate, ...]
    outputs: tuple[Output, ...]
    columns: frozenset[str] = field(default_factory=frozenset)

    @property
    def names(self) -> list[str]:
        return [output.name for output in self.outputs]

    @property
    def aggregates(self) -> list[Aggregate]:
        return [aggregate for group in self.passes.values() for aggregate in group]


def compile_plan(definitions: FeatureSet | None = None) -> Plan:
    """The plan for a feature set (default: config/features.toml)."""
    definitions = definitions or load_feature_definitions()
    compiler = _Compiler()
    outputs = tuple(
        Output(feature.name, compiler.feature(feature), feature.null_policy == "zero")
        for feature in definitions.features
    )
    return Plan(passes=compiler.passes(), contacts=tuple(compiler.contacts),
                outputs=outputs, columns=frozenset(compiler.columns))


class _Compiler:
    """Collects the distinct aggregates the features need while building their expressions."""

    def __init__(self) -> None:
        self.aggregates: dict[Aggregate, None] = {}
        self.contacts: list[ContactAggregate] = []
        self.columns: set[str] = set()

    def feature(self, feature: Feature) -> Expr:
        handler = getattr(self, f"_{feature.aggregation}", None)
        if handler is not None:
            return handler(feature)  # type: ignore[no-any-return]
        op: AggregateOp = feature.aggregation  # type: ignore[assignment]
        return self.ref(feature.kinds, feature.filters, feature.window, op, self.value(feature))

    def ref(self, kinds: tuple[str, ...], filters: tuple[Condition, ...], window: int | None,
            op: AggregateOp, value: Value | None = None, lag: int = 0) -> Ref:
        return Ref(self.add(self.aggregate(kinds, filters, window, op, value, lag)))

    def aggregate(self, kinds: tuple[str, ...], filters: tuple[Condition, ...], window: int | None,
                  op: AggregateOp, value: Value | None = None, lag: int = 0) -> Aggregate:
        conds = tuple(self.cond(condition) for condition in filters)
        kinds = () if kinds == (ANY_KIND,) else tuple(sorted(kinds))
        return Aggregate(kinds, conds, window, lag, op, value)

    def add(self, aggregate: Aggregate) -> str:
        self.aggregates.setdefault(aggregate, None)
        if aggregate.value is not None:
            self.columns.add(aggregate.value.column)
        return aggregate.key

    def cond(self, condition: Condition) -> Cond:
        self.columns.add(condition.column)
        value = tuple(condition.value) if isinstance(condition.value, list) else condition.value
        kinds = tuple(sorted(condition.kinds)) if condition.kinds else None
        return Cond(condition.column, condition.op, value, kinds)

    def value(self, feature: Feature) -> Value | None:
        if feature.column is None:
            return None
        mapping = tuple(sorted(feature.map.items())) if feature.map else None
        return Value(feature.column, mapping, feature.transform)

    # -- aggregations that are more than one aggregate -----------------------------

    def _days_since_last(self, feature: Feature) -> Expr:
        return self._in_unit(self.ref(feature.kinds, feature.filters, feature.window, "min_age"),
                             feature)

    def _days_since_first(self, feature: Feature) -> Expr:
        return self._in_unit(self.ref(feature.kinds, feature.filters, feature.window, "max_age"),
                             feature)

    def _in_unit(self, expr: Expr, feature: Feature) -> Expr:
        return Scale(expr, 1 / DAYS_PER_MONTH) if feature.unit == "months" else expr

    def _share(self, feature: Feature) -> Expr:
        hits = self.ref(feature.kinds, (*feature.filters, *feature.where), feature.window, "count")
        rows = self.ref(feature.kinds, feature.filters, feature.window, "count")
        return Ratio(hits, rows)

    def _ratio(self, feature: Feature) -> Expr:
        assert feature.numerator is not None and feature.denominator is not None
        return Ratio(self._part(feature.numerator, feature.window),
                     self._part(feature.denominator, feature.window))

    def _part(self, part: Part, window: int | None) -> Expr:
        if part.window is not None:
            window = None if part.window == "all" else int(part.window)
        value = Value(part.column) if part.column else None
        return self.ref(part.kinds, part.filters, window, part.aggregation, value)

    def _trend(self, feature: Feature) -> Expr:
        op: AggregateOp = feature.of or "sum"  # type: ignore[assignment]
        value = None if op == "count" else Value(feature.column or "")
        last = self.ref(feature.kinds, feature.filters, feature.window, op, value)
        before = self.ref(feature.kinds, feature.filters, feature.window, op, value,
                          lag=feature.window or 0)
        return Diff(last, before)

    def _contact(self, feature: Feature, op: Literal["count", "share"]) -> Expr:
        flag = None
        if feature.flag is not None:
            flag = self.aggregate(feature.flag.kinds, feature.flag.filters, feature.window, "count")
            self.add(flag)
        self.columns.update({"contact_user_id", "contact_action", "relation"})
        contact = ContactAggregate(tuple(self.cond(c) for c in feature.contact_filters), flag, op)
        if contact not in self.contacts:
            self.contacts.append(contact)
        return Ref(contact.key)

    def _contact_count(self, feature: Feature) -> Expr:
        return self._contact(feature, "count")

    def _contact_share(self, feature: Feature) -> Expr:
        return self._contact(feature, "share")

    def passes(self) -> dict[tuple[str, ...], tuple[Aggregate, ...]]:
        grouped: dict[tuple[str, ...], list[Aggregate]] = {}
        for aggregate in self.aggregates:
            grouped.setdefault(aggregate.kinds, []).append(aggregate)
        return {kinds: tuple(group) for kinds, group in sorted(grouped.items())}


def referenced_keys(expr: Expr) -> list[str]:
    """The aggregate columns an output expression reads."""
    if isinstance(expr, Ref):
        return [expr.key]
    if isinstance(expr, Ratio):
        return referenced_keys(expr.numerator) + referenced_keys(expr.denominator)
    if isinstance(expr, Diff):
        return referenced_keys(expr.left) + referenced_keys(expr.right)
    return referenced_keys(expr.operand)
