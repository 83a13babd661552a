"""Lake files stored kind by kind, and feature builds that read each kind's own row groups."""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from itertools import pairwise
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from config.settings import Settings, load_settings
from features import lake
from features.engine_polars import as_of_instant
from features.id_order import leading_keys
from features.ingest import ingest_files, ingest_records
from features.lake_clusters import Run, by_kind, kind_runs, stored_order
from features.lake_writer import compact
from features.simulate import simulate
from features.store import build_snapshot, compute_features, load_snapshot
from tests.features.event_samples import population

END = date(2025, 9, 1)
AS_OF = date(2025, 7, 1)
KNOWN_AT = as_of_instant(AS_OF) + timedelta(days=20)   # late arrivals and corrections in play


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A simulated population, shuffled, ingested as three files (kinds interleaved in
    each, stored kind by kind)."""
    root = tmp_path_factory.mktemp("clustered-population")
    summary = simulate(users=150, months=14, seed=5, out_dir=root / "sim", end=END,
                       bad_rate=0.1)
    events = pa.concat_tables(pq.read_table(path) for path in summary.event_files)
    events = events.take(np.random.default_rng(5).permutation(events.num_rows))
    parts = []
    for number, rows in enumerate(np.array_split(np.arange(events.num_rows), 3)):
        parts.append(root / f"part-{number}.parquet")
        pq.write_table(events.take(rows), parts[-1])
    settings = load_settings(home=root / "home", log_format="text")
    ingest_files(settings, parts)
    return settings


def copy_of(settings: Settings, home: Path, **changes: object) -> Settings:
    shutil.copytree(settings.path("lake"), home / "lake")
    return settings.model_copy(update={"home": home, **changes})


def expected_features(settings: Settings) -> object:
    events = lake.scan_events(settings, as_known_at=KNOWN_AT, watermark=lake.watermark(settings))
    return compute_features(events, as_of=AS_OF)


def test_rows_are_ordered_by_kind_then_user_and_a_users_rows_keep_their_order() -> None:
    table = pa.table({"kind": ["b", "a", "b", "c", "a", "b"],
                      "user_id": ["u2", "u9", "u1", "u5", "u3", "u2"], "n": [1, 2, 3, 4, 5, 6]})
    runs = by_kind(table)
    assert [run.to_pydict() for run in runs] == [
        {"kind": ["a", "a"], "user_id": ["u3", "u9"], "n": [5, 2]},
        {"kind": ["b", "b", "b"], "user_id": ["u1", "u2", "u2"], "n": [3, 1, 6]},
        {"kind": ["c"], "user_id": ["u5"], "n": [4]}]
    assert by_kind(table.slice(0, 0)) == []


@hsettings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["bill", "payment", "repayment"]),
                          st.text(st.characters(min_codepoint=1, exclude_categories=("Cs",)),
                                  min_size=1, max_size=12)),
                min_size=1, max_size=60))
def test_the_stored_order_is_a_stable_sort_by_kind_then_leading_id_bytes(
        rows: list[tuple[str, str]]) -> None:
    """The eight id bytes past the prefix every id shares order the users (ids alike in
    them stay in the order they came); one user's rows keep their order."""
    table = pa.table({"kind": [kind for kind, _ in rows], "user_id": [user for _, user in rows]})
    ids = [user.encode() for _, user in rows]
    low, high = min(ids), max(ids)
    shared = next((at for at, (a, b) in enumerate(zip(low, high, strict=False)) if a != b),
                  len(low))

    def key(at: int) -> tuple[str, bytes]:
        return rows[at][0], ids[at][shared:shared + 8].ljust(8, b"\0")

    order = stored_order(table).tolist()
    assert order == sorted(range(len(rows)), key=key)  # Python's sort is stable
    for a, b in pairwise(order):
        if key(a) < key(b) and rows[a][0] == rows[b][0]:
            assert ids[a] < ids[b]
    assert leading_keys(pl.Series([user for _, user in rows])).tolist() == [
        int.from_bytes(key(at)[1], "big") for at in range(len(rows))]


