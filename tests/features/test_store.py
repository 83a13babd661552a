"""Offline snapshots (atomic, immutable), training frames, and the online store."""

from __future__ import annotations

import json
import shutil
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from config.feature_definitions import load_feature_definitions
from config.settings import Settings
from features import lake
from features.ingest import ingest_records
from features.online import online_entry, online_vector, publish_online
from features.store import (
    DATA_FILE,
    MANIFEST_FILE,
    SNAPSHOTS,
    FeatureStoreError,
    _in_order,
    build_snapshot,
    latest_snapshot,
    list_snapshots,
    load_snapshot,
    snapshot_dir,
    training_frame,
)
from tests.features.feature_rows import AS_OF, D, ago, definitions, record, repayment_record

LATER = date(2025, 8, 1)


@pytest.fixture
def populated(settings: Settings) -> Settings:
    ingest_records(settings, [
        repayment_record("u1", 10, 0), repayment_record("u1", 50, 31),
        repayment_record("u2", 20, 0),
        record("profile", "u3", ago(5), identity_verified=True),
        record("profile", "future", D + timedelta(days=3), identity_verified=True,
               reported_at=D + timedelta(days=3)),
        repayment_record("u2", -10, 95, reported_at=D + timedelta(days=20)),
    ])
    return settings


def snapshot_files(settings: Settings) -> list[str]:
    root = settings.path(*SNAPSHOTS)
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def test_snapshot_holds_every_user_known_by_t_with_its_manifest(populated: Settings) -> None:
    manifest = build_snapshot(populated, as_of=AS_OF)
    folder = snapshot_dir(populated, AS_OF, D)
    written = json.loads((folder / MANIFEST_FILE).read_text())
    frame = load_snapshot(populated, AS_OF)
    assert frame["user_id"].to_list() == ["u1", "u2", "u3"]
    assert frame.columns == ["user_id", *load_feature_definitions().names]
    assert manifest.row_count == 3 and written["row_count"] == 3
    assert written["definitions_hash"] == load_feature_definitions().hash
    assert written["as_of"] == "2025-07-01" and manifest.as_known_at == D
    assert manifest.event_watermark == lake.watermark(populated)
    assert manifest.engine == "polars"
    assert sorted(p.name for p in folder.iterdir()) == [DATA_FILE, MANIFEST_FILE]
    assert snapshot_files(populated) == [folder.name]


def test_a_later_knowledge_time_sees_more_users(populated: Settings) -> None:
    build_snapshot(populated, as_of=AS_OF, as_known_at=D + timedelta(days=30))
    users = load_snapshot(populated, AS_OF, D + timedelta(days=30))["user_id"].to_list()
    assert users == ["future", "u1", "u2", "u3"]


def test_snapshot_is_kept_until_the_definitions_change(populated: Settings) -> None:
    first = build_snapshot(populated, as_of=AS_OF)
    assert build_snapshot(populated, as_of=AS_OF) == first
    narrow = definitions({"name": "n", "kinds": ["repayment"], "aggregation": "count"})
    replaced = build_snapshot(populated, as_of=AS_OF, definitions=narrow)
    assert replaced.definitions_hash == narrow.hash != first.definitions_hash
    assert load_snapshot(populated, AS_OF).columns == ["user_id", "n"]
    assert len(snapshot_files(populated)) == 1


def test_snapshots_are_listed_and_the_latest_default_one_found(populated: Settings) -> None:
    build_snapshot(populated, as_of=LATER)
    build_snapshot(populated, as_of=AS_OF)
    build_snapshot(populated, as_of=AS_OF, as_known_at=D + timedelta(days=200))
    listed = [(m.as_of, m.as_known_at) for m in list_snapshots(populated)]
    assert listed == [(AS_OF, D), (AS_OF, D + timedelta(days=200)),
                      (LATER, datetime(2025, 8, 1, tzinfo=D.tzinfo))]
    latest = latest_snapshot(populated)
    assert latest is not None and latest.as_of == LATER


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"engine": "duckdb"}, "unknown engine 'duckdb'"),
    ({"as_known_at": datetime(2025, 7, 1)}, "as_known_at must carry a time zone"),
])
def test_bad_build_requests_are_refused_and_write_nothing(populated: Settings, kwargs: dict,
                                                          message: str) -> None:
    with pytest.raises(FeatureStoreError, match=message):
        build_snapshot(populated, as_of=AS_OF, **kwargs)
    assert snapshot_files(populated) == []


def test_an_empty_lake_is_refused(settings: Settings) -> None:
    with pytest.raises(FeatureStoreError, match="the event lake is empty"):
        build_snapshot(settings, as_of=AS_OF)
    assert snapshot_files(settings) == []


def test_loading_a_missing_snapshot_says_how_to_build_it(settings: Settings) -> None:
    with pytest.raises(FeatureStoreError, match=r"no feature snapshot as of 2025-07-01.*features build"):
        load_snapshot(settings, AS_OF)


# -- training frames -------------------------------------------------------------------


