"""The scheduler worker: one APScheduler process with its job store in the app database.

Jobs are added at start with explicit ids and ``replace_existing=True``, so
restarting the worker (or changing config/schedules.toml) never duplicates
them. ``coalesce`` and ``misfire_grace_time`` come from the schedules, sized
for batch work: a worker that was down across several fire times catches up
once. A second worker started by mistake is harmless: every scheduled run
first claims its fire time in the ledger, and only one claim can succeed.
Web processes never build a scheduler.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from config.database import get_engine, upgrade
from config.schedules import JobSchedule, load_schedules
from config.settings import Settings, load_settings
from jobs.ledger import RunRefused
from jobs.runner import JobFailed, run_job

logger = logging.getLogger(__name__)

JOBSTORE_TABLE = "apscheduler_jobs"


def build_scheduler(settings: Settings, *, scheduler: BaseScheduler | None = None) -> BaseScheduler:
    """A scheduler (blocking unless one is given) with every configured job added."""
    engine = get_engine(settings)
    upgrade(engine)
    scheduler = scheduler or BlockingScheduler(timezone=UTC)
    scheduler.configure(
        jobstores={"default": SQLAlchemyJobStore(engine=engine, tablename=JOBSTORE_TABLE)},
        timezone=UTC,
    )
    missed = _missed_runs(settings)
    for schedule in load_schedules().values():
        # Replacing a stored job would recompute its next run from now and silently drop
        # a run missed while the worker was down; keep a missed time so it is caught up
        # (once, when coalescing) if it is still within the misfire grace.
        timing = {"next_run_time": missed[schedule.name]} if schedule.name in missed else {}
        scheduler.add_job(
            run_scheduled, trigger=schedule.trigger(), args=[schedule.name], id=schedule.name,
            name=schedule.description_en, replace_existing=True, max_instances=1,
            misfire_grace_time=schedule.misfire_grace_seconds, coalesce=schedule.coalesce, **timing,
        )
    return scheduler


def _missed_runs(settings: Settings) -> dict[str, datetime]:
    now = datetime.now(UTC)
    return {name: when for name, when in _stored_next_runs(settings).items() if when <= now}


def run_scheduled(job_name: str) -> None:
    """The scheduler's entry point: claim this fire time, then run the job under the ledger."""
    settings = load_settings()
    schedule = load_schedules()[job_name]
    fired = latest_fire_time(schedule, datetime.now(UTC))
    fire_key = fired.isoformat(timespec="minutes")
    try:
        run_job(settings, job_name, as_of=fired.date(), trigger="schedule", fire_key=fire_key)
    except RunRefused as exc:
        logger.info("scheduled run skipped", extra={"job": job_name, "reason": str(exc)})
    except JobFailed as exc:
        logger.error("scheduled run failed", extra={"job": job_name, "error": str(exc)})


def latest_fire_time(schedule: JobSchedule, now: datetime) -> datetime:
    """The most recent time at or before ``now`` that the schedule fires: the run's identity.

    Every worker that wakes for the same fire time computes the same value, and a
    worker catching up after downtime (coalesced) names the latest missed time.
    """
    trigger = schedule.trigger()
    horizon = now - timedelta(days=32)
    fired = None
    candidate = trigger.get_next_fire_time(None, horizon)
    while candidate is not None and candidate <= now:
        fired = candidate
        candidate = trigger.get_next_fire_time(candidate, candidate + timedelta(seconds=1))
    if fired is None:
        raise ValueError(f"{schedule.name} has not fired in the last 32 days before {now}")
    return fired


def next_run_times(settings: Settings) -> dict[str, datetime | None]:
    """Each job's next run as the worker's job store has it, else as its schedule says.

    Read with plain SQL: unpickling the store's jobs outside a scheduler could make
    APScheduler drop a job it fails to restore, and a listing must change nothing.
    """
    stored = _stored_next_runs(settings)
    now = datetime.now(UTC)
    return {name: stored.get(name) or schedule.trigger().get_next_fire_time(None, now)
            for name, schedule in load_schedules().items()}


def _stored_next_runs(settings: Settings) -> dict[str, datetime]:
    engine = get_engine(settings)
    if not sa.inspect(engine).has_table(JOBSTORE_TABLE):
        return {}
    with engine.connect() as connection:
        rows = connection.execute(sa.text(f"SELECT id, next_run_time FROM {JOBSTORE_TABLE}"))
        return {row.id: datetime.fromtimestamp(row.next_run_time, UTC)
                for row in rows if row.next_run_time is not None}
