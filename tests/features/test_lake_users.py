"""The lake's user registry: every user numbered once, each file's rows numbered to match."""

from __future__ import annotations

import os
import shutil
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from config.settings import Settings
from features import lake, lake_users
from features.ingest import ingest_records
from features.lake_users import (
    LakeUsers,
    forget_registry,
    numbers_path,
    read_registry,
    registry_chunks,
)
from features.lake_writer import LakeWriter, compact
from features.store import SNAPSHOTS, build_snapshot, compute_features, load_snapshot
from tests.features.event_samples import population, record

AS_OF = date(2024, 6, 1)


def chunks(settings: Settings) -> list[Path]:
    root = lake.lake_dir(settings)
    return registry_chunks(root, lake.read_manifest(root).users_id)


def numbered_users(settings: Settings) -> list[list[str]]:
    """Each committed file's rows, as the users their stored numbers name (checked against
    the file's own user ids)."""
    root = lake.lake_dir(settings)
    manifest = lake.read_manifest(root)
    names = read_registry(root, manifest).to_list()
    assert len(names) == manifest.users
    assert len(names) == len(set(names)) >= manifest.users
    found = []
    for segment in manifest.segments:
        with np.load(numbers_path(root, segment.name)) as stored:
            users = [names[number] for number in stored["numbers"].tolist()]
            assert str(stored["numbering"]) == manifest.users_id
        assert users == pl.read_parquet(root / lake.EVENTS / segment.name)["user_id"].to_list()
        found.append(users)
    return found


def many(n: int, prefix: str, users: int) -> list[dict[str, object]]:
    return [record("payment", event_id=f"{prefix}{i}", user_id=f"{prefix}-u{i % users}")
            for i in range(n)]


def snapshot(settings: Settings) -> pl.DataFrame:
    """The snapshot as of D as known now (the events are ingested long after D)."""
    mark = lake.watermark(settings)
    build_snapshot(settings, as_of=AS_OF, as_known_at=mark)
    found = load_snapshot(settings, AS_OF, mark)
    assert found.height
    return found


def right(settings: Settings) -> pl.DataFrame:
    """The features of the lake's events, numbered nowhere."""
    mark = lake.watermark(settings)
    return compute_features(lake.scan_events(settings, as_known_at=mark, watermark=mark),
                            as_of=AS_OF)


def test_each_user_is_numbered_once_across_commits(settings: Settings) -> None:
    ingest_records(settings, population(40))
    ingest_records(settings, population(30, prefix="f") + many(20, "new", 4))
    assert len(numbered_users(settings)) == 2
    names = read_registry(lake.lake_dir(settings), lake.read_manifest(lake.lake_dir(settings)))
    assert names.to_list() == [f"u{i}" for i in range(7)] + [f"new-u{i}" for i in range(4)]


def test_another_process_s_users_are_seen_by_the_next_writer(settings: Settings) -> None:
    ingest_records(settings, many(10, "a", 3))
    root = lake.lake_dir(settings)
    ours = lake_users._registries[root]
    forget_registry()  # another process, with a registry of its own, commits users
    ingest_records(settings, many(10, "b", 3))
    ingest_records(settings, many(10, "c", 2))
    lake_users._registries[root] = ours  # back to this process: it reads their chunks
    ingest_records(settings, many(10, "a", 3) + many(10, "d", 2))
    assert lake_users._registries[root] is ours and ours.count == 10
    numbered_users(settings)
    forget_registry()
    ingest_records(settings, many(10, "e", 1))  # read whole, from the chunks
    numbered_users(settings)
    with LakeWriter(settings) as writer:
        assert writer.users.count == 11


def test_compaction_merges_the_registry_and_numbers_the_merged_file_to_match(settings: Settings) -> None:
    for batch in range(4):
        ingest_records(settings, many(25, f"c{batch}-", 5) + population(14, prefix=f"p{batch}"))
    before = snapshot(settings)
    assert_frame_equal(before, right(settings))
    assert len(chunks(settings)) == 4  # a chunk for each commit that brought users
    compact(settings.model_copy(update={"lake_retire_seconds": 0}))
    assert len(lake.lake_files(settings)) == 1
    assert len(chunks(settings)) == 1
    numbered_users(settings)
    shutil.rmtree(settings.path(*SNAPSHOTS))
    assert_frame_equal(snapshot(settings), before)
    ingest_records(settings, many(10, "after", 2))  # the next writer numbers on from there
    assert [len(users) for users in numbered_users(settings)] == [4 * 39, 10]


