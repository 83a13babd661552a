"""Ingestion: all or nothing, idempotent, refusals with their status and rows, crash safety."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from config.settings import Settings, load_settings
from features.events import INPUT_SCHEMA, RESERVED_ID_REASON
from features.ingest import ingest_files, ingest_platform_records, ingest_records
from features.ingest_errors import (
    BatchTooLarge,
    EventConflict,
    IngestError,
    InvalidEvents,
    InvalidFile,
)
from features.lake import lake_dir, lake_files, scan_stored
from features.records import parse_records
from features.user_events import dispute_void_id
from tests.features.event_samples import EXAMPLES, correction, population, record, void
from web.cli import cli

REPO = Path(__file__).resolve().parents[2]


def _stored(settings: Settings) -> list[tuple[Any, ...]]:
    frame = scan_stored(settings).drop("ingested_at", "known_at").collect()
    return sorted(frame.rows(), key=repr)


def _keys(settings: Settings) -> list[tuple[str, str]]:
    return sorted(scan_stored(settings).select("source", "event_id").collect().rows())


def _lake_listing(settings: Settings) -> list[str]:
    root = lake_dir(settings)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.name != ".lock")


def _input_table(records: list[dict[str, Any]]) -> pa.Table:
    """Records as a typed input table (what the simulator writes)."""
    staged, problems = parse_records(records)
    assert not problems
    kinds = [r["kind"] for r in records]
    columns = {f.name: staged.column(f.name) for f in staged.schema if f.name in INPUT_SCHEMA.names}
    columns["kind"] = pa.array(kinds)
    columns["corrected_kind"] = pa.array([r.get("corrected_kind") for r in records], pa.string())
    columns["void"] = pa.array([r.get("void") for r in records], pa.bool_())
    return pa.table({name: columns[name] for name in INPUT_SCHEMA.names if name in columns})


def _write(path: Path, records: list[dict[str, Any]]) -> Path:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    elif path.suffix == ".csv":
        pa_csv.write_csv(_input_table(records), path)
    else:
        pq.write_table(_input_table(records), path)
    return path


# -- batches -----------------------------------------------------------------------


def test_a_batch_is_stored_and_a_resend_stores_nothing_new(settings: Settings) -> None:
    batch = population(30)
    first = ingest_records(settings, batch)
    stored = _stored(settings)
    again = ingest_records(settings, batch)
    assert (first.received, first.accepted, first.stored, first.duplicates) == (30, 30, 30, 0)
    assert (again.received, again.accepted, again.stored, again.duplicates) == (30, 30, 0, 30)
    assert _stored(settings) == stored


def test_an_invalid_batch_names_each_bad_record_and_stores_nothing(settings: Settings) -> None:
    ingest_records(settings, population(3))
    before = _lake_listing(settings)
    batch = [*population(4, prefix="n"), record("payment", event_id="b1", amount="-2.00"),
             record("bill", event_id="b2", event_time="2024-01-01T00:00:00")]
    with pytest.raises(InvalidEvents) as caught:
        ingest_records(settings, batch)
    assert caught.value.status == 400
    assert [(p["index"], p["field"]) for p in caught.value.errors] == [(4, "amount"),
                                                                      (5, "event_time")]
    assert "2 of 6 records are invalid" in str(caught.value)
    assert _lake_listing(settings) == before


def test_a_changed_event_under_a_stored_key_is_a_conflict(settings: Settings) -> None:
    ingest_records(settings, [record("payment", event_id="p1")])
    before = _lake_listing(settings)
    with pytest.raises(EventConflict) as caught:
        ingest_records(settings, [record("payment", event_id="p2"),
                                  record("payment", event_id="p1", amount="99.00")])
    assert caught.value.status == 409
    assert caught.value.errors == [{"index": 1, "field": "event_id",
                                    "reason": "wallet/p1 already stored with different content"}]
    assert _lake_listing(settings) == before


def test_a_key_repeated_with_other_content_in_one_batch_is_a_conflict(settings: Settings) -> None:
    with pytest.raises(EventConflict, match="conflict"):
        ingest_records(settings, [record("payment", event_id="p1"),
                                  record("payment", event_id="p1", amount="99.00")])
    assert _keys(settings) == []


def test_a_key_repeated_with_the_same_content_is_stored_once(settings: Settings) -> None:
    result = ingest_records(settings, [record("payment"), record("payment")])
    assert (result.stored, result.duplicates) == (1, 1)


def test_a_batch_over_the_limit_is_refused_as_too_large(home: Path) -> None:
    small = load_settings(home=home, log_format="text", ingest_max_batch=3)
    with pytest.raises(BatchTooLarge, match="at most 3 events, got 4") as caught:
        ingest_records(small, population(4))
    assert caught.value.status == 413
    assert _keys(small) == []


@pytest.mark.parametrize("batch", [{"kind": "payment"}, "events", None])
def test_a_batch_that_is_not_a_list_is_refused(settings: Settings, batch: Any) -> None:
    with pytest.raises(InvalidEvents, match="a batch must be a list"):
        ingest_records(settings, batch)


def test_the_authenticated_source_is_applied_and_enforced(settings: Settings) -> None:
    mine = {k: v for k, v in record("payment", event_id="p1").items() if k != "source"}
    ingest_records(settings, [mine], source_override="partner-a")
    assert _keys(settings) == [("partner-a", "p1")]
    with pytest.raises(InvalidEvents) as caught:
        ingest_records(settings, [record("payment", event_id="p2", source="other")],
                       source_override="partner-a")
    assert caught.value.errors[0]["field"] == "source"
    assert _keys(settings) == [("partner-a", "p1")]


def test_an_empty_batch_stores_nothing(settings: Settings) -> None:
    assert ingest_records(settings, []).stored == 0


# -- properties --------------------------------------------------------------------

EVENTS = [*population(16),
          correction(record("repayment", event_id="e4"), "fix-4", paid_date="2024-04-09"),
          void(record("payment", event_id="e6"), "void-6")]


@hsettings(max_examples=25, deadline=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_shuffled_duplicated_rebatched_sequence_stores_the_same_set(
        tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    home = tmp_path_factory.mktemp("lake")
    settings = load_settings(home=home, log_format="text")
    sequence = data.draw(st.lists(st.sampled_from(EVENTS), min_size=1, max_size=40))
    sequence = data.draw(st.permutations(sequence + EVENTS))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(sequence)), max_size=6)))
    for start, end in zip([0, *cuts], [*cuts, len(sequence)], strict=True):
        if end > start:
            ingest_records(settings, sequence[start:end])
    reference = load_settings(home=tmp_path_factory.mktemp("reference"), log_format="text")
    ingest_records(reference, EVENTS)
    assert _stored(settings) == _stored(reference)


BAD = [record("payment", event_id="bad-1", amount="-1.00"),
       record("bill", event_id="bad-2", currency="rmb"),
       {**population(1)[0], "amount": "1234.00"},  # conflicts with the stored e0
       {"kind": "payment"}, 42]


@hsettings(max_examples=25, deadline=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_bad_records_never_change_what_is_stored(tmp_path_factory: pytest.TempPathFactory,
                                                 data: st.DataObject) -> None:
    settings = load_settings(home=tmp_path_factory.mktemp("lake"), log_format="text")
    ingest_records(settings, population(8))
    before = _stored(settings)
    good = data.draw(st.lists(st.sampled_from(population(12, prefix="g")), max_size=10))
    bad = data.draw(st.lists(st.sampled_from(BAD), min_size=1, max_size=3))
    batch = data.draw(st.permutations(good + bad))
    with pytest.raises(IngestError):
        ingest_records(settings, batch)
    assert _stored(settings) == before


# -- files -------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_each_file_format_stores_the_same_rows_as_the_api(settings: Settings, tmp_path: Path,
                                                          suffix: str) -> None:
    events = [*population(20), correction(record("payment", event_id="e6"), "fix-6",
                                          amount="1.10")]
    result = ingest_files(settings, [_write(tmp_path / f"events{suffix}", events)])
    assert (result.received, result.stored, result.duplicates) == (21, 21, 0)
    reference = load_settings(home=tmp_path / "ref", log_format="text")
    ingest_records(reference, events)
    assert _stored(settings) == _stored(reference)


def test_a_file_ingested_twice_stores_nothing_new(settings: Settings, tmp_path: Path) -> None:
    path = _write(tmp_path / "e.parquet", population(10))
    ingest_files(settings, [path])
    again = ingest_files(settings, [path])
    assert (again.received, again.stored, again.duplicates) == (10, 0, 10)


def test_a_bad_file_names_its_first_bad_rows_and_stores_nothing(home: Path,
                                                                tmp_path: Path) -> None:
    settings = load_settings(home=home, log_format="text", ingest_max_problems=2,
                             ingest_chunk_rows=1000)
    ingest_records(settings, population(2, prefix="old"))
    before = _lake_listing(settings)
    rows = population(3000)
    rows[1500] = {**rows[1500], "kind": "bill", "amount": "-3.00"}
    rows[2100] = {**rows[2100], "event_time": "2024-01-01T00:00:00"}
    rows[2900] = {**rows[2900], "currency": "cny"}
    good = _write(tmp_path / "good.jsonl", population(5, prefix="g"))
    bad = _write(tmp_path / "bad.jsonl", rows)
    with pytest.raises(InvalidFile) as caught:
        ingest_files(settings, [good, bad])
    assert caught.value.status == 400
    assert {(p.index, p.field) for p in caught.value.problems} >= {(1501, "amount")}
    assert {p.index for p in caught.value.problems} == {1501, 2101}
    assert "bad.jsonl" in caught.value.one_line() and "row 1501" in caught.value.one_line()
    assert _lake_listing(settings) == before


@pytest.mark.parametrize(("columns", "message"), [
    ({"ingested_at": "2024-01-01T00:00:00Z"}, "ingested_at: added by the platform"),
    ({"days_late": 3}, "days_late: added by the platform"),
    ({"colour": "red"}, "colour: unknown column"),
])
def test_a_file_with_a_wrong_column_is_refused(settings: Settings, tmp_path: Path,
                                               columns: dict[str, Any], message: str) -> None:
    path = _write(tmp_path / "e.jsonl", [{**r, **columns} for r in population(3)])
    with pytest.raises(InvalidFile) as caught:
        ingest_files(settings, [path])
    assert f"refused for its columns; nothing was stored: file {message}" in caught.value.one_line()
    assert _keys(settings) == []


def test_a_parquet_file_with_naive_timestamps_is_refused(settings: Settings,
                                                         tmp_path: Path) -> None:
    table = _input_table(population(3))
    naive = table.set_column(table.schema.get_field_index("event_time"), "event_time",
                             table.column("event_time").cast(pa.timestamp("us")))
    pq.write_table(naive, tmp_path / "naive.parquet")
    with pytest.raises(InvalidFile) as caught:
        ingest_files(settings, [tmp_path / "naive.parquet"])
    assert "row 1 event_time: timestamp must carry a time zone" in caught.value.one_line()
    assert _keys(settings) == []


@pytest.mark.parametrize(("name", "content", "message"), [
    ("missing.parquet", None, "no such file"),
    ("events.xlsx", b"x", "unsupported file type"),
    ("broken.parquet", b"not parquet at all", "not a readable Parquet file"),
    ("broken.jsonl", b'{"source": "a"\n', "cannot be read"),
])
def test_an_unusable_file_is_refused(settings: Settings, tmp_path: Path, name: str,
                                     content: bytes | None, message: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InvalidFile, match=message):
        ingest_files(settings, [path])
    assert _keys(settings) == []


def test_a_conflict_between_two_files_stores_neither(settings: Settings, tmp_path: Path) -> None:
    one = _write(tmp_path / "one.jsonl", population(8))
    two = _write(tmp_path / "two.jsonl", [record("payment", event_id="e6", amount="7.00")])
    with pytest.raises(EventConflict, match=r"two\.jsonl") as caught:
        ingest_files(settings, [one, two])
    assert caught.value.status == 409
    assert _keys(settings) == []


# -- the platform's reserved ids -----------------------------------------------------

FORGED = [record("payment", event_id="altcredit-dispute-9-void"),
          void(record("repayment", event_id="e4"), "undo-1", corrects="altcredit-dispute-3-void")]
"""A furnisher's rows that would pose as a dispute's correction, or undo one."""


def test_a_batch_with_a_reserved_id_is_refused_row_by_row_and_stores_nothing(
        settings: Settings) -> None:
    ingest_records(settings, population(3))
    before = _lake_listing(settings)
    with pytest.raises(InvalidEvents) as caught:
        ingest_records(settings, [*population(2, prefix="n"), *FORGED])
    assert caught.value.status == 400
    assert caught.value.errors == [{"index": 2, "field": "event_id", "reason": RESERVED_ID_REASON},
                                   {"index": 3, "field": "corrects", "reason": RESERVED_ID_REASON}]
    assert "2 of 4 records are invalid" in str(caught.value)
    assert RESERVED_ID_REASON == ("must not start with altcredit-dispute- "
                                  "(reserved for the platform's disputes)")
    assert _lake_listing(settings) == before


def test_the_platforms_own_corrections_use_the_reserved_prefix(settings: Settings) -> None:
    ingest_records(settings, [record("repayment", event_id="r-1")])
    retraction = void(record("repayment", event_id="r-1"), dispute_void_id(5))
    with pytest.raises(InvalidEvents):
        ingest_records(settings, [retraction])
    assert ingest_platform_records(settings, [retraction]).stored == 1
    assert ("lender", dispute_void_id(5)) in _keys(settings)


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_a_file_with_a_reserved_id_is_refused_row_by_row_and_stores_nothing(
        settings: Settings, tmp_path: Path, suffix: str) -> None:
    ingest_records(settings, population(3))
    before = _lake_listing(settings)
    path = _write(tmp_path / f"forged{suffix}", [*population(4, prefix="n"), *FORGED])
    with pytest.raises(InvalidFile) as caught:
        ingest_files(settings, [path])
    assert caught.value.status == 400
    assert [(p.index, p.field, p.reason) for p in caught.value.problems] == [
        (5, "event_id", RESERVED_ID_REASON), (6, "corrects", RESERVED_ID_REASON)]
    assert f"row 5 event_id: {RESERVED_ID_REASON}" in caught.value.one_line()
    assert _lake_listing(settings) == before


def test_the_ingest_command_refuses_a_reserved_id_in_one_line(settings: Settings,
                                                              tmp_path: Path) -> None:
    path = _write(tmp_path / "e.jsonl", [record("payment", event_id="altcredit-dispute-1-restore")])
    result = CliRunner().invoke(cli, ["ingest", str(path)])
    assert result.exit_code == 1
    assert f"row 1 event_id: {RESERVED_ID_REASON}" in result.output
    assert _keys(settings) == []


# -- crashes and concurrency -------------------------------------------------------

KILLER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from config.settings import load_settings
    from features import ingest, lake_writer

    home, path, where = sys.argv[1], sys.argv[2], sys.argv[3]
    settings = load_settings(home=home, log_format="text", ingest_chunk_rows=1000)

    def die(*_args):
        os.kill(os.getpid(), signal.SIGKILL)

    if where == "chunk":
        calls = []
        progress = lambda *a: calls.append(a) or (len(calls) == 2 and die())
    else:
        progress = None
        real_replace = os.replace
        count = [0]
        def replace(src, dst):
            real_replace(src, dst)
            count[0] += 1
            if count[0] == 3:
                die()
        lake_writer.os.replace = replace
    ingest.ingest_files(settings, [Path(path)], progress=progress)
""")


