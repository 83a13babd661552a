from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from scoring.publish import (
    PublishedScore,
    ScoreRecord,
    current_score,
    latest_published_as_of,
    list_score_sets,
    list_scores,
    publish_scores,
    score_at,
    score_history,
)

DAY1, DAY2 = date(2026, 1, 1), date(2026, 2, 1)


def record(user: str, score: int, **extra: object) -> ScoreRecord:
    fields: dict[str, object] = {
        "user_id": user, "score": score, "score_unclipped": score + 0.25, "band_code": "good",
        "base_points": 600.0, "features": {"repay_count_90d": score - 600.25},
        "dimensions": {"credit_history": score - 600.25},
        "reasons": [{"code": "CH01", "text_en": "e", "text_zh": "中", "points": -1.0}],
        "tips": [{"feature": "repay_ontime_share_365d", "from": 0.5, "to": 0.9, "points": 3.0,
                  "text_en": "e", "text_zh": "中"}],
    }
    fields.update(extra)
    return ScoreRecord(**fields)  # type: ignore[arg-type]


def publish(engine: Engine, as_of: date, records: list[ScoreRecord] | Iterator[ScoreRecord],
            model: str = "m1"):
    return publish_scores(engine, as_of=as_of, model_version=model, snapshot_id=f"snap-{as_of}",
                          records=records)


def history_rows(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(sa.text("SELECT count(*) FROM score_history")).scalar_one()


def test_published_scores_read_back_with_their_explanation(db: Engine) -> None:
    summary = publish(db, DAY1, [record("u1", 640), record("u2", 700)])
    assert (summary.status, summary.n_scored, summary.n_unscored) == ("published", 2, 0)
    score = current_score(db, "u1")
    assert isinstance(score, PublishedScore)
    assert (score.score, score.as_of, score.model_version, score.snapshot_id) == (
        640, DAY1, "m1", "snap-2026-01-01")
    assert score.features == {"repay_count_90d": pytest.approx(39.75)}
    assert score.reasons[0]["text_zh"] == "中" and score.tips[0]["to"] == 0.9
    assert score.clipped is False and score.status == "scored"
    assert current_score(db, "nobody") is None


def test_rerunning_an_as_of_replaces_it_without_duplicating_history(db: Engine) -> None:
    publish(db, DAY1, [record("u1", 640), record("u2", 700)])
    publish(db, DAY2, [record("u1", 650)])
    summary = publish(db, DAY1, [record("u1", 645), record("u2", 701)], model="m2")
    assert summary.superseded is not None
    assert history_rows(db) == 3
    assert [(s.as_of, s.score) for s in score_history(db, "u1")] == [(DAY1, 645), (DAY2, 650)]
    assert score_at(db, "u2", DAY1).model_version == "m2"  # type: ignore[union-attr]
    assert [s.status for s in list_score_sets(db)] == ["published", "published", "superseded"]


def test_readers_see_the_old_set_until_the_new_one_is_published(db: Engine) -> None:
    publish(db, DAY1, [record(f"u{i}", 600 + i) for i in range(10)])
    seen_while_building: list[int | None] = []

    def slow_records() -> Iterator[ScoreRecord]:
        for i in range(10):
            yield record(f"u{i}", 800 + i)
            if i == 9:
                current = current_score(db, "u0")
                seen_while_building.append(current.score if current else None)
                seen_while_building.append(len(list_scores(db, as_of=DAY1, limit=100)))

    publish(db, DAY1, slow_records())
    assert seen_while_building == [600, 10]
    assert current_score(db, "u0").score == 800  # type: ignore[union-attr]


def test_a_failed_publish_changes_nothing_readers_see(db: Engine) -> None:
    publish(db, DAY1, [record("u1", 640)])

    def failing() -> Iterator[ScoreRecord]:
        yield record("u1", 900)
        raise RuntimeError("killed half-way")

    with pytest.raises(RuntimeError, match="killed half-way"):
        publish(db, DAY1, failing())
    with pytest.raises(ValueError, match="user u2 appears twice in one score set"):
        publish(db, DAY1, [record("u2", 700), record("u2", 701)])
    assert current_score(db, "u1").score == 640  # type: ignore[union-attr]
    assert current_score(db, "u2") is None
    assert history_rows(db) == 1
    assert [s.status for s in list_score_sets(db)] == ["published"]


def test_a_set_left_building_by_a_killed_run_is_discarded_by_the_next(db: Engine) -> None:
    with db.begin() as connection:
        set_id = connection.execute(sa.text(
            "INSERT INTO score_sets (as_of, model_version, snapshot_id, status, created_at, "
            "n_scored, n_unscored) VALUES (:d, 'm0', 's0', 'building', :t, 0, 0) RETURNING id"),
            {"d": DAY1, "t": datetime.now(UTC)}).scalar_one()
        connection.execute(sa.text(
            "INSERT INTO score_history (set_id, user_id, as_of, features, dimensions, reasons, "
            "tips, status, score) VALUES (:s, 'u9', :d, '{}', '{}', '[]', '[]', 'scored', 999)"),
            {"s": set_id, "d": DAY1})
    assert current_score(db, "u9") is None
    publish(db, DAY1, [record("u1", 640)])
    assert history_rows(db) == 1
    assert [s.status for s in list_score_sets(db)] == ["published"]


def test_unscored_users_keep_their_reason(db: Engine) -> None:
    publish(db, DAY1, [record("u1", 640), ScoreRecord(
        user_id="u2", score=None, score_unclipped=None, band_code=None, base_points=None,
        status="insufficient_data", reason="insufficient_data")])
    unscored = current_score(db, "u2")
    assert unscored is not None
    assert (unscored.score, unscored.status, unscored.reason) == (None, "insufficient_data",
                                                                  "insufficient_data")
    assert list_score_sets(db)[0].n_unscored == 1


def test_a_clipped_score_is_marked(db: Engine) -> None:
    publish(db, DAY1, [record("u1", 950, score_unclipped=987.6)])
    assert current_score(db, "u1").clipped is True  # type: ignore[union-attr]


def test_listing_and_the_latest_date(db: Engine) -> None:
    assert latest_published_as_of(db) is None and list_scores(db) == []
    publish(db, DAY1, [record("b", 640), record("a", 650)])
    publish(db, DAY2, [record("c", 660)])
    assert latest_published_as_of(db) == DAY2
    assert [s.user_id for s in list_scores(db)] == ["c"]
    assert [s.user_id for s in list_scores(db, as_of=DAY1, limit=1)] == ["a"]
    with pytest.raises(ValueError, match="limit must be at least 1"):
        list_scores(db, limit=0)


def test_bad_records_are_refused_before_anything_is_written(db: Engine) -> None:
    with pytest.raises(ValueError, match="a scored row has a score"):
        ScoreRecord(user_id="u1", score=None, score_unclipped=600.0, band_code="good",
                    base_points=600.0)
    with pytest.raises(ValueError, match="needs the reason"):
        ScoreRecord(user_id="u", score=None, score_unclipped=None, band_code=None,
                    base_points=None, status="insufficient_data")
    with pytest.raises(ValueError, match="model_version and snapshot_id are required"):
        publish_scores(db, as_of=DAY1, model_version="", snapshot_id="s", records=[])
    assert history_rows(db) == 0 and list_score_sets(db) == []
