"""Spark renders the same plan as Polars: identical values (1e-9) on a simulated population."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

from config.settings import Settings, load_settings
from features import lake
from features.engine_polars import as_of_instant
from features.ingest import ingest_files
from features.simulate import simulate
from features.store import build_snapshot, compute_features, load_snapshot

pytestmark = pytest.mark.spark

END = date(2025, 9, 1)
AS_OF = date(2025, 7, 1)
KNOWN_AT = as_of_instant(AS_OF) + timedelta(days=20)   # late arrivals and corrections in play


@pytest.fixture(scope="module")
def spark() -> Iterator[object]:
    engine_spark = pytest.importorskip("features.engine_spark")
    session = engine_spark.spark_session("local[2]", shuffle_partitions=4)
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def simulated_lake(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("spark-population")
    summary = simulate(users=400, months=14, seed=11, out_dir=root / "sim", end=END,
                       bad_rate=0.1, chunk_users=1000)
    settings = load_settings(home=root / "home", log_format="text",
                             features_spark_master="local[2]",
                             features_spark_shuffle_partitions=4)
    ingest_files(settings, summary.event_files)
    return settings


def test_spark_and_polars_agree_on_every_feature_of_every_user(
        spark: object, simulated_lake: Settings) -> None:
    settings = simulated_lake
    events = lake.scan_events(settings, as_known_at=KNOWN_AT, watermark=lake.watermark(settings))
    polars_frame = compute_features(events, as_of=AS_OF)
    build_snapshot(settings, as_of=AS_OF, as_known_at=KNOWN_AT, engine="spark")
    spark_frame = load_snapshot(settings, AS_OF, KNOWN_AT)
    assert spark_frame.columns == polars_frame.columns
    assert spark_frame["user_id"].to_list() == polars_frame["user_id"].to_list()
    assert polars_frame.height > 300
    for name in polars_frame.columns[1:]:
        _assert_close(name, polars_frame[name], spark_frame[name])
    informative = [n for n in polars_frame.columns[1:] if polars_frame[n].drop_nulls().n_unique() > 1]
    assert len(informative) > 0.8 * (polars_frame.width - 1)


def _assert_close(name: str, expected: pl.Series, actual: pl.Series) -> None:
    assert expected.is_null().to_list() == actual.is_null().to_list(), name
    for want, got in zip(expected.drop_nulls().to_list(), actual.drop_nulls().to_list(),
                         strict=True):
        assert math.isclose(want, got, rel_tol=1e-9, abs_tol=1e-9), (name, want, got)


def test_spark_resolution_matches_the_lake(spark: object, simulated_lake: Settings) -> None:
    from features.engine_spark import read_events

    settings = simulated_lake
    mark = lake.watermark(settings)
    expected = (lake.scan_events(settings, as_known_at=KNOWN_AT, watermark=mark)
                .select("source", "event_id").collect().sort("source", "event_id"))
    resolved = read_events(spark, [Path(p) for p in lake.lake_files(settings)],  # type: ignore[arg-type]
                           as_known_at=KNOWN_AT, watermark=mark)
    actual = pl.from_arrow(resolved.select("source", "event_id").toArrow())
    assert isinstance(actual, pl.DataFrame)
    assert actual.sort("source", "event_id").equals(expected)
