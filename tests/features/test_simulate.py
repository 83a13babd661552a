"""The population simulator: a realistic, deterministic population that ingestion accepts."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.settings import Settings
from features.events import INPUT_SCHEMA, Kind
from features.ingest import ingest_files
from features.simulate import SimulationSummary, simulate, simulate_block
from features.simulate_frame import _money, digits
from features.simulate_world import Timeline, onset_intercept
from features.validate import stage_table
from web.cli import main

END = date(2026, 1, 1)
BAD = (pl.col("kind") == "default") | (
    (pl.col("kind") == "repayment")
    & ((pl.col("paid_date") - pl.col("due_date")).dt.total_days() >= 90))


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> SimulationSummary:
    """2,000 users x 12 months, written once for this module."""
    return simulate(users=2000, months=12, seed=11, out_dir=tmp_path_factory.mktemp("sim"),
                    end=END, bad_rate=0.05, chunk_users=1000)


@pytest.fixture(scope="module")
def events(simulated: SimulationSummary) -> pl.DataFrame:
    return pl.read_parquet(simulated.event_files)


@pytest.fixture(scope="module")
def truth(simulated: SimulationSummary) -> pl.DataFrame:
    return pl.read_parquet(simulated.truth_file)


def _small(out: Path, **overrides: object) -> SimulationSummary:
    arguments: dict = {"users": 1200, "months": 3, "seed": 5, "out_dir": out, "end": END,
                       "bad_rate": 0.05, "chunk_users": 1000}
    return simulate(**{**arguments, **overrides})


# -- files and determinism ----------------------------------------------------------


def test_files_are_streamed_per_chunk_with_truth_and_manifest(simulated: SimulationSummary) -> None:
    folder = simulated.truth_file.parent
    assert [path.name for path in simulated.event_files] == ["events-00000.parquet",
                                                             "events-00001.parquet"]
    assert "truth" in simulated.truth_file.name
    manifest = json.loads(simulated.manifest_file.read_text())
    assert manifest["users"] == 2000 and manifest["months"] == 12 and manifest["seed"] == 11
    assert manifest["end"] == "2026-01-01" and manifest["start"] == "2025-01-01"
    assert manifest["events"] == sum(manifest["by_kind"].values()) == simulated.events
    assert not list(folder.glob(".simulate-*"))  # no scratch left behind


def test_same_seed_writes_byte_identical_files(tmp_path: Path) -> None:
    first, second = _small(tmp_path / "a"), _small(tmp_path / "b")
    for one, two in zip([*first.event_files, first.truth_file, first.manifest_file],
                        [*second.event_files, second.truth_file, second.manifest_file],
                        strict=True):
        assert one.read_bytes() == two.read_bytes()


def test_another_seed_writes_another_population(tmp_path: Path) -> None:
    first, second = _small(tmp_path / "a"), _small(tmp_path / "b", seed=6)
    assert first.event_files[0].read_bytes() != second.event_files[0].read_bytes()


def test_rows_do_not_depend_on_chunk_size(tmp_path: Path) -> None:
    chunked = _small(tmp_path / "a", users=2500, chunk_users=1000)
    whole = _small(tmp_path / "b", users=2500, chunk_users=5000)
    assert len(chunked.event_files) == 3 and len(whole.event_files) == 1
    assert pq.read_table(chunked.event_files).equals(pq.read_table(whole.event_files))
    assert pq.read_table(chunked.truth_file).equals(pq.read_table(whole.truth_file))


def test_rerun_into_the_same_folder_replaces_earlier_files(tmp_path: Path) -> None:
    _small(tmp_path, users=2500, chunk_users=1000)
    again = _small(tmp_path, users=1200, chunk_users=5000)
    assert sorted(tmp_path.glob("events-*.parquet")) == again.event_files
    assert pq.read_table(again.truth_file).num_rows == 1200 * again.months


# -- the contract -------------------------------------------------------------------


def test_schema_is_exactly_the_input_file_contract(simulated: SimulationSummary) -> None:
    for path in simulated.event_files:
        assert pq.read_schema(path).remove_metadata() == INPUT_SCHEMA


def test_every_kind_and_corrections_are_present(events: pl.DataFrame) -> None:
    kinds = set(events["kind"].unique())
    assert {kind.value for kind in Kind} | {"correction"} <= kinds
    corrections = events.filter(pl.col("kind") == "correction")
    assert corrections["void"].sum() > 0 and (~corrections["void"]).sum() > 0
    assert set(corrections["corrected_kind"].unique()) <= {kind.value for kind in Kind}


def test_corrections_name_an_earlier_event_of_the_same_source(events: pl.DataFrame) -> None:
    corrections = events.filter(pl.col("kind") == "correction")
    originals = events.select("source", pl.col("event_id").alias("corrects"),
                              pl.col("kind").alias("corrected_kind"),
                              pl.col("reported_at").alias("first_reported"))
    joined = corrections.join(originals, on=["source", "corrects", "corrected_kind"])
    assert joined.height == corrections.height
    assert (joined["reported_at"] > joined["first_reported"]).all()


def test_event_ids_are_unique_per_source(events: pl.DataFrame) -> None:
    assert events.select("source", "event_id").is_unique().all()


def test_events_pass_ingestion_validation(simulated: SimulationSummary) -> None:
    staged = stage_table(pq.read_table(simulated.event_files[0]))  # the first 1,000 users
    assert staged.problems == []
    assert staged.table is not None and staged.table.num_rows > 250_000


def test_events_ingest_into_the_lake(tmp_path: Path, settings: Settings) -> None:
    small = _small(tmp_path / "sim", users=300)
    result = ingest_files(settings, small.event_files)
    assert result.stored == result.accepted == small.events


def test_nothing_happens_or_is_reported_after_the_end(events: pl.DataFrame) -> None:
    end = datetime(2026, 1, 1, tzinfo=UTC)
    assert events["event_time"].max() < end
    assert events["reported_at"].max() < end
    assert (events["reported_at"] >= events["event_time"]).all()


def test_amounts_are_non_negative_except_balances(events: pl.DataFrame) -> None:
    balance = pl.coalesce("corrected_kind", "kind") == "balance"
    money = events.filter(~balance).select(
        pl.col("amount").cast(pl.Float64), pl.col("amount_due").cast(pl.Float64),
        pl.col("credit_limit").cast(pl.Float64))
    assert all(lowest >= 0 for lowest in money.min().row(0))
    balances = events.filter(pl.col("kind") == "balance")["amount"].cast(pl.Float64)
    assert (balances < 0).any() and (balances > 0).any()


# -- realism --------------------------------------------------------------------------


def test_realised_bad_rate_is_near_the_knob(simulated: SimulationSummary, truth: pl.DataFrame,
                                            events: pl.DataFrame) -> None:
    assert 0.03 <= simulated.realised_bad_rate <= 0.07
    bad_in_events = set(events.filter(BAD)["user_id"])
    bad_in_truth = set(truth.filter(pl.col("bad"))["user_id"])
    assert bad_in_events <= bad_in_truth
    assert len(bad_in_events) >= 0.8 * len(bad_in_truth)  # the rest not reported by the end


def test_a_higher_knob_makes_more_users_bad(tmp_path: Path) -> None:
    low = _small(tmp_path / "low", users=1000, months=12, bad_rate=0.02)
    high = _small(tmp_path / "high", users=1000, months=12, bad_rate=0.15)
    assert high.realised_bad_rate > 2 * low.realised_bad_rate
    assert 0.10 <= high.realised_bad_rate <= 0.20


def test_about_a_fifth_are_thin_file(simulated: SimulationSummary, events: pl.DataFrame) -> None:
    with_credit = events.filter(pl.col("kind") == "credit_opened")["user_id"].n_unique()
    thin = 1 - with_credit / simulated.users
    assert 0.15 <= thin <= 0.26
    assert abs(thin - simulated.thin_file_share) < 0.01
    thin_users = set(events["user_id"].unique()) - set(
        events.filter(pl.col("kind") == "credit_opened")["user_id"])
    kinds = set(events.filter(pl.col("user_id").is_in(list(thin_users)))["kind"].unique())
    assert {"bill", "bill_payment", "payment", "transfer"} <= kinds
    assert not {"installment_due", "repayment"} & kinds


def test_most_reports_arrive_within_days_and_some_weeks_late(events: pl.DataFrame) -> None:
    delay = (events["reported_at"] - events["event_time"]).dt.total_days()
    assert (delay <= 7).mean() > 0.85
    assert 0.01 < (delay >= 14).mean() < 0.10


def test_most_repayments_are_on_time_and_lateness_follows_risk(events: pl.DataFrame,
                                                               truth: pl.DataFrame) -> None:
    late = events.filter(pl.col("kind").is_in(["repayment", "bill_payment"])).select(
        "user_id", ((pl.col("paid_date") - pl.col("due_date")).dt.total_days() > 0).alias("late"))
    assert 0.02 < late["late"].mean() < 0.15
    risk = truth.group_by("user_id").agg(pl.col("z").first(), pl.col("bad").first())
    by_user = late.group_by("user_id").agg(pl.col("late").mean()).join(risk, on="user_id")
    bad_late = by_user.filter(pl.col("bad"))["late"].mean()
    good_late = by_user.filter(~pl.col("bad"))["late"].mean()
    assert bad_late > 2 * good_late


def test_contacts_of_bad_users_are_bad_more_often(events: pl.DataFrame,
                                                  truth: pl.DataFrame) -> None:
    bad = truth.group_by("user_id").agg(pl.col("bad").first())
    edges = events.filter((pl.col("kind") == "contact") & (pl.col("contact_action") == "added"))
    pairs = edges.select("user_id", "contact_user_id", "relation").join(bad, on="user_id").join(
        bad.rename({"user_id": "contact_user_id", "bad": "contact_bad"}), on="contact_user_id")
    overall = bad["bad"].mean()
    of_bad = pairs.filter(pl.col("bad"))["contact_bad"].mean()
    assert of_bad > 1.3 * overall
    assert set(pairs["relation"].unique()) == {"family", "friend", "colleague", "other"}


def test_truth_has_one_row_per_user_and_month(simulated: SimulationSummary,
                                              truth: pl.DataFrame) -> None:
    assert truth.height == simulated.users * simulated.months
    assert truth.select("user_id", "month").is_unique().all()
    assert truth["pd_month"].is_between(0, 1).all() and truth["pd_12m"].is_between(0, 1).all()
    first = truth.filter(pl.col("month") == pl.col("month").min())
    assert abs(first["pd_12m"].mean() - 0.05) < 0.02


def test_the_oracle_ranks_the_year_ahead_well(truth: pl.DataFrame) -> None:
    first = truth.filter(pl.col("month") == date(2025, 1, 1))
    assert _auc(first["bad"], first["pd_12m"]) > 0.75
    assert _auc(first["bad"], -first["z"]) > 0.65


def _auc(labels: pl.Series, scores: pl.Series) -> float:
    ranks = scores.rank().to_numpy()
    positive = labels.to_numpy().astype(bool)
    n_pos, n_neg = positive.sum(), (~positive).sum()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


# -- pieces -----------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 10**7 - 1), max_size=30), st.text("abc-", max_size=4))
def test_digits_spell_each_number_zero_padded(numbers: list[int], prefix: str) -> None:
    spelled = digits(prefix, np.array(numbers, dtype=np.int64), 7).to_pylist()
    assert spelled == [f"{prefix}{n:07d}" for n in numbers]


@settings(max_examples=50, deadline=None)
@given(st.dates(date(1990, 1, 1), date(2100, 1, 1)), st.integers(1, 60))
def test_timeline_covers_exactly_the_months_before_the_end(end: date, months: int) -> None:
    timeline = Timeline.ending(end, months)
    start = date(1970, 1, 1) + timedelta(days=timeline.start_day)
    assert (end.year - start.year) * 12 + end.month - start.month == months
    assert start.day == end.day or start.day < end.day
    assert timeline.calendar_starts()[0] <= timeline.start_day < timeline.end_day
    assert timeline.calendar_starts()[-1] < timeline.end_day


@settings(max_examples=8, deadline=None)
@given(st.integers(1, 40), st.integers(1, 14), st.integers(0, 2**31),
       st.dates(date(2001, 1, 1), date(2040, 12, 31)))
def test_any_small_block_keeps_the_contract(users: int, months: int, seed: int,
                                            end: date) -> None:
    timeline = Timeline.ending(end, months)
    events, truth, _bad = simulate_block(0, users=users, seed=seed, timeline=timeline,
                                         intercept=onset_intercept(0.05))
    assert events.schema == INPUT_SCHEMA
    assert stage_table(events).problems == []
    frame = pl.from_arrow(events)
    assert frame.select("source", "event_id").is_unique().all()
    end_time = datetime(end.year, end.month, end.day, tzinfo=UTC)
    assert frame.filter(pl.col("reported_at") >= end_time).is_empty()
    assert (frame["reported_at"] >= frame["event_time"]).all()
    assert truth.num_rows == users * timeline.months


# -- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(("change", "message"), [
    ({"users": 0}, "users must be a positive integer"),
    ({"months": 0}, "months must be an integer from 1 to 120"),
    ({"seed": -1}, "seed must be a non-negative integer"),
    ({"bad_rate": 0.0}, "bad_rate must be in (0, 0.5]"),
    ({"bad_rate": 0.9}, "bad_rate must be in (0, 0.5]"),
    ({"chunk_users": 0}, "chunk_users must be a positive integer"),
])
def test_bad_parameters_are_refused_and_nothing_is_written(tmp_path: Path, change: dict,
                                                           message: str) -> None:
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("]", r"\]")):
        _small(out, **change)
    assert not out.exists()


def test_cli_simulates_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["simulate", "--users", "300", "--months", "2", "--seed", "1",
                 "--out", str(tmp_path / "cli"), "--end", "2026-01-01"])
    out = capsys.readouterr().out
    assert code == 0
    assert "simulated 300 users x 2 months" in out and "users/s" in out
    assert (tmp_path / "cli" / "truth.parquet").exists()
    manifest = json.loads((tmp_path / "cli" / "manifest.json").read_text())
    assert manifest["users"] == 300 and manifest["end"] == "2026-01-01"


@pytest.mark.parametrize(("arguments", "message"), [
    (["--users", "0", "--months", "3"], "users must be a positive integer, got 0"),
    (["--users", "10", "--months", "0"], "months must be an integer from 1 to 120, got 0"),
    (["--users", "10", "--months", "3", "--end", "2026-13-01"], "--end must be a date"),
    (["--users", "10", "--months", "3", "--bad-rate", "2"], "bad_rate must be in (0, 0.5]"),
])
def test_cli_bad_input_is_one_line_and_writes_nothing(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str],
                                                      arguments: list[str],
                                                      message: str) -> None:
    out = tmp_path / "out"
    code = main(["simulate", *arguments, "--out", str(out)])
    error = capsys.readouterr().err.strip()
    assert code == 1
    assert len(error.splitlines()) == 1 and message in error
    assert not out.exists()


def test_cli_refuses_a_file_as_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "a-file"
    target.write_text("keep me")
    code = main(["simulate", "--users", "10", "--months", "3", "--out", str(target)])
    assert code == 1
    assert "exists and is not a folder" in capsys.readouterr().err
    assert target.read_text() == "keep me"


def test_money_becomes_exact_decimal_cents() -> None:
    values = np.array([0.01, 12.346, -7.5, 1e9, np.nan])
    converted = _money(values)
    assert converted.type == pa.decimal128(18, 2)
    assert converted.to_pylist() == [Decimal("0.01"), Decimal("12.35"), Decimal("-7.50"),
                                     Decimal("1000000000.00"), None]
