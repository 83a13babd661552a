"""The taxonomy: every kind validates, bad records are refused with their field, and the
record path (pydantic) and the file path (vectorised) agree."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.json as pa_json
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.events import INPUT_SCHEMA, KIND_MODELS, LAKE_SCHEMA, MONEY, UTC_TIMESTAMP, Kind
from features.records import STAGED_SCHEMA, parse_records
from features.validate import stage_table
from tests.features.event_samples import EXAMPLES, correction, record, void

CONTRACT_COLUMNS = [
    "source", "event_id", "user_id", "kind", "event_time", "reported_at", "ingested_at",
    "known_at", "corrects", "voided", "amount", "currency", "account_id", "due_date",
    "paid_date", "days_late", "amount_due", "credit_limit", "term_months", "product",
    "default_reason", "biller_category", "merchant_category", "channel", "direction",
    "counterparty", "agreement_type", "outcome", "identity_verified", "education", "occupation",
    "phone_since", "address_changed", "birth_year", "gender", "sessions", "active_minutes",
    "contact_user_id", "contact_action", "relation",
]


def test_lake_schema_is_the_contract() -> None:
    assert LAKE_SCHEMA.names == CONTRACT_COLUMNS
    assert LAKE_SCHEMA.field("amount").type == MONEY == pa.decimal128(18, 2)
    assert LAKE_SCHEMA.field("known_at").type == UTC_TIMESTAMP == pa.timestamp("us", tz="UTC")
    assert LAKE_SCHEMA.field("due_date").type == pa.date32()
    assert LAKE_SCHEMA.field("days_late").type == pa.int32()


def test_input_schema_is_lake_minus_platform_columns_plus_correction_fields() -> None:
    expected = [n for n in CONTRACT_COLUMNS
                if n not in ("ingested_at", "known_at", "days_late", "voided")]
    assert INPUT_SCHEMA.names == [*expected, "corrected_kind", "void"]


def test_every_kind_has_a_model_and_an_example() -> None:
    assert set(KIND_MODELS) == {k.value for k in Kind} == set(EXAMPLES)


@pytest.mark.parametrize("kind", list(EXAMPLES))
def test_a_valid_record_of_each_kind_is_accepted(kind: str) -> None:
    table, problems = parse_records([record(kind)])
    assert problems == []
    assert table.num_rows == 1
    assert table.column("kind")[0].as_py() == kind


def test_timestamps_are_stored_as_the_utc_instant() -> None:
    table, _ = parse_records([record("payment", event_time="2024-03-10T08:30:00+08:00")])
    assert table.column("event_time")[0].as_py() == datetime(2024, 3, 10, 0, 30, tzinfo=UTC)


def test_money_keeps_its_decimals() -> None:
    table, _ = parse_records([record("balance", amount="-120.35")])
    assert table.column("amount")[0].as_py() == Decimal("-120.35")


@pytest.mark.parametrize(("changes", "field", "reason"), [
    ({"event_time": "2024-03-10T08:30:00"}, "event_time", "naive timestamps are refused"),
    ({"amount": "-1.00"}, "amount", "greater than or equal to 0"),
    ({"amount": "1.234"}, "amount", "2 decimal places"),
    ({"currency": "yuan"}, "currency", "pattern"),
    ({"merchant_category": "weapons"}, "merchant_category", "'grocery'"),
    ({"channel": None}, "channel", "Field required"),
    ({"days_late": 3}, "days_late", "unknown field"),
    ({"sessions": 3}, "sessions", "not a field of this kind"),
    ({"corrects": "e-0"}, "corrects", "only a correction may carry it"),
    ({"kind": "purchase"}, "kind", "does not match"),
    ({"user_id": ""}, "user_id", "at least 1 character"),
])
def test_a_bad_payment_is_refused_with_its_field(changes: dict[str, Any], field: str,
                                                 reason: str) -> None:
    table, problems = parse_records([record("payment"), record("payment", **changes)])
    assert table.num_rows == 1
    assert [(p.index, p.field) for p in problems] == [(1, field)]
    assert reason in problems[0].reason


def test_a_profile_must_say_something() -> None:
    empty = {name: None for name in EXAMPLES["profile"]}
    _, problems = parse_records([record("profile", **empty)])
    assert [(p.field, "at least one of" in p.reason) for p in problems] == [("payload", True)]


def test_a_correction_is_validated_as_the_kind_it_corrects() -> None:
    original = record("repayment")
    _, problems = parse_records([correction(original, "c-1", paid_date=None)])
    assert [(p.index, p.field, p.reason) for p in problems] == [(0, "paid_date", "Field required")]
    table, problems = parse_records([correction(original, "c-1", paid_date="2024-04-02")])
    assert problems == []
    row = table.to_pylist()[0]
    assert (row["kind"], row["corrects"], row["voided"]) == ("repayment", "e-1", False)


def test_a_void_carries_no_payload() -> None:
    original = record("payment")
    table, problems = parse_records([void(original, "v-1")])
    assert problems == [] and table.column("voided")[0].as_py() is True
    _, problems = parse_records([void(original, "v-2", amount="1.00")])
    assert [(p.field, p.reason) for p in problems] == [("amount", "a void correction carries no "
                                                                  "payload")]


# -- the two validation paths agree ----------------------------------------------

MUTATIONS: list[tuple[str, Any]] = [
    ("event_time", "2024-03-10T08:30:00"), ("event_time", "yesterday"), ("amount", "-5.00"),
    ("amount", "3.145"), ("amount", "12"), ("currency", "usd"), ("event_id", ""),
    ("kind", "nope"), ("due_date", "2024-02-30"), ("sessions", 4), ("product", "gold"),
    ("reported_at", "2024-03-11T00:00:00Z"), ("account_id", None), ("relation", "enemy"),
    ("corrects", "e-9"), ("birth_year", 1850), ("paid_date", "2024-05-01"),
]


@st.composite
def batches(draw: st.DrawFn) -> list[dict[str, Any]]:
    kinds = draw(st.lists(st.sampled_from(list(EXAMPLES)), min_size=1, max_size=12))
    out = []
    for i, kind in enumerate(kinds):
        rec = record(kind, event_id=f"e{i}")
        for name, value in draw(st.lists(st.sampled_from(MUTATIONS), max_size=2)):
            rec = {**rec, name: value} if value is not None else \
                {k: v for k, v in rec.items() if k != name}
        if draw(st.booleans()) and i % 3 == 0:
            rec = correction(rec, f"c{i}") if rec.get("kind") in EXAMPLES else rec
        if draw(st.booleans()) and i % 5 == 0:
            rec = void(record(kind), f"v{i}")
        out.append(rec)
    return out


def _as_file_table(records: list[dict[str, Any]], tmp: Path) -> pa.Table:
    path = tmp / "batch.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records))
    pinned = pa.schema([pa.field(f.name, pa.string()) for f in INPUT_SCHEMA
                        if pa.types.is_timestamp(f.type) or pa.types.is_date32(f.type)])
    options = pa_json.ParseOptions(explicit_schema=pinned, unexpected_field_behavior="infer")
    return pa_json.read_json(path, parse_options=options)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=batches())
def test_file_and_record_validation_agree(records: list[dict[str, Any]], tmp_path: Path) -> None:
    table, problems = parse_records(records)
    staged = stage_table(_as_file_table(records, tmp_path), max_problems=1000)
    record_bad = {(p.index + 1, p.field) for p in problems}
    file_bad = {(p.index, p.field) for p in staged.problems}
    assert {row for row, _ in record_bad} == {row for row, _ in file_bad}
    # pydantic stops early (an unknown kind, a bad correction header); the file path
    # checks every column, so it names at least the same fields.
    assert record_bad <= file_bad
    if not problems:
        assert staged.table is not None
        assert staged.table.schema == STAGED_SCHEMA
        assert staged.table.to_pylist() == table.to_pylist()


def test_the_documented_examples_are_valid_and_cover_every_kind() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "events.md").read_text()
    blocks = text.split("```json")[1:]
    examples = [json.loads(line) for block in blocks
                for line in block.split("```")[0].strip().splitlines()]
    table, problems = parse_records(examples)
    assert problems == []
    assert {e["kind"] for e in examples} == {*EXAMPLES, "correction"}
    assert table.num_rows == len(examples)