@pytest.mark.parametrize("where", ["chunk", "commit"])
def test_an_ingest_killed_half_way_then_rerun_stores_each_event_once(
        settings: Settings, tmp_path: Path, where: str) -> None:
    events = population(4500)
    path = _write(tmp_path / "big.parquet", events)
    ingest_records(settings, population(3, prefix="before"))
    before = _keys(settings)
    killed = subprocess.run([sys.executable, "-c", KILLER, str(settings.home), str(path), where],
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr
    assert _keys(settings) == before
    result = ingest_files(settings, [path])
    assert (result.stored, result.duplicates) == (4500, 0)
    keys = _keys(settings)
    assert len(keys) == len(set(keys)) == 4503
    assert not list((lake_dir(settings) / "tmp").iterdir())
    assert sorted(p.name for p in (lake_dir(settings) / "events").iterdir()) == \
        sorted(p.name for p in lake_files(settings))


CONCURRENT = textwrap.dedent("""
    import sys
    from pathlib import Path
    from config.settings import load_settings
    from features.ingest import ingest_files
    settings = load_settings(home=sys.argv[1], log_format="text", ingest_chunk_rows=1000)
    print(ingest_files(settings, [Path(sys.argv[2])]).stored)
""")


def test_two_processes_ingesting_the_same_file_store_each_key_once(settings: Settings,
                                                                   tmp_path: Path) -> None:
    path = _write(tmp_path / "same.parquet", population(3000))
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT, str(settings.home), str(path)],
                              cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    stored = sorted(int(proc.communicate(timeout=120)[0].strip()) for proc in procs)
    assert stored == [0, 3000]
    keys = _keys(settings)
    assert len(keys) == len(set(keys)) == 3000


