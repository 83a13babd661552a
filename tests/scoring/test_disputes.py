"""Disputes end to end on a scored population: filing takes the event out of scoring and
rescores only that person; rejecting puts it back; upholding keeps it out; snapshots known
before the filing never change; refusals change nothing; deadlines are flagged."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from config.settings import Settings
from features import lake
from features.ingest import ingest_records
from features.store import build_snapshot, load_snapshot
from features.user_events import find_event, user_events
from scoring.dispute_tables import ScoreRescore
from scoring.disputes import (
    DisputeError,
    file_dispute,
    flag_overdue,
    get_dispute,
    list_disputes,
    resolve_dispute,
)
from scoring.publish import PublishedScore, list_scores, score_at
from scoring.recompute import recompute
from scoring.registry import load_champion
from scoring.rescore import people_features, score_user, unseen_disputes, user_features
from tests.scoring.test_recompute import AS_OF, LATER, populate, register_champion

pytestmark = pytest.mark.slow

LATE = "altcredit-test-late-1"


@dataclass(frozen=True)
class Scored:
    settings: Settings
    engine: Engine
    user: str
    version: str


@pytest.fixture
def scored(db: Engine, db_settings: Settings, tmp_path: Path) -> Scored:
    """A scored population in which one person carries a repayment 45 days late, known by AS_OF."""
    populate(db_settings, tmp_path / "sim", users=150)
    version = register_champion(db_settings)
    look = datetime.now(UTC)  # a snapshot to choose the person, not the one recompute uses
    build_snapshot(db_settings, as_of=AS_OF, as_known_at=look)
    frame = load_snapshot(db_settings, AS_OF, look)
    user = frame.filter((pl.col("repay_late30_count_365d") == 0)
                        & (pl.col("repay_count_365d") > 3))["user_id"][0]
    ingest_records(db_settings, [{
        "source": "lender-x", "event_id": LATE, "user_id": user, "kind": "repayment",
        "event_time": "2025-09-15T10:00:00+00:00", "reported_at": "2025-09-16T00:00:00+00:00",
        "account_id": "x-1", "amount": "500.00", "amount_due": "500.00", "currency": "CNY",
        "due_date": "2025-08-01", "paid_date": "2025-09-15"}])
    recompute(db_settings, as_of=AS_OF)
    return Scored(db_settings, db, user, version)


def _published(engine: Engine) -> dict[str, PublishedScore]:
    return {row.user_id: row for row in list_scores(engine, as_of=AS_OF, limit=100_000)}


def _now_score(ctx: Scored, known_at: datetime) -> Any:
    return score_user(ctx.settings, ctx.user, as_of=AS_OF, model_version=ctx.version,
                      as_known_at=known_at, watermark=None)


def _rescores(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        return [row._mapping for row in connection.execute(
            sa.select(ScoreRescore.__table__).order_by(ScoreRescore.__table__.c.id))]


def _differences(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Keys whose values differ (NaN equals NaN; floats to 1e-9, as summation order may vary)."""
    def same(x: Any, y: Any) -> bool:
        if isinstance(x, float) and isinstance(y, float):
            return (math.isnan(x) and math.isnan(y)) or x == pytest.approx(y, rel=1e-9, abs=1e-9)
        return bool(x == y)
    return {key: (a[key], b.get(key)) for key in a if not same(a[key], b.get(key))}


