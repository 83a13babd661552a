"""A recompute killed with SIGKILL half-way: readers keep the last complete set, the ledger
notices on the next start, and a rerun completes without duplicating history."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from config.settings import Settings
from jobs.ledger import FAILED, RUNNING, SUCCEEDED, JobRun, Ledger
from jobs.runner import run_job
from scoring.publish import current_score, list_scores, score_at
from tests.scoring.test_recompute import AS_OF, LATER, populate, register_champion

pytestmark = pytest.mark.slow


@pytest.fixture
def db(sqlite_db: Engine) -> Engine:
    """SQLite only: the publish tests prove atomicity on PostgreSQL; this one proves the process story."""
    return sqlite_db


@pytest.fixture
def scored_platform(db: Engine, settings: Settings, tmp_path: Path) -> Settings:
    """A lake of 800 simulated people, a champion, and one complete published set (AS_OF)."""
    populate(settings, tmp_path / "sim", users=800)
    register_champion(settings)
    assert run_job(settings, "recompute_scores", as_of=AS_OF).status == SUCCEEDED
    return settings


def _environment(settings: Settings) -> dict[str, str]:
    return {**os.environ, "ALTCREDIT_HOME": str(settings.home),
            "ALTCREDIT_DATABASE_URL": settings.resolved_database_url}


def _kill_when_running(process: subprocess.Popen[bytes], engine: Engine, job: str, as_of: date) -> None:
    """SIGKILL the process once its run is in the ledger and its scores are being written."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail("the recompute finished before it could be killed")
        with engine.connect() as connection:
            running = connection.execute(sa.select(sa.func.count()).select_from(JobRun.__table__).where(
                JobRun.__table__.c.job_name == job, JobRun.__table__.c.as_of == as_of,
                JobRun.__table__.c.status == RUNNING)).scalar()
            building = connection.execute(sa.text(
                "SELECT count(*) FROM score_sets WHERE as_of = :day AND status = 'building'"),
                {"day": as_of}).scalar()
        if running and building:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            return
        time.sleep(0.02)
    pytest.fail("the recompute never started writing scores")


def test_a_killed_recompute_leaves_the_last_complete_set_and_reruns_cleanly(
        scored_platform: Settings, db: Engine) -> None:
    users = [row.user_id for row in list_scores(db, as_of=AS_OF, limit=10_000)]
    before = {user: current_score(db, user) for user in users[:50]}

    process = subprocess.Popen(
        [sys.executable, "-m", "web.cli", "jobs", "run", "recompute_scores", "--as-of", LATER.isoformat()],
        env=_environment(scored_platform), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _kill_when_running(process, db, "recompute_scores", LATER)
    assert process.returncode == -signal.SIGKILL

    # Readers still see the previous complete set, and nothing of the killed one.
    for user, published in before.items():
        assert current_score(db, user) == published
        assert score_at(db, user, LATER) is None

    # The next start of anything that uses the ledger finds the dead run and marks it failed.
    history = subprocess.run([sys.executable, "-m", "web.cli", "jobs", "history", "--json"],
                             env=_environment(scored_platform), capture_output=True, text=True, check=True)
    assert '"status": "failed"' in history.stdout
    killed = Ledger(db).last_run("recompute_scores")
    assert killed.status == FAILED and "stale" in killed.error

    # A rerun completes, and history holds one row per user and date.
    assert run_job(scored_platform, "recompute_scores", as_of=LATER).status == SUCCEEDED
    with db.connect() as connection:
        per_date = dict(connection.execute(sa.text(
            "SELECT as_of, count(*) FROM score_history GROUP BY as_of")).all())
        duplicates = connection.execute(sa.text(
            "SELECT count(*) FROM (SELECT user_id, as_of FROM score_history "
            "GROUP BY user_id, as_of HAVING count(*) > 1) AS d")).scalar()
        building = connection.execute(sa.text(
            "SELECT count(*) FROM score_sets WHERE status = 'building'")).scalar()
    assert duplicates == 0 and building == 0
    assert {str(day)[:10]: count for day, count in per_date.items()} == {
        AS_OF.isoformat(): len(users), LATER.isoformat(): len(users)}
    assert all(current_score(db, user).as_of == LATER for user in users[:50])


def test_scores_recompute_runs_under_the_ledger_lock(scored_platform: Settings, db: Engine) -> None:
    ledger = Ledger(db)
    holder = ledger.start("recompute_scores", as_of=LATER, trigger="schedule", fire_key="held")
    refused = subprocess.run([sys.executable, "-m", "web.cli", "scores", "recompute", "--as-of",
                              LATER.isoformat()], env=_environment(scored_platform),
                             capture_output=True, text=True)
    assert refused.returncode == 1
    assert "already running" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert score_at(db, list_scores(db, as_of=AS_OF, limit=1)[0].user_id, LATER) is None
    ledger.finish(holder.id)
    done = subprocess.run([sys.executable, "-m", "web.cli", "scores", "recompute", "--as-of",
                           LATER.isoformat()], env=_environment(scored_platform),
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    last = ledger.last_run("recompute_scores")
    assert last.status == SUCCEEDED and last.trigger == "manual" and last.as_of == LATER