def test_every_ingested_file_holds_one_kind_per_row_group(simulated: Settings) -> None:
    files = lake.lake_files(simulated)
    assert len(files) == 3
    for path in files:
        runs = kind_runs(path)
        assert runs is not None and len(runs) > 10
        assert [run.kind for run in runs] == sorted({run.kind for run in runs})
        assert runs[0].start == 0 and runs[-1].stop == pq.ParquetFile(path).metadata.num_rows
        assert all(a.stop == b.start for a, b in pairwise(runs))
        kinds = pq.read_table(path, columns=["kind"]).column("kind").to_pylist()
        assert all(set(kinds[run.start:run.stop]) == {run.kind} for run in runs)


def test_a_small_batch_is_written_as_it_came(settings: Settings) -> None:
    """Split by kind, an API batch's row groups would be tiny: compaction clusters it."""
    ingest_records(settings, population(40))
    ingest_records(settings, population(40, prefix="f"))
    files = lake.lake_files(settings)
    assert [kind_runs(path) for path in files] == [None, None]
    assert pq.ParquetFile(files[0]).metadata.num_row_groups == 1
    events = lake.scan_stored(settings).collect()
    compact(settings.model_copy(update={"lake_retire_seconds": 0}))
    assert lake.scan_stored(settings).collect().sort("event_id").equals(events.sort("event_id"))


def test_a_file_whose_row_groups_mix_kinds_is_not_taken_for_clustered(tmp_path: Path) -> None:
    pq.write_table(pa.table({"kind": ["a", "b", "a"]}), tmp_path / "mixed.parquet")
    pq.write_table(pa.table({"kind": ["a", "b", "a"]}), tmp_path / "split.parquet",
                   row_group_size=1)
    assert kind_runs(tmp_path / "mixed.parquet") is None
    assert kind_runs(tmp_path / "split.parquet") is None   # kind a in two separate runs
    pq.write_table(pa.table({"kind": ["a", "a", "b"]}), tmp_path / "sorted.parquet",
                   row_group_size=1)
    assert kind_runs(tmp_path / "sorted.parquet") == [Run("a", 0, 2), Run("b", 2, 3)]


@pytest.mark.parametrize("chunk_rows", [1_000_000, 997])
def test_a_build_reading_kind_by_kind_equals_the_features_of_the_resolved_lake(
        simulated: Settings, tmp_path: Path, chunk_rows: int) -> None:
    """Pieces smaller than a file cut its kinds' runs anywhere; corrections and voids of
    every kind are resolved from the few rows they touch."""
    settings = copy_of(simulated, tmp_path / "home", features_chunk_rows=chunk_rows)
    build_snapshot(settings, as_of=AS_OF, as_known_at=KNOWN_AT)
    assert_frame_equal(load_snapshot(settings, AS_OF, KNOWN_AT), expected_features(settings),
                       check_exact=True)


def test_files_written_before_clustering_are_read_whole_with_the_same_result(
        simulated: Settings, tmp_path: Path) -> None:
    settings = copy_of(simulated, tmp_path / "home")
    files = lake.lake_files(settings)
    for path in files[::2]:   # every other file as an older lake wrote it: kinds interleaved
        table = pq.read_table(path)
        pq.write_table(table.sort_by("event_id"), path)
        assert kind_runs(path) is None
    build_snapshot(settings, as_of=AS_OF, as_known_at=KNOWN_AT)
    assert_frame_equal(load_snapshot(settings, AS_OF, KNOWN_AT), expected_features(simulated),
                       rel_tol=1e-12)


def test_compaction_stores_the_merged_rows_kind_by_kind(simulated: Settings,
                                                        tmp_path: Path) -> None:
    settings = copy_of(simulated, tmp_path / "home", lake_retire_seconds=0)
    before = len(lake.lake_files(settings))
    result = compact(settings)
    assert result.files_after < before
    assert all(kind_runs(path) is not None for path in lake.lake_files(settings))
    build_snapshot(settings, as_of=AS_OF, as_known_at=KNOWN_AT)
    assert_frame_equal(load_snapshot(settings, AS_OF, KNOWN_AT), expected_features(simulated),
                       rel_tol=1e-12)