def test_filing_excludes_the_event_and_rescores_only_that_person(scored: Scored) -> None:
    before = _published(scored.engine)
    known_before = datetime.now(UTC)
    with_event = _now_score(scored, known_before)
    view = file_dispute(scored.settings, user_id=scored.user, source="lender-x", event_id=LATE,
                        reason="  I paid this on time; the lender's date is wrong  ")
    assert (view.status, view.reason, view.kind, view.as_of) == (
        "open", "I paid this on time; the lender's date is wrong", "repayment", AS_OF)
    assert view.score_before == before[scored.user].score
    after = _published(scored.engine)
    assert after[scored.user].score == view.score_after
    assert view.score_after is not None and view.score_after > with_event.score
    assert {u: (r.score, r.features) for u, r in after.items() if u != scored.user} == \
        {u: (r.score, r.features) for u, r in before.items() if u != scored.user}
    [log] = _rescores(scored.engine)
    assert log["dispute_id"] == view.id and log["snapshot_id"].endswith(f"+dispute-{view.id}")
    assert (log["score_before"], log["score_after"]) == (view.score_before, view.score_after)
    # The row is the one a whole snapshot (D, T, W) of the rescore would give.
    known = log["as_known_at"].replace(tzinfo=UTC)
    build_snapshot(scored.settings, as_of=AS_OF, as_known_at=known)
    full = load_snapshot(scored.settings, AS_OF, known).filter(pl.col("user_id") == scored.user)
    mine = user_features(scored.settings, scored.user, as_of=AS_OF, as_known_at=known,
                         watermark=None)
    assert _differences(full.row(0, named=True), mine.row(0, named=True)) == {}
    assert full["repay_late30_count_365d"][0] == 0
    # The person's data page shows it excluded; the next snapshot leaves it out.
    [shown] = [e for e in user_events(scored.settings, scored.user, family="repayments",
                                      page_size=200).items if e.event_id == LATE]
    assert shown.excluded
    later_before = user_features(scored.settings, scored.user, as_of=LATER,
                                 as_known_at=known_before, watermark=None)
    later_now = user_features(scored.settings, scored.user, as_of=LATER,
                              as_known_at=datetime.now(UTC), watermark=None)
    assert later_before["repay_late30_count_365d"][0] == 1
    assert later_now["repay_late30_count_365d"][0] == 0


def test_a_snapshot_as_known_before_the_filing_never_changes(scored: Scored) -> None:
    known_before = datetime.now(UTC)
    build_snapshot(scored.settings, as_of=LATER, as_known_at=known_before)
    first = load_snapshot(scored.settings, LATER, known_before)
    file_dispute(scored.settings, user_id=scored.user, source="lender-x", event_id=LATE,
                 reason="not mine")
    # Built for the first time after the filing, as known a microsecond later than `first`.
    again_at = known_before + timedelta(microseconds=1)
    build_snapshot(scored.settings, as_of=LATER, as_known_at=again_at)
    assert load_snapshot(scored.settings, LATER, again_at).equals(first)
    assert load_snapshot(scored.settings, AS_OF).filter(
        pl.col("user_id") == scored.user)["repay_late30_count_365d"][0] == 1


def test_rejecting_puts_the_event_back_and_the_score_with_it(scored: Scored) -> None:
    known_before = datetime.now(UTC)
    with_event = _now_score(scored, known_before)
    view = file_dispute(scored.settings, user_id=scored.user, source="lender-x", event_id=LATE,
                        reason="wrong date")
    rejected = resolve_dispute(scored.settings, view.id, uphold=False, note="lender confirmed")
    assert (rejected.status, rejected.note) == ("rejected", "lender confirmed")
    assert rejected.resolved_at is not None and rejected.score_resolved == with_event.score
    row = score_at(scored.engine, scored.user, AS_OF)
    assert row is not None and row.score == with_event.score
    assert row.features == pytest.approx(_loaded(with_event.features), abs=1e-6)
    event = find_event(scored.settings, "lender-x", LATE)
    assert event is not None and not event.excluded
    assert len(_rescores(scored.engine)) == 2
    again = file_dispute(scored.settings, user_id=scored.user, source="lender-x", event_id=LATE,
                         reason="still wrong")
    assert again.id != view.id and again.status == "open"


def test_upholding_keeps_the_event_out_for_good(scored: Scored) -> None:
    view = file_dispute(scored.settings, user_id=scored.user, source="lender-x", event_id=LATE,
                        reason="wrong date")
    published = score_at(scored.engine, scored.user, AS_OF)
    upheld = resolve_dispute(scored.settings, view.id, uphold=True, note="lender agreed")
    assert upheld.status == "upheld" and upheld.score_resolved is None
    assert score_at(scored.engine, scored.user, AS_OF) == published
    event = find_event(scored.settings, "lender-x", LATE)
    assert event is not None and event.excluded
    with pytest.raises(DisputeError, match="already upheld"):
        resolve_dispute(scored.settings, view.id, uphold=False, note="changed my mind")
    with pytest.raises(DisputeError, match=f"already excluded by upheld dispute #{view.id}"):
        file_dispute(scored.settings, user_id=scored.user, source="lender-x", event_id=LATE,
                     reason="again")
    assert get_dispute(scored.settings, view.id) == upheld


