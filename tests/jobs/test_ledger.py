"""The job-run ledger and its locks, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from jobs.ledger import FAILED, RUNNING, SUCCEEDED, JobRun, Ledger, RunRefused

AS_OF = date(2026, 11, 1)


def test_a_run_is_recorded_from_start_to_finish(db: Engine) -> None:
    ledger = Ledger(db)
    run = ledger.start("build_features", as_of=AS_OF, trigger="manual")
    assert ledger.last_run("build_features").status == RUNNING
    finished = ledger.finish(run.id, rows={"users": 12}, details={"engine": "polars"})
    assert finished.status == SUCCEEDED
    assert finished.rows == {"users": 12}
    assert finished.duration_seconds is not None and finished.duration_seconds >= 0
    assert ledger.last_success("build_features").id == run.id


def test_only_one_run_per_job_and_as_of_is_running(db: Engine) -> None:
    ledger = Ledger(db)
    first = ledger.start("recompute_scores", as_of=AS_OF, trigger="manual")
    with pytest.raises(RunRefused, match="already running"):
        ledger.start("recompute_scores", as_of=AS_OF, trigger="manual")
    other_day = ledger.start("recompute_scores", as_of=AS_OF + timedelta(days=1), trigger="manual")
    ledger.fail(first.id, "boom")
    again = ledger.start("recompute_scores", as_of=AS_OF, trigger="manual")
    assert {first.id, other_day.id, again.id} == {run.id for run in ledger.history("recompute_scores")}


def test_a_fire_time_is_claimed_once_even_by_racing_workers(db: Engine) -> None:
    ledger = Ledger(db)
    outcomes: list[str] = []

    def claim() -> None:
        try:
            run = ledger.start("compact_lake", as_of=AS_OF, trigger="schedule", fire_key="2026-11-01T05:17")
            ledger.finish(run.id)
            outcomes.append("ran")
        except RunRefused:
            outcomes.append("refused")

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["ran", "refused", "refused", "refused"]
    with pytest.raises(RunRefused, match="already ran"):
        ledger.start("compact_lake", as_of=AS_OF, trigger="schedule", fire_key="2026-11-01T05:17")


def test_a_run_whose_process_died_is_reaped_as_failed(db: Engine) -> None:
    ledger = Ledger(db)
    run = ledger.start("build_features", as_of=AS_OF, trigger="manual")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    with db.begin() as connection:
        connection.execute(sa.update(JobRun.__table__).where(JobRun.__table__.c.id == run.id)
                           .values(pid=int(dead.stdout)))
    reaped = ledger.reap_stale()
    assert [item.id for item in reaped] == [run.id]
    stale = ledger.last_run("build_features")
    assert stale.status == FAILED
    assert "stale" in stale.error
    ledger.start("build_features", as_of=AS_OF, trigger="manual")  # the lock is free again


def test_a_live_run_is_not_reaped(db: Engine) -> None:
    ledger = Ledger(db)
    ledger.start("build_features", as_of=AS_OF, trigger="manual")
    assert ledger.reap_stale() == []


def test_a_silent_run_on_another_host_is_reaped_after_its_heartbeat_stops(db: Engine) -> None:
    ledger = Ledger(db, stale_after=timedelta(minutes=10))
    run = ledger.start("retrain", as_of=AS_OF, trigger="manual")
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    with db.begin() as connection:
        connection.execute(sa.update(JobRun.__table__).where(JobRun.__table__.c.id == run.id)
                           .values(host="elsewhere", heartbeat_at=long_ago))
    assert [item.id for item in ledger.reap_stale()] == [run.id]
