"""A person's events by family: the furnisher's latest version, paged newest first, and
marked excluded exactly while a dispute's void is the latest word on them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from config.event_families import EventFamiliesError, load_event_families
from config.feature_taxonomy import load_taxonomy
from config.settings import Settings
from features.ingest import ingest_platform_records, ingest_records
from features.store import build_snapshot, load_snapshot
from features.user_events import (
    FAMILIES,
    dispute_restore_id,
    dispute_void_id,
    find_event,
    restore_record,
    user_events,
    void_record,
)
from tests.features.event_samples import correction, record, void


def _repayments(user: str = "u-1", n: int = 5) -> list[dict]:
    return [record("repayment", event_id=f"r-{i}", user_id=user,
                   event_time=f"2024-0{i + 1}-10T08:00:00+00:00",
                   due_date=f"2024-0{i + 1}-10", paid_date=f"2024-0{i + 1}-{10 + i:02d}")
            for i in range(n)]


def test_every_kind_of_the_taxonomy_is_in_exactly_one_family() -> None:
    kinds = [kind for family in FAMILIES.values() for kind in family]
    assert sorted(kinds) == sorted(load_taxonomy().kinds)
    assert list(FAMILIES) == ["bills", "repayments", "payments", "agreements", "identity",
                              "connections"]


def test_a_families_file_missing_a_kind_is_refused_in_one_line(tmp_path: Path) -> None:
    text = Path("config/event_families.toml").read_text(encoding="utf-8")
    broken = tmp_path / "event_families.toml"
    broken.write_text(text.replace('kinds = ["contact"]', 'kinds = ["contactz"]'), encoding="utf-8")
    with pytest.raises(EventFamiliesError, match="unknown kind 'contactz'") as caught:
        load_event_families(broken)
    assert "\n" not in str(caught.value)


def test_events_are_paged_newest_first_with_details(settings: Settings) -> None:
    ingest_records(settings, [*_repayments(), record("payment", event_id="p-1")])
    first = user_events(settings, "u-1", family="repayments", page_size=2)
    assert first.total == 5 and first.page == 1 and first.family == "repayments"
    assert [event.event_id for event in first.items] == ["r-4", "r-3"]
    last = user_events(settings, "u-1", family="repayments", page=3, page_size=2)
    assert [event.event_id for event in last.items] == ["r-0"]
    event = last.items[0]
    assert event.kind == "repayment" and event.source == "lender" and not event.excluded
    assert event.details == {"account_id": "loan-1", "amount": "1750.00", "amount_due": "1750.00",
                             "currency": "CNY", "due_date": "2024-01-10", "paid_date": "2024-01-10",
                             "days_late": 0}
    assert user_events(settings, "u-1", family="payments").total == 1
    assert user_events(settings, "u-2", family="repayments").total == 0


@pytest.mark.parametrize(("arguments", "message"), [
    ({"family": "loans"}, "unknown family 'loans'"),
    ({"family": "bills", "page": 0}, "page must be a whole number from 1"),
    ({"family": "bills", "page_size": 0}, "page_size must be a whole number from 1 to 200"),
    ({"family": "bills", "page_size": 201}, "page_size must be a whole number from 1 to 200"),
])
def test_bad_family_or_page_is_refused(settings: Settings, arguments: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        user_events(settings, "u-1", **arguments)


def test_a_furnisher_correction_shows_under_the_original_id_and_a_void_hides_it(
        settings: Settings) -> None:
    first, second = _repayments(n=2)
    ingest_records(settings, [first, second])
    ingest_records(settings, [correction(first, "r-0-fix", paid_date="2024-01-20"),
                              void(second, "r-1-void")])
    page = user_events(settings, "u-1", family="repayments")
    assert [(e.event_id, e.details["days_late"]) for e in page.items] == [("r-0", 10)]
    assert find_event(settings, "lender", "r-0-fix").event_id == "r-0"  # type: ignore[union-attr]
    assert find_event(settings, "lender", "r-1") is None


def test_a_correction_moving_an_event_to_another_person_moves_it_in_their_lists(
        settings: Settings) -> None:
    original = record("payment", event_id="p-1", user_id="u-1")
    ingest_records(settings, [original])
    ingest_records(settings, [correction(original, "p-1-fix", user_id="u-2")])
    assert user_events(settings, "u-1", family="payments").total == 0
    moved = user_events(settings, "u-2", family="payments").items
    assert [(e.event_id, e.user_id) for e in moved] == [("p-1", "u-2")]


def test_a_dispute_void_marks_the_event_excluded_and_a_restore_brings_it_back(
        settings: Settings) -> None:
    ingest_records(settings, _repayments(n=2))
    event = find_event(settings, "lender", "r-1")
    assert event is not None and not event.excluded
    before = datetime.now(UTC)
    ingest_platform_records(settings, [void_record(event, event_id=dispute_void_id(7))])
    excluded = user_events(settings, "u-1", family="repayments").items
    assert [(e.event_id, e.excluded) for e in excluded] == [("r-1", True), ("r-0", False)]
    assert excluded[0].details == event.details  # the furnisher's version is still shown
    as_before = user_events(settings, "u-1", family="repayments", as_known_at=before).items
    assert not any(e.excluded for e in as_before)
    ingest_platform_records(settings, [restore_record(event, event_id=dispute_restore_id(7))])
    restored = find_event(settings, "lender", "r-1")
    assert restored is not None and not restored.excluded and restored.details == event.details


def test_a_snapshot_as_known_before_a_dispute_still_counts_the_event(settings: Settings) -> None:
    ingest_records(settings, _repayments(n=3))
    as_of = datetime(2024, 6, 1, tzinfo=UTC).date()
    before = datetime.now(UTC)
    event = find_event(settings, "lender", "r-2")
    assert event is not None
    ingest_platform_records(settings, [void_record(event, event_id=dispute_void_id(1))])
    after = datetime.now(UTC) + timedelta(seconds=1)
    build_snapshot(settings, as_of=as_of, as_known_at=before)
    build_snapshot(settings, as_of=as_of, as_known_at=after)
    counted = load_snapshot(settings, as_of, before).row(0, named=True)["repay_count_all"]
    without = load_snapshot(settings, as_of, after).row(0, named=True)["repay_count_all"]
    assert (counted, without) == (3.0, 2.0)
