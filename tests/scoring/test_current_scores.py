"""The bulk read of current scores agrees with the one-by-one read it replaces in batch lookups."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from sqlalchemy import Engine

from scoring.publish import (
    ScoreRecord,
    current_score,
    current_scores,
    latest_score_set,
    publish_scores,
)
from scoring.score_tables import BUILDING, ScoreHistory, ScoreSet

DAY1, DAY2 = date(2026, 1, 1), date(2026, 2, 1)


def record(user: str, score: int) -> ScoreRecord:
    return ScoreRecord(user_id=user, score=score, score_unclipped=float(score), band_code="good",
                       base_points=600.0, dimensions={"credit_history": 1.5},
                       reasons=[{"code": "CH01", "text_en": "e", "text_zh": "中", "points": -1.0}])


def test_current_scores_equal_current_score_for_every_user(db: Engine) -> None:
    publish_scores(db, as_of=DAY1, model_version="m1", snapshot_id="s1",
                   records=[record(f"u{i}", 600 + i) for i in range(5)])
    publish_scores(db, as_of=DAY2, model_version="m2", snapshot_id="s2",
                   records=[record(f"u{i}", 700 + i) for i in range(3)])
    users = [f"u{i}" for i in range(6)]
    bulk = current_scores(db, [*users, "u1"])
    assert bulk == {user: current_score(db, user) for user in users if current_score(db, user)}
    assert {user: score.score for user, score in bulk.items()} == {
        "u0": 700, "u1": 701, "u2": 702, "u3": 603, "u4": 604}


def test_current_scores_read_more_users_than_one_query_holds(db: Engine) -> None:
    publish_scores(db, as_of=DAY1, model_version="m1", snapshot_id="s1",
                   records=[record(f"u{i:04d}", 400 + i % 500) for i in range(1200)])
    bulk = current_scores(db, [f"u{i:04d}" for i in range(1300)])
    assert len(bulk) == 1200 and bulk["u1100"].score == 400 + 1100 % 500


def test_current_scores_of_nobody_is_empty(db: Engine) -> None:
    assert current_scores(db, []) == {}


def test_a_building_set_is_never_read_as_current(db: Engine) -> None:
    publish_scores(db, as_of=DAY1, model_version="m1", snapshot_id="s1", records=[record("u1", 640)])
    sets, history = ScoreSet.__table__, ScoreHistory.__table__
    with db.begin() as connection:  # a recompute of a later date, half-way through
        set_id = connection.execute(sa.insert(sets).values(
            as_of=DAY2, model_version="m2", snapshot_id="s2", status=BUILDING, created_at=sa.func.now(),
            n_scored=0, n_unscored=0).returning(sets.c.id)).scalar_one()
        connection.execute(sa.insert(history).values(
            set_id=set_id, user_id="u1", as_of=DAY2, score=900, status="scored", features={},
            dimensions={}, reasons=[], tips=[]))
    assert current_scores(db, ["u1"])["u1"].score == 640
    with db.connect() as connection:
        chosen = connection.execute(sa.select(latest_score_set(sa.literal("u1")))).scalar_one()
    assert chosen != set_id and current_score(db, "u1").as_of == DAY1  # type: ignore[union-attr]
