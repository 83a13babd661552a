"""The lake: point-in-time resolution, watermarks, atomic commits, crash leftovers, compaction."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from config.settings import Settings, load_settings
from features.events import LAKE_SCHEMA
from features.ingest import ingest_records
from features.lake import (
    EVENTS,
    KEYS,
    MANIFEST,
    TMP,
    empty_events,
    lake_dir,
    lake_files,
    resolve,
    scan_events,
    scan_stored,
    watermark,
)
from features.lake_keys import Fingerprints, KeyIndex, forget_known_keys, key_path
from features.lake_stats import lake_stats
from features.lake_writer import compact, segment_name
from tests.features.event_samples import correction, population, record, void

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def _at(days: float) -> str:
    return (T0 + timedelta(days=days)).isoformat()


def _ids(frame: pl.LazyFrame | pl.DataFrame) -> list[str]:
    collected = frame.collect() if isinstance(frame, pl.LazyFrame) else frame
    return sorted(collected.get_column("event_id").to_list())


def _snapshot(settings: Settings, **kwargs: Any) -> list[tuple[Any, ...]]:
    frame = scan_events(settings, **kwargs).collect()
    return sorted(frame.select(sorted(frame.columns)).rows(), key=repr)


def test_an_empty_lake_scans_to_no_rows_with_the_lake_columns(settings: Settings) -> None:
    frame = scan_events(settings).collect()
    assert frame.height == 0
    assert frame.columns == LAKE_SCHEMA.names
    assert watermark(settings) is None
    assert lake_files(settings) == []


def test_an_event_is_invisible_before_it_was_reported(settings: Settings) -> None:
    late = record("repayment", event_id="late", event_time=_at(0), reported_at=_at(30))
    prompt = record("repayment", event_id="prompt", event_time=_at(0), reported_at=_at(1))
    ingest_records(settings, [late, prompt])
    assert _ids(scan_events(settings, as_known_at=T0 + timedelta(days=10))) == ["prompt"]
    assert _ids(scan_events(settings, as_known_at=T0 + timedelta(days=31))) == ["late", "prompt"]


def test_known_at_is_never_later_than_ingested_at(settings: Settings) -> None:
    future = (datetime.now(UTC) + timedelta(days=400)).isoformat()
    ingest_records(settings, [record("payment", reported_at=future)])
    row = scan_stored(settings).collect().row(0, named=True)
    assert row["known_at"] == row["ingested_at"]


def test_an_unreported_event_is_known_when_ingested(settings: Settings) -> None:
    ingest_records(settings, [record("payment")])
    row = scan_stored(settings).collect().row(0, named=True)
    assert row["known_at"] == row["ingested_at"] == watermark(settings)


def test_days_late_is_derived_from_the_dates(settings: Settings) -> None:
    ingest_records(settings, [
        record("repayment", event_id="late", due_date="2024-04-01", paid_date="2024-04-11"),
        record("repayment", event_id="early", due_date="2024-04-01", paid_date="2024-03-20"),
        record("bill_payment", event_id="bp", due_date="2024-03-15", paid_date="2024-03-19"),
        record("payment", event_id="p"),
    ])
    rows = dict(scan_stored(settings).select("event_id", "days_late").collect().rows())
    assert rows == {"late": 10, "early": 0, "bp": 4, "p": None}


def test_a_correction_replaces_the_original_once_it_is_known(settings: Settings) -> None:
    original = record("repayment", event_id="r1", reported_at=_at(1), paid_date="2024-04-20")
    fixed = correction(original, "r1-fix", reported_at=_at(5), paid_date="2024-03-30")
    ingest_records(settings, [original, fixed])
    before = scan_events(settings, as_known_at=T0 + timedelta(days=3)).collect()
    after = scan_events(settings, as_known_at=T0 + timedelta(days=6)).collect()
    assert before.select("event_id", "days_late").rows() == [("r1", 19)]
    assert after.select("event_id", "corrects", "days_late").rows() == [("r1-fix", "r1", 0)]


def test_a_void_retracts_the_original_once_it_is_known(settings: Settings) -> None:
    original = record("default", event_id="d1", reported_at=_at(1))
    ingest_records(settings, [original, void(original, "d1-void", reported_at=_at(4))])
    assert _ids(scan_events(settings, as_known_at=T0 + timedelta(days=2))) == ["d1"]
    assert _ids(scan_events(settings, as_known_at=T0 + timedelta(days=5))) == []
    assert _ids(scan_events(settings)) == []


def test_a_correction_of_another_source_does_not_touch_the_event(settings: Settings) -> None:
    original = record("payment", event_id="p1", source="wallet")
    other = void({**original, "source": "bank"}, "v1")
    ingest_records(settings, [original, other])
    assert _ids(scan_events(settings)) == ["p1"]


def test_same_known_at_the_later_ingest_wins(settings: Settings) -> None:
    original = record("repayment", event_id="r1", reported_at=_at(1), paid_date="2024-04-20")
    ingest_records(settings, [original])
    ingest_records(settings, [correction(original, "r1-fix", paid_date="2024-03-30",
                                         reported_at=_at(1))])
    assert _ids(scan_events(settings)) == ["r1-fix"]


def test_the_watermark_hides_everything_ingested_after_it(settings: Settings) -> None:
    first = population(20, prefix="a")
    ingest_records(settings, first)
    mark = watermark(settings)
    assert mark is not None
    before = _snapshot(settings, watermark=mark)
    original = first[0]
    ingest_records(settings, [*population(10, prefix="b"), void(original, "a0-void")])
    assert _snapshot(settings, watermark=mark) == before
    assert len(_snapshot(settings)) == 20 + 10 - 1
    assert watermark(settings) > mark  # type: ignore[operator]


def test_naive_times_are_refused_by_the_scan(settings: Settings) -> None:
    with pytest.raises(ValueError, match="as_known_at must be timezone-aware"):
        scan_events(settings, as_known_at=datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="watermark must be timezone-aware"):
        scan_events(settings, watermark=datetime(2024, 1, 1))


def test_files_a_crashed_writer_left_do_not_count_and_are_removed(settings: Settings) -> None:
    ingest_records(settings, population(5))
    root = lake_dir(settings)
    number = json.loads((root / MANIFEST).read_text())["next_segment"]
    first = lake_files(settings)[0].name
    (root / EVENTS / segment_name(number)).write_bytes((root / EVENTS / first).read_bytes())
    key_path(root, segment_name(number)).write_bytes(key_path(root, first).read_bytes())
    half = root / TMP / "123-abc-seg-000000001000.parquet"
    half.write_bytes(b"PAR1 half written")
    assert scan_events(settings).collect().height == 5
    assert lake_stats(settings)["events"] == 5
    ingest_records(settings, population(3, prefix="x"))
    assert not half.exists()
    assert scan_events(settings).collect().height == 8
    assert _ids(scan_stored(settings)) == _ids(scan_events(settings))


def test_compaction_removes_any_file_the_manifest_does_not_name(settings: Settings) -> None:
    ingest_records(settings, population(5))
    stray = lake_dir(settings) / EVENTS / segment_name(999)
    stray.write_bytes(b"stray")
    compact(settings)
    assert not stray.exists()
    assert scan_events(settings).collect().height == 5


def test_a_lost_key_file_is_rebuilt_and_dedup_still_holds(settings: Settings) -> None:
    batch = population(6)
    ingest_records(settings, batch)
    for path in (lake_dir(settings) / KEYS).iterdir():
        path.write_bytes(b"garbage")
    fresh = load_settings(home=settings.home, log_format="text", lake_compression="snappy")
    _forget_cached_keys()
    result = ingest_records(fresh, batch)
    assert (result.stored, result.duplicates) == (0, 6)
    assert scan_stored(settings).collect().height == 6


def _forget_cached_keys() -> None:
    forget_known_keys()


def _mixed_history(settings: Settings) -> None:
    events = population(30)
    for start in range(0, 30, 7):
        ingest_records(settings, events[start:start + 7])
    fix = correction(events[4], "fix-4", reported_at=_at(40))
    ingest_records(settings, [fix, void(events[5], "void-5", reported_at=_at(2))])
    ingest_records(settings, [record("payment", event_id="late", reported_at=_at(60))])


def _queries(settings: Settings) -> list[Any]:
    mark = watermark(settings)
    times = [T0 + timedelta(days=d) for d in (0, 3, 41, 61)]
    return ([_snapshot(settings)] + [_snapshot(settings, as_known_at=t) for t in times]
            + [_snapshot(settings, watermark=mark)]
            + [sorted(scan_stored(settings).collect().rows(), key=repr)]
            + [{k: v for k, v in lake_stats(settings).items() if k != "files"}])


def test_compaction_changes_no_query_result(settings: Settings) -> None:
    _mixed_history(settings)
    before, files_before = _queries(settings), len(lake_files(settings))
    result = compact(settings)
    assert _queries(settings) == before
    assert (result.files_before, result.files_after) == (files_before, 1)
    assert len(lake_files(settings)) == 1
    result = compact(settings)
    assert _queries(settings) == before and result.files_after == 1


def test_compaction_keeps_replaced_files_for_readers_then_removes_them(home: Path) -> None:
    keeping = load_settings(home=home, log_format="text", lake_retire_seconds=3600)
    _mixed_history(keeping)
    old_files = lake_files(keeping)
    compact(keeping)
    assert all(path.exists() for path in old_files)
    assert pl.scan_parquet(old_files).collect().height == scan_stored(keeping).collect().height
    compact(load_settings(home=home, log_format="text", lake_retire_seconds=0))
    assert not any(path.exists() for path in old_files)


def test_compaction_then_resend_still_deduplicates(settings: Settings) -> None:
    events = population(12)
    ingest_records(settings, events[:6])
    ingest_records(settings, events[6:])
    compact(settings)
    result = ingest_records(settings, events)
    assert (result.stored, result.duplicates) == (0, 12)


def test_stats_count_kinds_sources_late_arrivals_and_corrections(settings: Settings) -> None:
    original = record("repayment", event_id="r1", event_time=_at(0), reported_at=_at(1))
    ingest_records(settings, [
        original,
        record("payment", event_id="p1", event_time=_at(0), reported_at=_at(30)),
        record("payment", event_id="p2", event_time=_at(0)),
        correction(original, "r1-fix", reported_at=_at(2)),
        void(record("payment", event_id="p2"), "p2-void"),
    ])
    stats = lake_stats(settings)
    assert stats["events"] == 5
    assert stats["by_kind"] == {"payment": 3, "repayment": 2}
    assert stats["by_source"] == {"lender": 2, "wallet": 3}
    assert (stats["corrections"], stats["voids"]) == (2, 1)
    # p1 (30 days), p2 and its void (reported on ingestion, years later) are late
    assert stats["late_arrivals"] == 3
    assert stats["event_time"]["min"] == T0.isoformat()
    assert json.loads(json.dumps(stats)) == stats


def test_the_manifest_is_the_only_commit_point(settings: Settings) -> None:
    ingest_records(settings, population(4))
    manifest = json.loads((lake_dir(settings) / MANIFEST).read_text())
    assert [s["name"] for s in manifest["segments"]] == [p.name for p in lake_files(settings)]
    assert manifest["watermark"] == watermark(settings).isoformat()  # type: ignore[union-attr]


def test_readers_see_committed_events_only_while_a_writer_works(settings: Settings) -> None:
    from features.lake_writer import LakeWriter
    from features.records import parse_records

    ingest_records(settings, population(4))
    staged, _ = parse_records(population(6, prefix="new"))
    with LakeWriter(settings) as writer:
        writer.add(staged)
        assert scan_events(settings).collect().height == 4
        assert lake_stats(settings)["events"] == 4
        writer.commit()
        assert scan_events(settings).collect().height == 10
    with LakeWriter(settings) as writer:
        writer.add(parse_records(population(3, prefix="dropped"))[0])
    assert scan_events(settings).collect().height == 10


def test_compaction_rebuilds_a_lost_key_file(settings: Settings) -> None:
    events = population(8)
    ingest_records(settings, events[:4])
    ingest_records(settings, events[4:])
    for path in (lake_dir(settings) / KEYS).iterdir():
        path.write_bytes(b"lost in a crash")
    compact(settings)
    _forget_cached_keys()
    assert ingest_records(settings, events).duplicates == 8


def test_a_watermark_before_every_ingest_reads_nothing(settings: Settings) -> None:
    ingest_records(settings, population(5))
    frame = scan_events(settings, watermark=datetime(2000, 1, 1, tzinfo=UTC)).collect()
    assert frame.height == 0 and frame.columns == LAKE_SCHEMA.names


@hsettings(max_examples=60, deadline=None)
@given(batches=st.lists(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 3)), max_size=12,
                                 unique=True), min_size=1, max_size=5),
       queries=st.lists(st.tuples(st.integers(0, 6), st.integers(0, 3)), max_size=20))
def test_the_key_index_finds_exactly_the_stored_keys_even_when_hashes_collide(
        batches: list[list[tuple[int, int]]], queries: list[tuple[int, int]]) -> None:
    """Tiny hash ranges force many keys to share h1; only (h1, h2) equality may match."""
    index, stored = KeyIndex(), {}
    for number, batch in enumerate(batches):
        fresh = [key for key in batch if key not in stored]
        for key in fresh:
            stored[key] = hash(key) % 1000
        index.add(f"seg-{number}", _prints(fresh, [stored[k] for k in fresh]))
    ordered = sorted(queries)
    found, content = index.lookup(_prints(ordered, [0] * len(ordered)))
    assert found.tolist() == [key in stored for key in ordered]
    assert content.tolist() == [stored.get(key, 0) for key in ordered]


def _prints(keys: list[tuple[int, int]], contents: list[int]) -> Fingerprints:
    def column(values: list[int]) -> np.ndarray:
        return np.array(values, dtype=np.uint64)

    return Fingerprints(column([k[0] for k in keys]), column([k[1] for k in keys]),
                        column(contents))


originals = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=3, max_size=3)
corrections = st.lists(st.tuples(st.sampled_from(["e0", "e1", "e2"]), st.integers(0, 3),
                                 st.integers(0, 3), st.booleans()), max_size=20)


@hsettings(max_examples=100, deadline=None)
@given(originals, corrections)
def test_the_rule_keeps_each_events_latest_version_unless_it_is_a_void(
        first: list[tuple[int, int]], later: list[tuple[str, int, int, bool]]) -> None:
    """Latest known_at, then ingested_at, then a correction over the original, then the
    larger event_id; dropped if the version kept is a void. Against plain Python."""
    rows = [(f"e{at}", None, known, ingested, False) for at, (known, ingested) in enumerate(first)]
    rows += [(f"{target}-fix{at:02d}", target, known, ingested, voided)
             for at, (target, known, ingested, voided) in enumerate(later)]
    given_rows = pl.DataFrame({
        "source": ["bank"] * len(rows), "event_id": [row[0] for row in rows],
        "corrects": [row[1] for row in rows],
        "known_at": [T0 + timedelta(days=row[2]) for row in rows],
        "ingested_at": [T0 + timedelta(days=row[3]) for row in rows],
        "voided": [row[4] for row in rows]})
    schema = empty_events().collect_schema()
    events = given_rows.with_columns(
        [pl.lit(None, dtype).alias(name) for name, dtype in schema.items()
         if name not in given_rows.columns]).select(
        pl.col(name).cast(dtype) for name, dtype in schema.items())
    kept = resolve(events.lazy()).collect().get_column("event_id").sort().to_list()
    expected = []
    for target in ("e0", "e1", "e2"):
        members = [row for row in rows if (row[1] or row[0]) == target]
        best = max(members, key=lambda row: (row[2], row[3], row[1] is not None, row[0]))
        if not best[4]:
            expected.append(best[0])
    assert kept == sorted(expected)