# -- the commands ------------------------------------------------------------------


def test_the_ingest_command_prints_read_stored_and_duplicates(settings: Settings,
                                                              tmp_path: Path) -> None:
    path = _write(tmp_path / "e.jsonl", population(5))
    runner = CliRunner()
    first = runner.invoke(cli, ["ingest", str(path)])
    again = runner.invoke(cli, ["ingest", str(path), "--json"])
    assert first.exit_code == 0, first.output
    assert "read 5, stored 5, duplicates 0" in first.output
    assert json.loads(again.output)["duplicates"] == 5


def test_the_ingest_command_refuses_a_bad_file_in_one_line(settings: Settings,
                                                           tmp_path: Path) -> None:
    path = _write(tmp_path / "e.jsonl", [record("payment", amount="x")])
    result = CliRunner().invoke(cli, ["ingest", str(path)])
    assert result.exit_code == 1
    assert "row 1 amount: not a decimal amount" in result.output
    assert _keys(settings) == []


def test_events_stats_json_has_the_total_and_counts_by_kind(settings: Settings) -> None:
    ingest_records(settings, population(26))
    result = CliRunner().invoke(cli, ["events", "stats", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["events"] == 26
    assert document["by_kind"]["payment"] == 2 and len(document["by_kind"]) == 13
    text = CliRunner().invoke(cli, ["events", "stats"])
    assert "events: 26" in text.output


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_events_sent_by_the_api_are_duplicates_when_sent_again_as_a_file(
        settings: Settings, tmp_path: Path, suffix: str) -> None:
    events = [*population(26), void(record("payment", event_id="e6"), "void-6")]
    ingest_records(settings, events)
    again = ingest_files(settings, [_write(tmp_path / f"again{suffix}", events)])
    assert (again.stored, again.duplicates) == (0, 27)


def test_the_simulators_events_ingest_cleanly(settings: Settings, tmp_path: Path) -> None:
    from datetime import date

    from features.simulate import simulate

    summary = simulate(users=200, months=6, seed=3, out_dir=tmp_path / "sim",
                       end=date(2025, 6, 1), bad_rate=0.05, chunk_users=200)
    result = ingest_files(settings, summary.event_files)
    assert result.stored == result.received == summary.events > 0
    kinds = set(scan_stored(settings).select("kind").unique().collect().to_series())
    assert kinds <= set(EXAMPLES) and len(kinds) >= 10
    assert ingest_files(settings, summary.event_files).stored == 0


def test_events_stats_of_an_empty_lake_says_zero(settings: Settings) -> None:
    result = CliRunner().invoke(cli, ["events", "stats", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert (document["events"], document["by_kind"], document["watermark"]) == (0, {}, None)


def test_the_compact_command_merges_files_and_keeps_the_events(settings: Settings) -> None:
    for start in range(0, 12, 4):
        ingest_records(settings, population(12)[start:start + 4])
    result = CliRunner().invoke(cli, ["events", "compact"])
    assert result.exit_code == 0, result.output
    assert "3 files -> 1 files (12 rows" in result.output
    assert len(_keys(settings)) == 12
