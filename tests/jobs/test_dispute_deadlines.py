"""The daily dispute_deadlines job: flags open disputes past their deadline, once, in the ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import Engine

from config.schedules import load_schedules
from config.settings import Settings
from features.ingest import ingest_records
from jobs.ledger import SUCCEEDED, Ledger
from jobs.runner import run_job
from jobs.tasks import TASKS
from scoring.dispute_tables import Dispute
from scoring.disputes import file_dispute, get_dispute, list_disputes


def _file(settings: Settings, event_id: str) -> int:
    ingest_records(settings, [{
        "source": "grid", "event_id": event_id, "user_id": "u1", "kind": "bill",
        "event_time": "2025-03-01T00:00:00Z", "amount": "88.20", "currency": "CNY",
        "biller_category": "utility", "due_date": "2025-03-15", "account_id": "elec-1"}])
    return file_dispute(settings, user_id="u1", source="grid", event_id=event_id,
                        reason="not mine").id


def _filed_days_ago(engine: Engine, dispute_id: int, days: int) -> None:
    """Arrange a dispute filed ``days`` ago (its deadline moves with it)."""
    table = Dispute.__table__
    shift = timedelta(days=days)
    with engine.begin() as connection:
        row = connection.execute(sa.select(table.c.filed_at, table.c.deadline)
                                 .where(table.c.id == dispute_id)).one()
        connection.execute(sa.update(table).where(table.c.id == dispute_id).values(
            filed_at=row.filed_at - shift, deadline=row.deadline - shift))


def test_the_job_is_scheduled_daily() -> None:
    assert "dispute_deadlines" in TASKS
    schedule = load_schedules()["dispute_deadlines"]
    assert schedule.cron.split()[2:] == ["*", "*", "*"]


def test_the_job_flags_overdue_disputes_once_and_records_the_run(
        settings: Settings, sqlite_db: Engine) -> None:
    late, fresh = _file(settings, "b-1"), _file(settings, "b-2")
    _filed_days_ago(sqlite_db, late, 40)
    run = run_job(settings, "dispute_deadlines")
    assert run.status == SUCCEEDED
    assert run.rows == {"overdue": 1} and run.details["overdue_ids"] == [late]
    assert Ledger(sqlite_db).last_run("dispute_deadlines").id == run.id  # type: ignore[union-attr]
    flagged = get_dispute(settings, late)
    assert flagged is not None and flagged.overdue and flagged.overdue_since is not None
    assert not get_dispute(settings, fresh).overdue  # type: ignore[union-attr]
    again = run_job(settings, "dispute_deadlines")
    assert again.rows == {"overdue": 1}
    assert get_dispute(settings, late).overdue_since == flagged.overdue_since  # type: ignore[union-attr]
    assert [d.id for d in list_disputes(settings, overdue=True)] == [late]
    assert datetime.now(UTC) > flagged.deadline