def test_training_frame_joins_each_as_of_date_with_its_own_labels(populated: Settings) -> None:
    labels = pl.DataFrame({"user_id": ["u1", "u2", "u1", "nobody"],
                           "as_of": [AS_OF, AS_OF, LATER, AS_OF], "bad": [0, 1, 1, 0]})
    frame = training_frame(populated, [LATER, AS_OF], labels)
    assert frame.select("user_id", "as_of", "bad").rows() == [
        ("u1", AS_OF, 0), ("u2", AS_OF, 1), ("u1", LATER, 1)]
    u2 = frame.filter(pl.col("user_id") == "u2")
    assert u2["repay_late90_count_all"].item() == 0.0
    assert frame.columns[:2] == ["user_id", "as_of"] and frame.columns[-1] == "bad"


@pytest.mark.parametrize(("labels", "message"), [
    (pl.DataFrame({"user_id": ["u1"], "as_of": [AS_OF]}), "labels lack column\\(s\\): bad"),
    (pl.DataFrame({"user_id": ["u1"], "as_of": ["2025-07-01"], "bad": [1]}),
     "labels.as_of must be a date"),
])
def test_training_frame_refuses_bad_labels_and_builds_nothing(
        populated: Settings, labels: pl.DataFrame, message: str) -> None:
    with pytest.raises(FeatureStoreError, match=message):
        training_frame(populated, [AS_OF], labels)
    assert snapshot_files(populated) == []


# -- online store -----------------------------------------------------------------------


def test_online_store_serves_the_published_vector(db: Engine, db_settings: Settings) -> None:
    ingest_records(db_settings, [repayment_record("u1", 10, 0), repayment_record("u2", 5, 40)])
    manifest = build_snapshot(db_settings, as_of=AS_OF)
    assert publish_online(db_settings, manifest) == 2
    vector = online_vector(db_settings, "u2")
    assert vector is not None and vector["repay_days_late_max_90d"] == 40.0
    assert list(vector) == load_feature_definitions().names
    assert vector["balance_latest"] is None
    entry = online_entry(db_settings, "u2")
    assert entry is not None and entry.definitions_hash == manifest.definitions_hash
    assert online_vector(db_settings, "stranger") is None


def test_publishing_replaces_every_vector_at_once(db: Engine, db_settings: Settings) -> None:
    ingest_records(db_settings, [repayment_record("u1", 10, 0)])
    publish_online(db_settings, build_snapshot(db_settings, as_of=AS_OF))
    ingest_records(db_settings, [repayment_record("u2", 10, 0)])
    narrow = definitions({"name": "n", "kinds": ["repayment"], "aggregation": "count"})
    publish_online(db_settings, build_snapshot(db_settings, as_of=LATER, definitions=narrow))
    assert online_vector(db_settings, "u1") == {"n": 1.0}
    assert online_vector(db_settings, "u2") == {"n": 1.0}
    entry = online_entry(db_settings, "u1")
    assert entry is not None and entry.as_of == LATER


def test_a_failed_publish_leaves_the_previous_vectors(db: Engine, db_settings: Settings) -> None:
    ingest_records(db_settings, [repayment_record("u1", 10, 0)])
    good = build_snapshot(db_settings, as_of=AS_OF)
    publish_online(db_settings, good)
    broken = build_snapshot(db_settings, as_of=LATER)
    path = snapshot_dir(db_settings, LATER, datetime(2025, 8, 1, tzinfo=D.tzinfo)) / DATA_FILE
    frame = pl.read_parquet(path)
    pl.concat([frame, frame]).write_parquet(path)   # the same user twice: the insert must fail
    with pytest.raises(IntegrityError):
        publish_online(db_settings, broken)
    entry = online_entry(db_settings, "u1")
    assert entry is not None and entry.as_of == AS_OF


def test_reading_the_lake_in_small_pieces_gives_the_same_snapshot(populated: Settings,
                                                                  tmp_path: Path) -> None:
    """Pieces are read and cut into parts on threads, then kept in the lake's order:
    pieces of two rows give what one piece gives."""
    whole = build_snapshot(populated, as_of=AS_OF)
    small = populated.model_copy(update={"features_chunk_rows": 2, "home": tmp_path / "pieces"})
    shutil.copytree(populated.path("lake"), tmp_path / "pieces" / "lake")
    pieces = build_snapshot(small, as_of=AS_OF)
    assert load_snapshot(small, AS_OF).equals(load_snapshot(populated, AS_OF))
    assert pieces.row_count == whole.row_count


def test_pieces_read_on_threads_come_out_in_order() -> None:
    def work(item: int) -> int:
        time.sleep(0.01 * (item % 3))  # later items often finish first
        return item * 10

    assert list(_in_order(work, range(12), workers=3)) == [item * 10 for item in range(12)]


def test_an_error_while_reading_ahead_reaches_the_caller() -> None:
    def work(item: int) -> int:
        if item == 2:
            raise OSError("lake file unreadable")
        return item

    seen = []
    with pytest.raises(OSError, match="unreadable"):
        for piece in _in_order(work, range(5), workers=2):
            seen.append(piece)
    assert seen == [0, 1]
