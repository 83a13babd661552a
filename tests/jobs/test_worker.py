"""The scheduler worker against a real database: catch-up once, and never twice with two workers."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from apscheduler.events import EVENT_JOB_EXECUTED
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine

from config.schedules import load_schedules
from config.settings import Settings
from jobs.ledger import SUCCEEDED, Ledger, as_utc
from jobs.runner import run_job
from jobs.worker import JOBSTORE_TABLE, build_scheduler, latest_fire_time, next_run_times

JOB = "compact_lake"  # hourly, and cheap on an empty lake


@pytest.fixture
def worker_env(db_settings: Settings, db: Engine, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Scheduled runs load settings from the environment, as a real worker process does."""
    monkeypatch.setenv("ALTCREDIT_HOME", str(db_settings.home))
    monkeypatch.setenv("ALTCREDIT_DATABASE_URL", db_settings.resolved_database_url)
    return db_settings


def _store_jobs(settings: Settings) -> None:
    """Start a worker once so its jobs are in the job store, then stop it (the worker goes down)."""
    scheduler = build_scheduler(settings, scheduler=BackgroundScheduler())
    scheduler.start(paused=True)
    scheduler.shutdown(wait=False)


def _miss(engine: Engine, job: str, since: datetime) -> None:
    """Pretend the worker was down since ``since``: the job's next run is that long overdue."""
    with engine.begin() as connection:
        connection.execute(sa.text(f"UPDATE {JOBSTORE_TABLE} SET next_run_time = :when WHERE id = :id"),
                           {"when": since.timestamp(), "id": job})


def _wait_for_runs(ledger: Ledger, job: str, *, at_least: int, seconds: float = 20) -> list:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        runs = [run for run in ledger.history(job) if run.trigger == "schedule"]
        if len(runs) >= at_least and all(run.status != "running" for run in runs):
            return runs
        time.sleep(0.1)
    return [run for run in ledger.history(job) if run.trigger == "schedule"]


def test_a_worker_down_across_two_fire_times_runs_the_job_once(worker_env: Settings, db: Engine) -> None:
    _store_jobs(worker_env)
    _miss(db, JOB, datetime.now(UTC) - timedelta(hours=2, minutes=30))
    scheduler = build_scheduler(worker_env, scheduler=BackgroundScheduler())
    executions: list[str] = []
    scheduler.add_listener(lambda event: executions.append(event.job_id), EVENT_JOB_EXECUTED)
    scheduler.start()
    try:
        runs = _wait_for_runs(Ledger(db), JOB, at_least=1)
        time.sleep(1.0)  # room for a second, wrong, catch-up run to show itself
        runs = _wait_for_runs(Ledger(db), JOB, at_least=1)
    finally:
        scheduler.shutdown(wait=True)
    assert executions.count(JOB) == 1  # coalesced by the scheduler, not only refused by the ledger
    assert len(runs) == 1
    assert runs[0].status == SUCCEEDED
    assert runs[0].fire_key == latest_fire_time(load_schedules()[JOB], as_utc(runs[0].started_at)).isoformat(
        timespec="minutes")
    assert next_run_times(worker_env)[JOB] > datetime.now(UTC)


def test_two_workers_on_one_database_run_each_job_once(worker_env: Settings, db: Engine) -> None:
    _store_jobs(worker_env)
    _miss(db, JOB, datetime.now(UTC) - timedelta(minutes=30))
    first = build_scheduler(worker_env, scheduler=BackgroundScheduler())
    second = build_scheduler(worker_env, scheduler=BackgroundScheduler())
    first.start()
    second.start()
    try:
        _wait_for_runs(Ledger(db), JOB, at_least=1)
        time.sleep(1.5)
        runs = _wait_for_runs(Ledger(db), JOB, at_least=1)
    finally:
        first.shutdown(wait=True)
        second.shutdown(wait=True)
    assert len(runs) == 1
    assert runs[0].status == SUCCEEDED


def test_a_fire_time_is_the_latest_cron_time_not_after_now() -> None:
    schedule = load_schedules()[JOB]  # minute 17 of every hour
    now = datetime(2026, 11, 22, 10, 5, tzinfo=UTC)
    assert latest_fire_time(schedule, now) == datetime(2026, 11, 22, 9, 17, tzinfo=UTC)
    assert latest_fire_time(schedule, now.replace(minute=17)) == now.replace(minute=17)


def test_a_manual_run_is_recorded_like_a_scheduled_one(db_settings: Settings, db: Engine) -> None:
    run = run_job(db_settings, JOB)
    assert run.status == SUCCEEDED
    assert run.trigger == "manual"
    assert set(run.rows) >= {"files_before", "files_after", "rows"}