def _loaded(value: Any) -> dict[str, float]:
    return json.loads(value) if isinstance(value, str) else value


@pytest.fixture
def state(scored: Scored) -> Iterator[Any]:
    def snapshot() -> tuple[Any, ...]:
        disputes = [d.as_dict() for d in list_disputes(scored.settings)]
        return (lake.watermark(scored.settings), disputes, _published(scored.engine))
    yield snapshot


@pytest.mark.parametrize(("arguments", "message"), [
    ({"event_id": "nope"}, "no event 'nope' from 'lender-x' among user"),
    ({"user": "someone-else"}, f"no event '{LATE}' from 'lender-x' among user someone-else's"),
    ({"reason": "   "}, "the reason is empty"),
    ({"reason": "x" * 2001}, "the reason is longer than 2000 characters"),
])
def test_a_refused_filing_changes_nothing(scored: Scored, state: Any, arguments: dict[str, Any],
                                         message: str) -> None:
    before = state()
    with pytest.raises(DisputeError, match=message) as caught:
        file_dispute(scored.settings, user_id=arguments.get("user", scored.user), source="lender-x",
                     event_id=arguments.get("event_id", LATE), reason=arguments.get("reason", "r"))
    assert "\n" not in str(caught.value)
    assert state() == before


def test_a_second_dispute_of_an_open_one_and_bad_resolutions_change_nothing(
        scored: Scored, state: Any) -> None:
    view = file_dispute(scored.settings, user_id=scored.user, source="lender-x", event_id=LATE,
                        reason="wrong")
    before = state()
    with pytest.raises(DisputeError, match=f"already under open dispute #{view.id}"):
        file_dispute(scored.settings, user_id=scored.user, source="lender-x", event_id=LATE,
                     reason="again")
    with pytest.raises(DisputeError, match="the note is empty"):
        resolve_dispute(scored.settings, view.id, uphold=True, note=" ")
    with pytest.raises(DisputeError, match="no dispute #999"):
        resolve_dispute(scored.settings, 999, uphold=True, note="x")
    with pytest.raises(DisputeError, match="unknown status 'closed'"):
        list_disputes(scored.settings, status="closed")
    assert state() == before


def test_an_open_dispute_past_its_deadline_is_flagged_overdue(scored: Scored) -> None:
    view = file_dispute(scored.settings, user_id=scored.user, source="lender-x", event_id=LATE,
                        reason="wrong")
    assert view.deadline == view.filed_at + timedelta(days=30) and not view.overdue
    early = view.deadline - timedelta(seconds=1)
    late = view.deadline + timedelta(seconds=1)
    assert flag_overdue(scored.settings, now=early) == 0
    assert list_disputes(scored.settings, overdue=True, now=early) == []
    assert flag_overdue(scored.settings, now=late) == 1
    [overdue] = list_disputes(scored.settings, overdue=True, now=late)
    assert overdue.overdue and overdue.overdue_since == late
    assert flag_overdue(scored.settings, now=late + timedelta(days=1)) == 1
    assert get_dispute(scored.settings, view.id).overdue_since == late  # type: ignore[union-attr]
    resolve_dispute(scored.settings, view.id, uphold=True, note="done")
    assert flag_overdue(scored.settings, now=late) == 0
    assert list_disputes(scored.settings, overdue=False, now=late)[0].status == "upheld"


def test_filing_without_a_published_score_still_excludes_the_event(
        db: Engine, db_settings: Settings) -> None:
    ingest_records(db_settings, [{
        "source": "grid", "event_id": "b-1", "user_id": "u-1", "kind": "bill",
        "event_time": "2025-03-01T00:00:00Z", "amount": "88.20", "currency": "CNY",
        "biller_category": "utility", "due_date": "2025-03-15", "account_id": "elec-1"}])
    view = file_dispute(db_settings, user_id="u-1", source="grid", event_id="b-1", reason="not me")
    assert (view.score_before, view.score_after, view.as_of) == (None, None, None)
    assert user_events(db_settings, "u-1", family="bills").items[0].excluded
    assert load_champion(db_settings) is None


