"""The validation rules of each column, read from the pydantic models of the taxonomy.

The file validator (:mod:`features.validate`) never states a rule itself: it
asks this module what each model's field requires (required or optional, enum
values, bounds, patterns, lengths), so a change to a model changes both the
record path and the file path.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from functools import cache
from typing import Any

import annotated_types
from pydantic.fields import FieldInfo

from features.events import COMMON_INPUT_COLUMNS, KIND_MODELS, PAYLOAD_COLUMNS, Kind


@dataclass(frozen=True)
class ColumnRule:
    """What one column must satisfy for one kind, read from the model's field."""

    required: bool
    enum: tuple[str, ...] = ()
    ge: Any = None
    le: Any = None
    min_len: int | None = None
    max_len: int | None = None
    pattern: str | None = None



@cache
def common_rules() -> dict[str, ColumnRule]:
    model = KIND_MODELS[Kind.BILL]
    return {name: _rule(model.model_fields[name]) for name in COMMON_INPUT_COLUMNS
            if name in ("source", "event_id", "user_id")}


@cache
def kind_rules() -> dict[str, dict[str, ColumnRule]]:
    """Kind -> payload column -> rule, for every stored kind."""
    return {
        kind: {name: _rule(info) for name, info in model.model_fields.items()
               if name in PAYLOAD_COLUMNS}
        for kind, model in KIND_MODELS.items()
    }


def group_rules(rules: dict[str, dict[str, ColumnRule]],
                 name: str) -> list[tuple[list[str], ColumnRule]]:
    groups: dict[ColumnRule, list[str]] = {}
    for kind, fields in rules.items():
        if name in fields:
            groups.setdefault(fields[name], []).append(kind)
    return [(kinds, rule) for rule, kinds in groups.items()]


def _rule(info: FieldInfo) -> ColumnRule:
    constraints: dict[str, Any] = {}
    base = _collect(info.annotation, constraints)
    for item in info.metadata:
        _constraint(item, constraints)
    if isinstance(base, type) and issubclass(base, Enum):
        constraints["enum"] = tuple(member.value for member in base)
    if base in (Decimal,):
        constraints.pop("max_digits", None)
        constraints.pop("decimal_places", None)
    return ColumnRule(required=info.is_required(), **constraints)


def _collect(annotation: Any, constraints: dict[str, Any]) -> Any:
    """Unwrap Optional and Annotated, gathering constraints; return the base type."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *extras = typing.get_args(annotation)
        for extra in extras:
            _constraint(extra, constraints)
        return _collect(base, constraints)
    if origin in (typing.Union, types.UnionType):
        inner = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return _collect(inner[0], constraints)
    return annotation


def _constraint(item: Any, constraints: dict[str, Any]) -> None:
    if isinstance(item, FieldInfo):
        for sub in item.metadata:
            _constraint(sub, constraints)
    elif isinstance(item, annotated_types.Ge):
        constraints["ge"] = item.ge
    elif isinstance(item, annotated_types.Le):
        constraints["le"] = item.le
    elif isinstance(item, annotated_types.MinLen):
        constraints["min_len"] = item.min_length
    elif isinstance(item, annotated_types.MaxLen):
        constraints["max_len"] = item.max_length
    elif getattr(item, "pattern", None):
        constraints["pattern"] = item.pattern

