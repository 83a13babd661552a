"""The job-run ledger: every run of every job, and the lock that keeps runs single.

Two database constraints do the locking, so that correctness never rests on
hope or on one process's memory:

* a partial unique index on ``(job_name, as_of_key)`` among *running* rows:
  at most one run per job and as-of date is running at any time, whichever
  worker or terminal started it;
* a unique index on ``(job_name, fire_key)``: a scheduled fire time is claimed
  by exactly one worker, so two workers started by mistake run each job once.

A run whose process died (kill -9, power cut) stays ``running`` in the table;
:meth:`Ledger.reap_stale` finds it — its process is gone from this host, or
its heartbeat stopped — and marks it failed, which frees the lock.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import JSON, Column, Field, Index, SQLModel, select, text

from config.database import session_scope

logger = logging.getLogger(__name__)

RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"
NO_AS_OF = "-"


class JobRun(SQLModel, table=True):
    __tablename__ = "job_runs"
    __table_args__ = (
        Index("ix_job_runs_one_running", "job_name", "as_of_key", unique=True,
              sqlite_where=text("status = 'running'"), postgresql_where=text("status = 'running'")),
        Index("ix_job_runs_fire_key", "job_name", "fire_key", unique=True),
        Index("ix_job_runs_job_started", "job_name", "started_at"),
    )

    id: str = Field(primary_key=True, max_length=32)
    job_name: str = Field(max_length=64)
    as_of: date | None = None
    as_of_key: str = Field(max_length=32)
    trigger: str = Field(max_length=16)
    fire_key: str | None = Field(default=None, max_length=64)
    status: str = Field(max_length=16)
    host: str = Field(max_length=255)
    pid: int
    started_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    heartbeat_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    finished_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    rows: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    error: str | None = Field(default=None, sa_type=sa.Text)

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (as_utc(self.finished_at) - as_utc(self.started_at)).total_seconds()


class RunRefused(RuntimeError):
    """The run may not start: one is already running, or this fire time was already claimed."""


class Ledger:
    """Start, finish and look up job runs in the application database."""

    def __init__(self, engine: Engine, *, stale_after: timedelta = timedelta(minutes=10)) -> None:
        self.engine = engine
        self.stale_after = stale_after

    def start(self, job_name: str, *, as_of: date | None, trigger: str,
              fire_key: str | None = None) -> JobRun:
        """Record a run as running, or raise :class:`RunRefused` if the locks say no."""
        now = _now()
        run = JobRun(
            id=uuid.uuid4().hex, job_name=job_name, as_of=as_of,
            as_of_key=as_of.isoformat() if as_of else NO_AS_OF, trigger=trigger, fire_key=fire_key,
            status=RUNNING, host=socket.gethostname(), pid=os.getpid(), started_at=now, heartbeat_at=now,
        )
        try:
            with session_scope(self.engine) as session:
                session.add(run)
        except IntegrityError:
            reason = (f"{job_name} already ran for {fire_key}" if fire_key and self._fired(job_name, fire_key)
                      else f"{job_name} is already running for as-of {run.as_of_key}")
            raise RunRefused(reason) from None
        return run

    def heartbeat(self, run_id: str) -> None:
        with session_scope(self.engine) as session:
            session.execute(sa.update(JobRun).where(JobRun.id == run_id, JobRun.status == RUNNING)
                            .values(heartbeat_at=_now()))

    def finish(self, run_id: str, *, rows: dict[str, Any] | None = None,
               details: dict[str, Any] | None = None) -> JobRun:
        return self._close(run_id, SUCCEEDED, rows=rows or {}, details=details or {}, error=None)

    def fail(self, run_id: str, error: str, *, details: dict[str, Any] | None = None) -> JobRun:
        return self._close(run_id, FAILED, rows={}, details=details or {}, error=error)

    def _close(self, run_id: str, status: str, *, rows: dict[str, Any], details: dict[str, Any],
               error: str | None) -> JobRun:
        with session_scope(self.engine) as session:
            run = session.get(JobRun, run_id)
            if run is None:
                raise KeyError(run_id)
            run.status, run.finished_at, run.error = status, _now(), error
            run.rows, run.details = rows, details
            session.add(run)
        return run

    def reap_stale(self) -> list[JobRun]:
        """Mark failed every running run whose process is gone; returns those runs."""
        host, now = socket.gethostname(), _now()
        reaped = []
        with session_scope(self.engine) as session:
            for run in session.exec(select(JobRun).where(JobRun.status == RUNNING)):
                dead_here = run.host == host and not _alive(run.pid)
                silent = now - as_utc(run.heartbeat_at) > self.stale_after
                if not (dead_here or silent):
                    continue
                run.status, run.finished_at = FAILED, now
                run.error = "stale: the process running it stopped before it finished"
                session.add(run)
                reaped.append(run)
        for run in reaped:
            logger.warning("marked stale run failed", extra={"job": run.job_name, "run_id": run.id})
        return reaped

    def history(self, job_name: str | None = None, *, limit: int = 50) -> list[JobRun]:
        query = select(JobRun).order_by(JobRun.started_at.desc()).limit(limit)  # type: ignore[attr-defined]
        if job_name:
            query = query.where(JobRun.job_name == job_name)
        with session_scope(self.engine) as session:
            return list(session.exec(query))

    def last_run(self, job_name: str) -> JobRun | None:
        runs = self.history(job_name, limit=1)
        return runs[0] if runs else None

    def last_success(self, job_name: str) -> JobRun | None:
        return self._last_finished(job_name, JobRun.status == SUCCEEDED)

    def last_finished(self, job_name: str) -> JobRun | None:
        return self._last_finished(job_name, JobRun.finished_at.is_not(None))  # type: ignore[union-attr]

    def _last_finished(self, job_name: str, condition: Any) -> JobRun | None:
        query = (select(JobRun).where(JobRun.job_name == job_name, condition)
                 .order_by(JobRun.finished_at.desc()).limit(1))  # type: ignore[union-attr]
        with session_scope(self.engine) as session:
            return session.exec(query).first()

    def _fired(self, job_name: str, fire_key: str) -> bool:
        query = select(JobRun.id).where(JobRun.job_name == job_name, JobRun.fire_key == fire_key)
        with session_scope(self.engine) as session:
            return session.exec(query).first() is not None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _now() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """SQLite returns naive datetimes; everything stored here is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
