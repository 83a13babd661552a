"""Run one job under the ledger: claim it, keep its heartbeat, record how it ended.

The same path serves the scheduler and ``altcredit jobs run``, so a manual run
obeys the same locks as a scheduled one and leaves the same trail.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from config.database import get_engine, upgrade
from config.settings import Settings
from jobs.ledger import JobRun, Ledger

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 30.0


# (stage, done, total) -> None: the progress convention of the operations in features/ and scoring/.
Progress = Callable[[str, int, int], None]


def _silent(_stage: str, _done: int, _total: int) -> None:
    return None


@dataclass
class JobContext:
    """What a job receives: the settings, the as-of date, and a way to report progress."""

    settings: Settings
    as_of: date
    progress: Progress = field(default=_silent)


@dataclass
class JobResult:
    rows: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


Task = Callable[[JobContext], JobResult]


class JobFailed(RuntimeError):
    """The job ran and failed; the ledger holds the error and the traceback went to the log."""

    def __init__(self, run: JobRun) -> None:
        self.run = run
        super().__init__(f"{run.job_name} failed: {run.error}")


def default_as_of(now: datetime | None = None) -> date:
    """Jobs work as of the last midnight UTC: the day that is complete."""
    return (now or datetime.now(UTC)).date()


def run_job(settings: Settings, name: str, *, as_of: date | None = None, trigger: str = "manual",
            fire_key: str | None = None,
            progress: Progress | None = None) -> JobRun:
    """Run job ``name`` now; raises RunRefused when locked, JobFailed when the job fails."""
    from jobs.tasks import TASKS

    if name not in TASKS:
        raise KeyError(f"unknown job {name!r}; known: {', '.join(sorted(TASKS))}")
    engine = get_engine(settings)
    upgrade(engine)
    ledger = Ledger(engine)
    ledger.reap_stale()
    as_of = as_of or default_as_of()
    run = ledger.start(name, as_of=as_of, trigger=trigger, fire_key=fire_key)
    logger.info("job started", extra={"job": name, "run_id": run.id, "as_of": as_of.isoformat()})
    stop = threading.Event()
    beat = threading.Thread(target=_keep_alive, args=(ledger, run.id, stop), daemon=True)
    beat.start()
    try:
        context = JobContext(settings=settings, as_of=as_of, progress=progress or _silent)
        result = TASKS[name](context)
    except Exception as exc:
        logger.error("job failed", exc_info=exc, extra={"job": name, "run_id": run.id})
        failed = ledger.fail(run.id, f"{type(exc).__name__}: {exc}",
                             details={"traceback": traceback.format_exc(limit=20)})
        raise JobFailed(failed) from exc
    finally:
        stop.set()
        beat.join(timeout=5)
    finished = ledger.finish(run.id, rows=result.rows, details=result.details)
    logger.info("job succeeded", extra={"job": name, "run_id": run.id, "rows": result.rows})
    return finished


def _keep_alive(ledger: Ledger, run_id: str, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_SECONDS):
        ledger.heartbeat(run_id)