@pytest.mark.parametrize("damage", ["registry lost", "registry garbled", "registry stale"])
def test_a_damaged_registry_is_not_trusted_and_is_rebuilt(settings: Settings,
                                                          damage: str) -> None:
    ingest_records(settings, many(30, "a", 6))
    ingest_records(settings, many(30, "b", 6))
    root = lake.lake_dir(settings)
    expected = right(settings)
    first, second = chunks(settings)
    if damage == "registry lost":
        first.unlink()
    elif damage == "registry garbled":
        first.write_bytes(b"PAR1 not a registry")
    else:  # as a crash may leave it: the last chunk's rename never made durable
        second.unlink()
    forget_registry()
    assert LakeUsers.read(root, lake.read_manifest(root)) is None
    assert_frame_equal(snapshot(settings), expected)  # numbered as they come
    ingest_records(settings, many(10, "c", 2))  # the writer rebuilds registry and numbers
    assert [len(users) for users in numbered_users(settings)] == [30, 30, 10]


def test_numbers_of_a_rewritten_file_are_not_used(settings: Settings) -> None:
    ingest_records(settings, many(30, "a", 6))
    ingest_records(settings, many(30, "b", 6))
    expected = right(settings)
    first = lake.lake_files(settings)[0]
    rows = pl.read_parquet(first)
    rows.reverse().write_parquet(first)  # same rows, other order: the stored numbers lie
    os.utime(first, ns=(1, 1))
    root = lake.lake_dir(settings)
    users = LakeUsers.read(root, lake.read_manifest(root))
    assert users is not None
    segment = lake.read_manifest(root).segments[0]
    assert users.file_ranks(root, segment, 0, segment.rows) is None
    assert_frame_equal(snapshot(settings), expected)


def test_users_numbered_but_never_committed_are_not_kept(settings: Settings) -> None:
    ingest_records(settings, many(20, "a", 4))
    with LakeWriter(settings) as writer:  # as a writer that numbered users, then gave up
        writer.users.number(pl.Series(["ghost-1", "ghost-2"]))
    ingest_records(settings, many(20, "b", 4))
    numbered_users(settings)
    root = lake.lake_dir(settings)
    assert "ghost-1" not in read_registry(root, lake.read_manifest(root)).to_list()


def test_users_not_yet_known_are_in_no_snapshot(settings: Settings) -> None:
    ingest_records(settings, many(20, "a", 4))
    first = lake.watermark(settings)
    ingest_records(settings, many(20, "b", 3))  # in the registry, not known at ``first``
    assert lake.read_manifest(lake.lake_dir(settings)).users == 7
    build_snapshot(settings, as_of=AS_OF, as_known_at=first)
    found = load_snapshot(settings, AS_OF, first)
    assert found["user_id"].to_list() == [f"a-u{i}" for i in range(4)]
    events = lake.scan_events(settings, as_known_at=first, watermark=lake.watermark(settings))
    assert_frame_equal(found, compute_features(events, as_of=AS_OF))


def test_a_build_takes_each_row_s_user_from_the_stored_numbers(
        settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    ingest_records(settings, many(30, "a", 6) + population(20))
    ingest_records(settings, many(30, "b", 6))
    root = lake.lake_dir(settings)
    users = LakeUsers.read(root, lake.read_manifest(root))
    assert users is not None and users.names.is_sorted()
    for segment, path in zip(lake.read_manifest(root).segments, lake.lake_files(settings),
                             strict=True):
        ranks = users.file_ranks(root, segment, 5, 20)
        assert ranks is not None
        ids = pl.read_parquet(path)["user_id"].slice(5, 20)
        assert users.names.gather(ranks).to_list() == ids.to_list()
        assert users.ranks_of(ids).tolist() == ranks.tolist()
    assert_frame_equal(snapshot(settings), right(settings))
    assert "again" not in caplog.text  # no fallback: the lake's numbers served


def test_a_file_stored_kind_by_kind_has_its_rows_numbered_in_its_own_order(
        settings: Settings) -> None:
    batch = population(12_000) + many(3_000, "m", 500)  # every kind: rows are reordered
    ingest_records(settings.model_copy(update={"ingest_max_batch": 20_000}), batch)
    path = lake.lake_files(settings)[0]
    stored = pl.read_parquet(path)["user_id"].to_list()
    assert stored != [row["user_id"] for row in batch]  # clustered, not as sent
    assert numbered_users(settings) == [stored]


def test_with_the_lake_s_numbers_user_ids_are_read_only_with_contacts() -> None:
    """The ids are what a piece costs most to read; with numbers, only the graph needs them."""
    from features.plan import compile_plan
    from features.store import _own_columns

    plan = compile_plan()
    columns = ["user_id", "kind", "event_id", "event_time", "contact_user_id", "amount"]
    numbered = _own_columns(plan, columns, [], numbered=True)
    assert [kind for kind, names in numbered.items() if "user_id" in names] == ["contact"]
    assert not any("user_id" in names
                   for names in _own_columns(plan, columns, [], numbered=False).values())