# -- a rerun of a published date ------------------------------------------------------


def _row(ctx: Scored) -> PublishedScore:
    row = score_at(ctx.engine, ctx.user, AS_OF)
    assert row is not None
    return row


def _same_row(a: PublishedScore, b: PublishedScore) -> bool:
    return (a.score, a.reasons) == (b.score, b.reasons) and a.features == pytest.approx(b.features, abs=1e-6)


@pytest.mark.parametrize("decision", [None, "uphold"])
def test_a_rerun_of_the_date_keeps_an_open_or_upheld_dispute_out(scored: Scored,
                                                                 decision: str | None) -> None:
    counted = _row(scored)
    view = file_dispute(scored.settings, user_id=scored.user, source="lender-x", event_id=LATE,
                        reason="wrong date")
    if decision == "uphold":
        resolve_dispute(scored.settings, view.id, uphold=True, note="lender agreed")
    without = _row(scored)
    others = {u: r for u, r in _published(scored.engine).items() if u != scored.user}
    summary = recompute(scored.settings, as_of=AS_OF)
    rerun = _row(scored)
    assert rerun.score == view.score_after != counted.score and _same_row(rerun, without)
    assert {u: r for u, r in _published(scored.engine).items() if u != scored.user} == others
    log = _rescores(scored.engine)[-1]
    assert (log["cause"], log["dispute_id"], log["set_id"], log["as_of"]) == (
        "recompute_disputed", view.id, summary.set_id, AS_OF)
    assert (log["score_before"], log["score_after"]) == (counted.score, rerun.score)
    assert log["snapshot_id"].endswith(f"_user+dispute-{view.id}")


def test_a_rerun_after_a_rejection_counts_the_event_again(scored: Scored) -> None:
    counted = _row(scored)
    view = file_dispute(scored.settings, user_id=scored.user, source="lender-x", event_id=LATE,
                        reason="wrong date")
    recompute(scored.settings, as_of=AS_OF)
    assert _row(scored).score == view.score_after
    resolve_dispute(scored.settings, view.id, uphold=False, note="lender confirmed")
    logged = len(_rescores(scored.engine))
    recompute(scored.settings, as_of=AS_OF)
    assert _same_row(_row(scored), counted)
    assert len(_rescores(scored.engine)) == logged  # the snapshot already counts it: nothing to swap


def test_the_disputes_a_snapshot_gets_wrong_are_decided_by_the_lake(scored: Scored) -> None:
    before_filing = datetime.now(UTC)
    view = file_dispute(scored.settings, user_id=scored.user, source="lender-x", event_id=LATE,
                        reason="wrong date")
    between = datetime.now(UTC)
    wrong = {scored.user: view.id}
    assert unseen_disputes(scored.settings, as_known_at=before_filing, watermark=None) == wrong
    assert unseen_disputes(scored.settings, as_known_at=between, watermark=None) == {}
    resolve_dispute(scored.settings, view.id, uphold=False, note="lender confirmed")
    assert unseen_disputes(scored.settings, as_known_at=before_filing, watermark=None) == {}
    assert unseen_disputes(scored.settings, as_known_at=between, watermark=None) == wrong
    assert unseen_disputes(scored.settings, as_known_at=datetime.now(UTC), watermark=None) == {}


def test_several_people_read_in_one_pass_get_their_rows_of_a_whole_snapshot(scored: Scored) -> None:
    known = datetime.now(UTC)
    build_snapshot(scored.settings, as_of=AS_OF, as_known_at=known)
    full = load_snapshot(scored.settings, AS_OF, known)
    people = [scored.user, *(u for u in full["user_id"].cast(pl.String).to_list()[1::29] if u != scored.user)]
    mine = people_features(scored.settings, people, as_of=AS_OF, as_known_at=known, watermark=None)
    assert mine["user_id"].cast(pl.String).to_list() == people
    for row in mine.iter_rows(named=True):
        whole = full.filter(pl.col("user_id") == row["user_id"]).row(0, named=True)
        assert _differences(whole, row) == {}
