"""Point in time, through a real lake: a snapshot as of D known at T sees only what was known.

Events are ingested with ``reported_at`` in the past (the records carry it), so
their knowledge time is the report time: an event reported after D is a late
arrival for a snapshot as of D, whenever it was ingested.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from config.settings import Settings
from features import lake
from features.engine_polars import enum_casts, input_columns
from features.ingest import ingest_records
from features.plan import compile_plan
from features.store import build_snapshot, compute_features, load_snapshot, read_events
from tests.features.feature_rows import AS_OF, D, ago, record, repayment_record

AFTER_D = D + timedelta(days=10)


def snapshot_values(settings: Settings, *, as_known_at: datetime = D,
                    watermark: datetime | None = None) -> dict[str, dict[str, Any]]:
    events = lake.scan_events(settings, as_known_at=as_known_at,
                              watermark=watermark or lake.watermark(settings))
    frame = compute_features(events, as_of=AS_OF)
    return {row.pop("user_id"): row for row in frame.to_dicts()}


@pytest.fixture
def history(settings: Settings) -> dict[str, Any]:
    """Two users, one of them a contact of the other, everything reported before D."""
    first = repayment_record("u", 40, 0, event_id="pay-1")
    ingest_records(settings, [
        first, repayment_record("u", 20, 5),
        record("contact", "u", ago(100), contact_user_id="c", contact_action="added",
               relation="friend"),
        repayment_record("c", 60, 0),
    ])
    return {"first": first, "watermark": lake.watermark(settings)}


def test_late_arrivals_do_not_change_a_past_snapshot(settings: Settings,
                                                     history: dict[str, Any]) -> None:
    manifest = build_snapshot(settings, as_of=AS_OF)
    before = load_snapshot(settings, AS_OF)
    ingest_records(settings, [
        repayment_record("u", 5, 60, reported_at=AFTER_D),
        repayment_record("c", 30, 120, reported_at=AFTER_D),
        record("correction", "u", history["first"]["event_time"], event_id="fix-1",
               corrects="pay-1", corrected_kind="repayment", reported_at=AFTER_D,
               **{k: history["first"][k] for k in ("account_id", "amount", "amount_due",
                                                   "currency", "due_date")},
               paid_date=history["first"]["due_date"] + timedelta(days=45)),
    ])
    assert snapshot_values(settings) == {row.pop("user_id"): row for row in before.to_dicts()}
    again = build_snapshot(settings, as_of=AS_OF)
    assert again == manifest
    assert load_snapshot(settings, AS_OF).equals(before)


def test_as_known_at_answers_for_a_later_knowledge_time(settings: Settings,
                                                        history: dict[str, Any]) -> None:
    ingest_records(settings, [repayment_record("u", 5, 60, reported_at=AFTER_D)])
    at_d = snapshot_values(settings)["u"]
    later = build_snapshot(settings, as_of=AS_OF, as_known_at=AFTER_D)
    known_later = load_snapshot(settings, AS_OF, AFTER_D).filter(pl.col("user_id") == "u")
    assert later.as_known_at == AFTER_D
    assert (at_d["repay_count_90d"], known_later["repay_count_90d"].item()) == (2.0, 3.0)
    assert known_later["repay_days_late_max_90d"].item() == 60.0
    assert at_d["repay_days_late_max_90d"] == 5.0


def test_a_backfill_reported_before_d_is_pinned_by_the_watermark(
        settings: Settings, history: dict[str, Any]) -> None:
    pinned = snapshot_values(settings, watermark=history["watermark"])
    ingest_records(settings, [repayment_record("u", 30, 95, reported_at=ago(2))])
    assert snapshot_values(settings, watermark=history["watermark"]) == pinned
    assert snapshot_values(settings)["u"]["repay_late90_count_all"] == 1.0


def test_a_correction_replaces_and_a_void_removes_once_known(
        settings: Settings, history: dict[str, Any]) -> None:
    first = history["first"]
    ingest_records(settings, [
        record("correction", "u", first["event_time"], event_id="fix-1", corrects="pay-1",
               corrected_kind="repayment", reported_at=ago(3),
               **{k: first[k] for k in ("account_id", "amount", "amount_due", "currency",
                                        "due_date")},
               paid_date=first["due_date"] + timedelta(days=45)),
    ])
    corrected = snapshot_values(settings)["u"]
    assert corrected["repay_count_90d"] == 2.0
    assert corrected["repay_days_late_max_90d"] == 45.0
    ingest_records(settings, [record("correction", "u", first["event_time"], event_id="void-1",
                                     corrects="pay-1", corrected_kind="repayment", void=True,
                                     reported_at=ago(2))])
    voided = snapshot_values(settings)["u"]
    assert (voided["repay_count_90d"], voided["repay_days_late_max_90d"]) == (1.0, 5.0)
    before_void = snapshot_values(settings, as_known_at=ago(2.5))["u"]
    assert before_void["repay_days_late_max_90d"] == 45.0


def test_connections_never_see_a_contacts_future(settings: Settings,
                                                 history: dict[str, Any]) -> None:
    ingest_records(settings, [
        repayment_record("c", -20, 150, reported_at=D + timedelta(days=21)),
        repayment_record("c", 10, 100, reported_at=AFTER_D),
    ])
    assert snapshot_values(settings)["u"]["contacts_delinquent_share_365d"] == 0.0
    known_later = snapshot_values(settings, as_known_at=AFTER_D)["u"]
    assert known_later["contacts_delinquent_share_365d"] == 1.0
    assert snapshot_values(settings, as_known_at=D + timedelta(days=60))["u"][
        "contacts_delinquent_365d"] == 1.0


def test_the_stores_fast_read_equals_the_lakes_resolution(settings: Settings,
                                                          history: dict[str, Any]) -> None:
    first = history["first"]
    payload = {k: first[k] for k in ("account_id", "amount", "amount_due", "currency",
                                     "due_date")}
    ingest_records(settings, [
        record("correction", "u", first["event_time"], event_id="fix-1", corrects="pay-1",
               corrected_kind="repayment", reported_at=ago(6), paid_date=first["due_date"],
               **payload),
        record("correction", "u", first["event_time"], event_id="fix-2", corrects="pay-1",
               corrected_kind="repayment", reported_at=ago(4),
               paid_date=first["due_date"] + timedelta(days=9), **payload),
        record("correction", "u", first["event_time"], event_id="void-1", corrects="pay-1",
               corrected_kind="repayment", void=True, reported_at=AFTER_D),
        repayment_record("c", 15, 3, source="other", event_id="pay-1"),
    ])
    plan = compile_plan()
    mark = lake.watermark(settings)
    for known_at in (ago(5), ago(3), D, AFTER_D):
        expected = (lake.scan_events(settings, as_known_at=known_at, watermark=mark)
                    .select(input_columns(lake.scan_stored(settings), plan)).collect())
        expected = expected.with_columns(enum_casts(expected.columns))
        fast = read_events(settings, as_known_at=known_at, watermark=mark, plan=plan)
        assert_frame_equal(fast.sort("event_id", "user_id"), expected.sort("event_id", "user_id"))
