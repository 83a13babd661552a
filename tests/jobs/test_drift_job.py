"""The drift monitor on real snapshots: quiet on the training population, an alarm on a
shifted one, which fails readiness and stops automatic promotion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from config.settings import Settings
from features.ingest import ingest_records
from features.store import build_snapshot, load_snapshot
from jobs.ledger import SUCCEEDED
from jobs.runner import run_job
from scoring import drift
from scoring.registry import load_champion
from scoring.retrain import propose
from tests.scoring.test_recompute import AS_OF, LATER, populate, register_champion

pytestmark = pytest.mark.slow


@pytest.fixture
def platform(settings: Settings, sqlite_db: Engine, tmp_path: Path) -> Settings:
    """300 simulated people and a champion whose training population is the snapshot as of AS_OF."""
    populate(settings, tmp_path / "sim", users=300)
    register_champion(settings)
    return settings


def _gambling_spree(settings: Settings) -> None:
    """Everyone starts gambling heavily in the month before LATER: a population that moved."""
    build_snapshot(settings, as_of=AS_OF)
    users = load_snapshot(settings, AS_OF)["user_id"].to_list()
    start = datetime.combine(AS_OF, datetime.min.time(), tzinfo=UTC)
    records = [  # reported the next day, as a furnisher backfilling its history would report them
        {"source": "casino-wallet", "event_id": f"g-{user}-{day}", "user_id": user, "kind": "payment",
         "event_time": (start + timedelta(days=day, hours=3)).isoformat(),
         "reported_at": (start + timedelta(days=day + 1)).isoformat(), "amount": "880.00",
         "currency": "CNY", "merchant_category": "gambling", "channel": "online"}
        for user in users for day in range(0, 28, 2)
    ]
    for first in range(0, len(records), settings.ingest_max_batch):
        ingest_records(settings, records[first:first + settings.ingest_max_batch])


def test_the_training_population_shows_no_drift(platform: Settings) -> None:
    run = run_job(platform, "drift_monitor", as_of=AS_OF)
    assert run.status == SUCCEEDED
    assert run.details["status"] == drift.OK
    assert drift.readiness(platform)[0]


def test_a_shifted_population_raises_the_alarm_and_blocks_promotion(
        platform: Settings) -> None:
    champion = load_champion(platform).version
    _gambling_spree(platform)
    run = run_job(platform, "drift_monitor", as_of=LATER)
    assert run.details["status"] == drift.ALARM
    assert any("gambling" in name for name in run.details["worst_features"])
    ready, detail = drift.readiness(platform)
    assert not ready and "drift alarm" in detail

    challenger = register_champion(platform)  # a newer version: the challenger
    outcome = propose(platform, challenger)
    assert not outcome.promoted
    assert "drift alarm" in outcome.reason
    assert load_champion(platform).version == champion
