from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from config.feature_definitions import load_feature_definitions
from config.scorecard import load_scorecard
from config.settings import Settings
from features.ingest import ingest_files
from features.simulate import simulate
from features.store import load_snapshot
from scoring import registry
from scoring.artefacts import Calibration, VersionMeta, new_version_id
from scoring.explanations import explain_since, explanation_document
from scoring.publish import current_score, list_scores, score_at
from scoring.recompute import RecomputeError, recompute
from tests.scoring.explain_models import train_model

END = date(2026, 1, 1)
AS_OF, LATER = date(2025, 11, 1), date(2025, 12, 1)


def populate(settings: Settings, folder: Path, users: int = 250) -> None:
    """A small simulated population in the lake."""
    simulate(users=users, months=14, seed=3, out_dir=folder, end=END, bad_rate=0.05,
             chunk_users=users)
    ingest_files(settings, sorted(p for p in folder.glob("*.parquet") if "truth" not in p.name))


def register_champion(settings: Settings, *, b: float = 0.0) -> str:
    model = train_model(seed=5, n=1500, trees=30, depth=3, a=1.0, b=b)
    created = datetime.now(UTC)
    meta = VersionMeta(
        version=new_version_id(created), created_at=created, data_watermark=created,
        definitions_hash=load_feature_definitions().hash, engine="polars",
        feature_names=list(model.feature_names), categories={}, monotone={}, params={},
        n_rounds=30, calibration=Calibration(a=model.a, b=model.b),
        scale=load_scorecard().scale, train_as_of=[AS_OF], holdout_as_of=LATER,
        metrics={"auc": 0.7},
    )
    holdout = pl.DataFrame({"user_id": ["x"], "bad": [0], "margin": [0.0], "score": [600.0]})
    return registry.register(settings, meta, model.booster, holdout).id


@pytest.fixture
def champion(db: Engine, db_settings: Settings, tmp_path: Path) -> str:
    populate(db_settings, tmp_path / "sim")
    return register_champion(db_settings)


def test_recompute_publishes_every_user_with_an_explanation_that_adds_up(
        db: Engine, db_settings: Settings, champion: str) -> None:
    stages: list[str] = []
    summary = recompute(db_settings, as_of=AS_OF, progress=lambda stage, *_: stages.append(stage))
    users = load_snapshot(db_settings, AS_OF).height
    assert summary.n_users == users == summary.n_scored + summary.n_unscored
    assert summary.model_version == champion and summary.snapshot_id.startswith("asof-2025-11-01")
    assert {"features", "scores"} <= set(stages)
    published = list_scores(db, as_of=AS_OF, limit=10_000)
    assert len(published) == users
    scored = [score for score in published if score.score is not None]
    assert scored
    for score in scored[:50]:
        assert score.base_points is not None and score.score_unclipped is not None
        assert score.base_points + sum(score.features.values()) == pytest.approx(
            score.score_unclipped, abs=1e-6)
        assert score.base_points + sum(score.dimensions.values()) == pytest.approx(
            score.score_unclipped, abs=1e-6)
        assert 1 <= len(score.reasons) <= 4 and len(score.tips) <= 3
    for score in published:
        if score.score is None:
            assert score.reason == "insufficient_data"


def test_rerunning_a_date_replaces_it_and_changes_are_explained(
        db: Engine, db_settings: Settings, champion: str) -> None:
    recompute(db_settings, as_of=AS_OF)
    recompute(db_settings, as_of=LATER)
    recompute(db_settings, as_of=AS_OF)
    with db.connect() as connection:
        rows = connection.execute(sa.text(
            "SELECT count(*) FROM score_history GROUP BY user_id, as_of HAVING count(*) > 1")).all()
    assert rows == []
    user = next(s.user_id for s in list_scores(db, as_of=LATER, limit=10_000)
                if s.score is not None and (old := score_at(db, s.user_id, AS_OF)) is not None
                and old.score is not None)
    change = explain_since(db, user, AS_OF, LATER)
    before, after = score_at(db, user, AS_OF), score_at(db, user, LATER)
    assert before is not None and after is not None
    assert change.base_points + sum(change.features.values()) == pytest.approx(
        after.score_unclipped - before.score_unclipped, abs=1e-6)
    document = explanation_document(after, change)
    assert document["change"]["difference"] == after.score - before.score
    assert current_score(db, user).as_of == LATER  # type: ignore[union-attr]


def test_recompute_without_a_champion_is_refused_and_publishes_nothing(
        db: Engine, db_settings: Settings) -> None:
    with pytest.raises(RecomputeError, match="no champion model yet"):
        recompute(db_settings, as_of=AS_OF)
    assert list_scores(db) == []


def test_recompute_on_an_empty_lake_is_refused_and_publishes_nothing(
        db: Engine, db_settings: Settings) -> None:
    register_champion(db_settings)
    with pytest.raises(RecomputeError, match="the event lake is empty"):
        recompute(db_settings, as_of=AS_OF)
    assert list_scores(db) == []
