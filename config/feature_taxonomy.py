"""What feature definitions may refer to: kinds, their columns, column types and categories.

Everything here is derived from :mod:`features.events` (the taxonomy's one
source of truth) — nothing is listed twice. The import is lazy and that module
is a leaf, so config does not really depend on the features package.
"""

from __future__ import annotations

import enum
import typing
from dataclasses import dataclass
from functools import cache

import pyarrow as pa

DERIVED_COLUMNS: dict[str, pa.DataType] = {
    "event_day": pa.int64(),    # days since 1970-01-01 (UTC) of event_time
    "event_month": pa.int64(),  # year * 12 + month (UTC) of event_time
}
"""Columns the engines derive from ``event_time`` for every row."""

FILTERABLE_COMMON = ("source", "account_id")
LATENESS_KINDS = ("repayment", "bill_payment")


@dataclass(frozen=True)
class Taxonomy:
    kinds: dict[str, frozenset[str]]
    types: dict[str, pa.DataType]
    categories: dict[str, frozenset[str]]
    derived: frozenset[str]

    def is_numeric(self, column: str) -> bool:
        kind = self.types[column]
        return (pa.types.is_integer(kind) or pa.types.is_floating(kind)
                or pa.types.is_decimal(kind) or pa.types.is_boolean(kind))

    def is_date(self, column: str) -> bool:
        return pa.types.is_date(self.types[column])

    def is_string(self, column: str) -> bool:
        return pa.types.is_string(self.types.get(column, pa.null()))


@cache
def load_taxonomy() -> Taxonomy:
    """The lake's kinds, columns per kind, Arrow types and categorical values."""
    from features import events

    kinds: dict[str, frozenset[str]] = {}
    categories: dict[str, frozenset[str]] = {}
    for kind, model in events.KIND_MODELS.items():
        columns = set(events.payload_fields(kind)) | set(FILTERABLE_COMMON)
        if kind in LATENESS_KINDS:
            columns.add("days_late")
        kinds[str(kind)] = frozenset(columns)
        for name, info in model.model_fields.items():
            values = _enum_values(info.annotation)
            if values:
                categories[name] = values
    types = {field.name: field.type for field in events.LAKE_SCHEMA} | DERIVED_COLUMNS
    return Taxonomy(kinds=kinds, types=types, categories=categories,
                    derived=frozenset(DERIVED_COLUMNS))


def _enum_values(annotation: object) -> frozenset[str] | None:
    candidates = [annotation, *typing.get_args(annotation)]
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, enum.Enum):
            return frozenset(str(member.value) for member in candidate)
    return None
