"""The Polars engine's stream: hashed user keys give what the ids themselves give, and the
snapshot build (file by file, corrections resolved apart) equals the lake's resolution."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from config.settings import Settings
from features import lake
from features.engine_polars import KeyCollision, features_of_stream, input_columns
from features.event_parts import CHECK, KEY, derived_columns
from features.feature_stream import FeatureStream
from features.ingest import ingest_records
from features.plan import compile_plan
from features.store import build_snapshot, compute_features, load_snapshot
from tests.features.feature_rows import AS_OF, D, ago, ev, record, repayment, repayment_record
from tests.features.feature_rows import lake as lake_frame


def population() -> pl.DataFrame:
    names = [f"p{i}" for i in range(9)]
    rows = [ev("contact", name, ago(40), contact_user_id=other, contact_action="added",
               relation="friend") for name in names for other in (*names[:3], "stranger")
            if other != name]
    rows += [repayment(name, 10 + i, 95 if i % 3 == 0 else i) for i, name in enumerate(names)]
    rows += [ev("payment", name, ago(3 + i), amount=5.0 * i, currency="CNY",
                merchant_category="dining" if i % 2 else "grocery", channel="online")
             for i, name in enumerate(names)]
    rows += [ev("balance", name, ago(2), amount=float(i), currency="CNY") for i, name in enumerate(names)]
    rows += [ev("payment", "later", D + timedelta(days=2), amount=1.0, currency="CNY",
                merchant_category="dining", channel="online")]
    return lake_frame(rows).collect()


def features(events: pl.DataFrame, *, hashed: bool, pieces: int = 1) -> pl.DataFrame:
    plan = compile_plan()
    events = events.select(input_columns(events.lazy(), plan))
    step = -(-events.height // pieces)
    with FeatureStream(plan, AS_OF, hashed=hashed) as stream:
        stream.add_all(stream.prepare(events.slice(offset, step))
                       for offset in range(0, events.height, step))
        return features_of_stream(stream).collect()


def test_hashed_keys_give_what_the_user_ids_themselves_give() -> None:
    events = population()
    hashed = features(events, hashed=True)
    assert_frame_equal(hashed, features(events, hashed=False))
    assert hashed["user_id"].to_list() == sorted({*events["user_id"].to_list()})
    assert hashed["contacts_delinquent_share_365d"].drop_nulls().sum() > 0


@pytest.mark.parametrize("hashed", [True, False])
def test_pieces_numbered_ahead_of_their_reduction_give_what_one_piece_gives(hashed: bool) -> None:
    events = population()
    assert_frame_equal(features(events, hashed=hashed, pieces=5),
                       features(events, hashed=hashed))


def test_two_ids_sharing_a_key_are_detected() -> None:
    plan = compile_plan()
    events = population()
    with FeatureStream(plan, AS_OF) as stream:
        piece = stream.prepare(events.select(input_columns(events.lazy(), plan)))
        shared = piece.keyed.with_columns(pl.lit(7, pl.UInt64).alias(KEY),
                                          pl.col(CHECK).shuffle(seed=1))
        with pytest.raises(KeyCollision):
            stream.add(replace(piece, keyed=shared))


def test_the_snapshot_build_equals_the_features_of_the_lakes_resolution(settings: Settings) -> None:
    first = repayment_record("u", 40, 0, event_id="pay-1")
    payload = {k: first[k] for k in ("account_id", "amount", "amount_due", "currency", "due_date")}
    ingest_records(settings, [
        first, repayment_record("u", 20, 5), repayment_record("v", 30, 31),
        repayment_record("w", 5, 95, reported_at=D + timedelta(days=3)),
        record("contact", "u", ago(100), contact_user_id="v", contact_action="added",
               relation="friend"),
        record("correction", "u", first["event_time"], event_id="fix-1", corrects="pay-1",
               corrected_kind="repayment", reported_at=ago(6),
               paid_date=first["due_date"] + timedelta(days=9), **payload),
    ])
    ingest_records(settings, [
        record("correction", "v", ago(30), event_id="void-x", corrects="nothing",
               corrected_kind="repayment", void=True, reported_at=ago(1)),
        repayment_record("v", 3, 0, source="other", event_id="pay-1"),
    ])
    for known_at in (D, D + timedelta(days=10)):
        build_snapshot(settings, as_of=AS_OF, as_known_at=known_at)
        expected = compute_features(lake.scan_events(settings, as_known_at=known_at,
                                                     watermark=lake.watermark(settings)), as_of=AS_OF)
        assert_frame_equal(load_snapshot(settings, AS_OF, known_at), expected)


def test_a_key_collision_is_answered_on_the_ids_themselves(
        monkeypatch: pytest.MonkeyPatch) -> None:
    events = population()
    expected = features(events, hashed=False)
    original = FeatureStream.key_expr

    def one_key(stream: FeatureStream) -> pl.Expr:
        return pl.lit(7, pl.UInt64) if stream.hashed else original(stream)

    monkeypatch.setattr(FeatureStream, "key_expr", one_key)
    assert_frame_equal(compute_features(events.lazy(), as_of=AS_OF), expected)


@pytest.mark.parametrize("years", [(1999, 2030), (1890, 2030), (2000, 2250)])
def test_event_months_from_the_table_are_the_calendar_s(years: tuple[int, int]) -> None:
    """Inside 1900-2200 months come from a table by day; outside, from the calendar."""
    low, high = (datetime(year, 1, 1, tzinfo=UTC).timestamp() * 1e6 for year in years)
    stamps = np.random.default_rng(3).integers(int(low), int(high), 5_000)
    events = pl.DataFrame({"event_time": pl.Series(stamps).cast(pl.Datetime("us", "UTC"))})
    found = events.select(derived_columns(events)["event_month"]).to_series()
    calendar = events.select(pl.col("event_time").dt.year().cast(pl.Int64) * 12
                             + pl.col("event_time").dt.month().cast(pl.Int64)).to_series()
    assert found.to_list() == calendar.to_list()
