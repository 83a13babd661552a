"""Records as the API receives them (Python dicts) -> validated rows in the lake's shape.

The pydantic models of :mod:`features.events` validate each record; a
correction is validated twice, first as a correction, then its replacement
payload as the kind it corrects. Valid records become an Arrow table in the
staged shape (:data:`STAGED_SCHEMA`: the lake's columns without the ones the
platform adds at commit time), exactly what :mod:`features.validate` makes of
a file, so both paths store identical rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import ValidationError

from features.events import (
    CORRECTION,
    INPUT_EVENT,
    INPUT_EVENTS,
    KIND_MODELS,
    LAKE_SCHEMA,
    PAYLOAD_COLUMNS,
    PLATFORM_COLUMNS,
    VOID_WITH_PAYLOAD_REASON,
    Correction,
)
from features.ingest_errors import RowProblem

STAGED_SCHEMA = pa.schema([f for f in LAKE_SCHEMA if f.name not in PLATFORM_COLUMNS])
"""Validated rows before commit: the lake's columns minus ingested_at, known_at, days_late."""


def parse_records(records: Sequence[Any]) -> tuple[pa.Table, list[RowProblem]]:
    """Validate every record; the staged table of the valid ones, and every problem found.

    The whole list is validated in one pydantic call (fast path); only when that
    fails is each record validated alone, to name every bad one.
    """
    try:
        return rows_to_table([_row(event) for event in INPUT_EVENTS.validate_python(records)]), []
    except ValidationError:
        return _parse_one_by_one(records)


def _parse_one_by_one(records: Sequence[Any]) -> tuple[pa.Table, list[RowProblem]]:
    rows: list[dict[str, Any]] = []
    problems: list[RowProblem] = []
    for index, record in enumerate(records):
        try:
            rows.append(parse_record(record))
        except ValidationError as exc:
            problems.extend(_problems(index, exc))
    return rows_to_table(rows), problems


def rows_to_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Staged rows as an Arrow table, built column-wise (far faster than row-wise).

    Rows of one kind share their keys in one order, so each group is transposed in
    one ``zip`` and only the columns the kind has are converted; the rest are nulls.
    """
    groups: dict[tuple[str, ...], list[int]] = {}
    for position, row in enumerate(rows):
        groups.setdefault(tuple(row), []).append(position)
    if not groups:
        return STAGED_SCHEMA.empty_table()
    tables = [_group_table(list(keys), [rows[i] for i in positions])
              for keys, positions in groups.items()]
    if len(tables) == 1:
        return tables[0]
    order = np.concatenate([np.asarray(positions) for positions in groups.values()])
    return pa.concat_tables(tables).take(pa.array(np.argsort(order)))


def _group_table(keys: list[str], rows: list[dict[str, Any]]) -> pa.Table:
    values = dict(zip(keys, zip(*(row.values() for row in rows), strict=True), strict=True))
    columns = [pa.array(values[f.name], f.type) if f.name in values
               else pa.nulls(len(rows), f.type) for f in STAGED_SCHEMA]
    return pa.Table.from_arrays(columns, schema=STAGED_SCHEMA)


def parse_record(record: Any) -> dict[str, Any]:
    """One record as a staged row; raises pydantic's ValidationError when it is invalid."""
    if not isinstance(record, dict):
        raise ValidationError.from_exception_data(
            "InputEvent", [{"type": "dict_type", "loc": (), "input": record}]
        )
    return _row(INPUT_EVENT.validate_python(record))


def _row(event: Any) -> dict[str, Any]:
    if isinstance(event, Correction):
        return _correction_row(event)
    return event.__dict__  # read only; absent columns (corrects, voided) become nulls


def _correction_row(event: Correction) -> dict[str, Any]:
    common = {name: getattr(event, name) for name in ("source", "event_id", "user_id",
                                                      "event_time", "reported_at")}
    row: dict[str, Any] = {**common, "kind": event.corrected_kind, "corrects": event.corrects,
                           "voided": event.void}
    if event.void:
        return row
    payload = {name: value for name, value in (event.model_extra or {}).items()
               if value is not None}
    replacement = KIND_MODELS[event.corrected_kind].model_validate(
        {**common, "kind": event.corrected_kind, **payload}
    )
    for name in PAYLOAD_COLUMNS:
        row[name] = getattr(replacement, name, None)
    return row


def _problems(index: int, exc: ValidationError) -> list[RowProblem]:
    found = []
    for error in exc.errors(include_url=False):
        found.append(RowProblem(index, _field_of(error), _reason_of(error)))
    return found


def _field_of(error: Any) -> str:
    loc = [part for part in error["loc"] if isinstance(part, str)]
    tags = (*KIND_MODELS, CORRECTION)
    if error["type"] in ("union_tag_not_found", "union_tag_invalid"):
        return "kind"
    if len(loc) >= 2 and loc[0] in tags:
        return loc[1]
    if loc and loc[0] not in tags:
        return loc[-1]
    return _field_in_message(str(error.get("msg", ""))) or "payload"


def _field_in_message(message: str) -> str | None:
    if VOID_WITH_PAYLOAD_REASON not in message:
        return None
    return message.rsplit(" ", 1)[-1]


def _reason_of(error: Any) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        name = next((part for part in reversed(error["loc"]) if isinstance(part, str)), "")
        if name in CORRECTION_ONLY:
            return "only a correction may carry it"
        return "not a field of this kind" if name in PAYLOAD_COLUMNS else "unknown field"
    if error["type"] == "timezone_aware":
        return "timestamp must carry a time zone (naive timestamps are refused)"
    if VOID_WITH_PAYLOAD_REASON in message:
        return VOID_WITH_PAYLOAD_REASON
    return message


CORRECTION_ONLY = ("corrects", "corrected_kind", "void")
