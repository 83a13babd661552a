"""Each aggregation of the Polars engine on hand-built events with known answers."""

from __future__ import annotations

import random
import statistics
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.engine_polars import feature_frame
from features.plan import DAYS_PER_MONTH, compile_plan
from features.store import compute_features
from tests.features.feature_rows import AS_OF, D, ago, definitions, ev, features_of, lake, repayment

LATE = {"column": "days_late", "op": "ge", "value": 30}


def payment(user: str, days_ago: float, amount: float, category: str = "grocery",
            channel: str = "online") -> dict:
    return ev("payment", user, ago(days_ago), amount=amount, currency="CNY",
              merchant_category=category, channel=channel)


def balance(user: str, days_ago: float, amount: float, **extra: object) -> dict:
    return ev("balance", user, ago(days_ago), amount=amount, currency="CNY", **extra)


def test_window_includes_its_first_day_and_excludes_the_as_of_instant() -> None:
    rows = [payment("u", 90, 1), payment("u", 90 - 1e-6, 2), payment("u", 90 + 1e-6, 4),
            ev("payment", "u", D, amount=8, currency="CNY", merchant_category="grocery",
               channel="online"),
            ev("payment", "u", D + timedelta(days=1), amount=16, currency="CNY",
               merchant_category="grocery", channel="online")]
    values = features_of(rows, {"name": "n_{window}", "kinds": ["payment"],
                                "aggregation": "count", "windows": [90, "all"]},
                         {"name": "s", "kinds": ["payment"], "aggregation": "sum",
                          "column": "amount", "windows": [90]})
    assert values["u"] == {"n_90d": 2.0, "n_all": 3.0, "s": 3.0}


def test_sum_mean_min_max_std_of_a_column() -> None:
    amounts = [10.5, 20.25, 3.0, 7.75]
    rows = [payment("u", 5 + i, amount) for i, amount in enumerate(amounts)]
    rows.append(payment("u", 200, 1000.0))
    tables = [{"name": op, "kinds": ["payment"], "aggregation": op, "column": "amount",
               "windows": [30]} for op in ("sum", "mean", "min", "max", "std")]
    values = features_of(rows, *tables)["u"]
    assert values["sum"] == pytest.approx(sum(amounts), rel=1e-12)
    assert values["mean"] == pytest.approx(statistics.mean(amounts), rel=1e-12)
    assert (values["min"], values["max"]) == (3.0, 20.25)
    assert values["std"] == pytest.approx(statistics.stdev(amounts), rel=1e-12)


def test_empty_history_gives_zero_or_missing_by_null_policy() -> None:
    rows = [ev("profile", "thin", ago(3), identity_verified=True)]
    values = features_of(
        rows,
        {"name": "n", "kinds": ["repayment"], "aggregation": "count", "null_policy": "zero"},
        {"name": "mx", "kinds": ["repayment"], "aggregation": "max", "column": "days_late",
         "null_policy": "zero"},
        {"name": "mean", "kinds": ["repayment"], "aggregation": "mean", "column": "days_late"},
        {"name": "share", "kinds": ["repayment"], "aggregation": "share",
         "where": [{"column": "days_late", "op": "eq", "value": 0}]},
        {"name": "since", "kinds": ["repayment"], "aggregation": "days_since_last"},
    )
    assert values["thin"] == {"n": 0.0, "mx": 0.0, "mean": None, "share": None, "since": None}


def test_on_time_share_and_worst_lateness() -> None:
    rows = [repayment("u", 10, 0), repayment("u", 40, 0), repayment("u", 70, 45),
            repayment("u", 300, 120)]
    values = features_of(
        rows,
        {"name": "share_{window}", "kinds": ["repayment"], "aggregation": "share",
         "where": [{"column": "days_late", "op": "eq", "value": 0}], "windows": [90, 365]},
        {"name": "worst_{window}", "kinds": ["repayment"], "aggregation": "max",
         "column": "days_late", "windows": [90, 365]},
        {"name": "late", "kinds": ["repayment"], "aggregation": "count", "filters": [LATE]},
    )["u"]
    assert values == {"share_90d": pytest.approx(2 / 3), "share_365d": 0.5,
                      "worst_90d": 45.0, "worst_365d": 120.0, "late": 2.0}


def test_ratio_of_two_aggregates_is_missing_when_the_denominator_is_zero() -> None:
    rows = [repayment("u", 10, 0, amount=50, amount_due=100),
            repayment("u", 20, 0, amount=100, amount_due=100),
            repayment("zero", 10, 0, amount=0, amount_due=0)]
    table = {"name": "r", "kinds": ["repayment"], "aggregation": "ratio",
             "numerator": {"aggregation": "sum", "kinds": ["repayment"], "column": "amount"},
             "denominator": {"aggregation": "sum", "kinds": ["repayment"],
                             "column": "amount_due"}}
    values = features_of(rows, table)
    assert values["u"]["r"] == 0.75
    assert values["zero"]["r"] is None


def test_ratio_parts_may_read_other_kinds_and_windows() -> None:
    rows = [repayment("u", 10, 0, amount=30, amount_due=40),
            repayment("u", 100, 0, amount=30, amount_due=60),
            ev("credit_opened", "u", ago(500), account_id="a", product="credit_card",
               credit_limit=400, currency="CNY")]
    table = {"name": "util", "kinds": ["repayment", "credit_opened"], "aggregation": "ratio",
             "windows": [90],
             "numerator": {"aggregation": "sum", "kinds": ["repayment"], "column": "amount_due"},
             "denominator": {"aggregation": "sum", "kinds": ["credit_opened"],
                             "column": "credit_limit", "window": "all"}}
    assert features_of(rows, table)["u"]["util"] == 0.1


def test_distinct_counts_categories_and_active_days() -> None:
    rows = [payment("u", 1.1, 1, "dining"), payment("u", 1.2, 1, "dining"),
            payment("u", 2.5, 1, "travel"), payment("u", 200, 1, "luxury")]
    values = features_of(
        rows,
        {"name": "cats", "kinds": ["payment"], "aggregation": "distinct",
         "column": "merchant_category", "windows": [90]},
        {"name": "days", "kinds": ["payment"], "aggregation": "distinct", "column": "event_day",
         "windows": [90]},
    )["u"]
    assert values == {"cats": 2.0, "days": 2.0}


def test_latest_takes_the_newest_non_missing_value() -> None:
    rows = [ev("profile", "u", ago(100), education="master", phone_since=date(2024, 7, 1)),
            ev("profile", "u", ago(10), education="bachelor"),
            ev("profile", "u", ago(5), identity_verified=True),
            balance("u", 30, 5.0), balance("u", 3, -2.5)]
    values = features_of(
        rows,
        {"name": "edu", "kinds": ["profile"], "aggregation": "latest", "column": "education",
         "map": {"none": 0, "bachelor": 3, "master": 4}},
        {"name": "phone", "kinds": ["profile"], "aggregation": "latest",
         "column": "phone_since", "transform": "age_days"},
        {"name": "verified", "kinds": ["profile"], "aggregation": "latest",
         "column": "identity_verified"},
        {"name": "bal", "kinds": ["balance"], "aggregation": "latest", "column": "amount"},
    )["u"]
    assert values == {"edu": 3.0, "phone": float((AS_OF - date(2024, 7, 1)).days),
                      "verified": 1.0, "bal": -2.5}


def test_latest_breaks_a_tie_in_time_by_the_larger_event_id() -> None:
    rows = [balance("u", 3, 1.0, event_id="b"), balance("u", 3, 2.0, event_id="a")]
    table = {"name": "bal", "kinds": ["balance"], "aggregation": "latest", "column": "amount"}
    assert features_of(rows, table)["u"]["bal"] == 1.0


def test_days_since_last_and_first_in_days_and_months() -> None:
    rows = [repayment("u", 12, 40), repayment("u", 3, 0), repayment("u", 61, 35)]
    values = features_of(
        rows,
        {"name": "since_late", "kinds": ["repayment"], "aggregation": "days_since_last",
         "filters": [LATE], "unit": "months"},
        {"name": "first", "kinds": ["repayment"], "aggregation": "days_since_first"},
    )["u"]
    assert values["since_late"] == pytest.approx(12 / DAYS_PER_MONTH, rel=1e-12)
    assert values["first"] == 61.0


def test_trend_is_the_last_window_minus_the_one_before() -> None:
    rows = [payment("u", 5, 10), payment("u", 29, 20), payment("u", 30, 40),
            payment("u", 31, 1), payment("u", 60, 2), payment("u", 61, 100)]
    values = features_of(
        rows,
        {"name": "t_sum", "kinds": ["payment"], "aggregation": "trend", "of": "sum",
         "column": "amount", "windows": [30]},
        {"name": "t_count", "kinds": ["payment"], "aggregation": "trend", "of": "count",
         "column": "amount", "windows": [30]},
    )["u"]
    assert values == {"t_sum": 70.0 - 3.0, "t_count": 1.0}


def test_filters_with_kinds_apply_only_to_those_kinds() -> None:
    rows = [repayment("u", 10, 95), repayment("u", 20, 5),
            ev("default", "u", ago(30), account_id="a", amount=10, currency="CNY",
               default_reason="charge_off")]
    table = {"name": "bad", "kinds": ["repayment", "default"], "aggregation": "count",
             "filters": [{"column": "days_late", "op": "ge", "value": 90,
                          "kinds": ["repayment"]}]}
    assert features_of(rows, table)["u"]["bad"] == 2.0


def test_in_and_null_filters() -> None:
    rows = [balance("u", 1, 1.0, account_id="acc"), balance("u", 2, 2.0),
            payment("u", 1, 5.0, "travel"), payment("u", 2, 7.0, "luxury")]
    values = features_of(
        rows,
        {"name": "no_account", "kinds": ["balance"], "aggregation": "count",
         "filters": [{"column": "account_id", "op": "is_null"}]},
        {"name": "trips", "kinds": ["payment"], "aggregation": "sum", "column": "amount",
         "filters": [{"column": "merchant_category", "op": "in", "value": ["travel", "health"]}]},
        {"name": "not_trips", "kinds": ["payment"], "aggregation": "sum", "column": "amount",
         "filters": [{"column": "merchant_category", "op": "not_in", "value": ["travel"]}]},
    )["u"]
    assert values == {"no_account": 1.0, "trips": 5.0, "not_trips": 7.0}


def test_every_user_in_the_events_gets_a_row_even_with_only_future_events() -> None:
    rows = [payment("now", 1, 5.0), ev("payment", "later", D + timedelta(days=3), amount=1,
                                       currency="CNY", merchant_category="grocery",
                                       channel="online")]
    values = features_of(rows, {"name": "n", "kinds": ["payment"], "aggregation": "count",
                                "null_policy": "zero"})
    assert values == {"later": {"n": 0.0}, "now": {"n": 1.0}}


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=-5 * 86_400_000_000, max_value=200 * 86_400_000_000),
                min_size=1, max_size=30))
def test_windowed_count_and_sum_match_a_direct_reading(ages_us: list[int]) -> None:
    """Property: the window [D - 90 days, D) holds exactly the events a person would count."""
    rows = [payment("u", age / 86_400_000_000, float(index + 1))
            for index, age in enumerate(ages_us)]
    expected = [index + 1 for index, age in enumerate(ages_us)
                if 0 < age <= 90 * 86_400_000_000]
    values = features_of(rows, {"name": "n", "kinds": ["payment"], "aggregation": "count",
                                "windows": [90], "null_policy": "zero"},
                         {"name": "s", "kinds": ["payment"], "aggregation": "sum",
                          "column": "amount", "windows": [90], "null_policy": "zero"})
    assert values["u"] == {"n": float(len(expected)), "s": float(sum(expected))}


# -- the contact graph --------------------------------------------------------------


def contact(user: str, other: str, days_ago: float, action: str = "added",
            relation: str = "friend") -> dict:
    return ev("contact", user, ago(days_ago), contact_user_id=other, contact_action=action,
              relation=relation)


SHARE = {"name": "share", "kinds": ["contact"], "aggregation": "contact_share", "windows": [365],
         "flag": {"kinds": ["repayment", "default"],
                  "filters": [{"column": "days_late", "op": "ge", "value": 90,
                               "kinds": ["repayment"]}]}}
COUNT = {"name": "count", "kinds": ["contact"], "aggregation": "contact_count"}
FAMILY = {"name": "family", "kinds": ["contact"], "aggregation": "contact_count",
          "contact_filters": [{"column": "relation", "op": "eq", "value": "family"}]}


def test_contacts_count_only_those_added_and_not_removed_before_the_as_of_date() -> None:
    rows = [contact("u", "a", 50), contact("u", "b", 40, relation="family"),
            contact("u", "b", 30, action="removed", relation="family"),
            contact("u", "c", 20, relation="family"), contact("u", "c", 10, action="removed"),
            contact("u", "c", 5, relation="family"),
            contact("u", "u", 5), contact("u", "d", -1)]
    values = features_of(rows, COUNT, FAMILY)["u"]
    assert values == {"count": 2.0, "family": 1.0}


def test_contact_share_flags_recent_serious_delinquency_only() -> None:
    rows = [contact("u", name, 100) for name in ("late", "old", "fine", "defaulted", "stranger")]
    rows += [repayment("late", 30, 95), repayment("old", 400, 120), repayment("fine", 30, 40),
             ev("default", "defaulted", ago(200), account_id="x", amount=5, currency="CNY",
                default_reason="dpd90")]
    values = features_of(rows, SHARE)
    assert values["u"]["share"] == pytest.approx(2 / 5)
    assert values["late"]["share"] is None


def test_chunks_of_users_give_the_same_features_and_contacts_see_across_chunks() -> None:
    names = [f"p{i}" for i in range(12)]
    rows = [contact(name, other, 50) for name in names for other in names[:4] if other != name]
    rows += [repayment(name, 10 + i, 95 if i % 3 == 0 else 0) for i, name in enumerate(names)]
    rows += [payment(name, 3 + i, 10.0 * i, "dining") for i, name in enumerate(names)]
    rows += [balance(name, 2, float(i)) for i, name in enumerate(names)]
    events = lake(rows).collect()
    whole = feature_frame(events, as_of=AS_OF)
    chunked = feature_frame(events, as_of=AS_OF, chunk_rows=7)
    assert chunked.equals(whole)
    assert whole["contacts_delinquent_share_365d"].drop_nulls().sum() > 0


def test_rebuilding_gives_bit_for_bit_the_same_values() -> None:
    """Sums of amounts in cents, spread over many users: a parallel reduction whose order
    changes from run to run would change the last bits, and a reproduced snapshot with it."""
    users, each = 20_000, 30
    rng = np.random.default_rng(7)
    template = lake([payment("u", 1, 1.0)]).collect()
    amount_type = template.schema["amount"]
    events = template.select(pl.all().repeat_by(users * each).explode()).with_columns(
        user_id=pl.format("u{}", pl.int_range(users * each) // each),
        event_id=pl.format("e{}", pl.int_range(users * each)),
        event_time=pl.lit(D) - pl.duration(seconds=pl.Series(rng.uniform(1, 360, users * each)
                                                              * 86_400).cast(pl.Int64)),
        amount=pl.Series(rng.integers(1, 90_000, users * each)).cast(amount_type) / 100,
    ).with_columns(pl.col("amount").cast(amount_type), ingested_at=pl.col("event_time"),
                   known_at=pl.col("event_time"))
    tables = [{"name": f"{op}_{{window}}", "kinds": ["payment"], "aggregation": op,
               "column": "amount", "windows": [30, 365]} for op in ("sum", "mean", "std")]
    builds = [compute_features(events.lazy(), as_of=AS_OF, definitions=definitions(*tables))
              for _ in range(4)]
    assert builds[0].height == users and builds[0]["std_365d"].n_unique() > users // 2
    for build in builds[1:]:
        assert build.equals(builds[0])


@pytest.mark.parametrize(("columns", "chunk_rows"), [(1, None), (4, 97), (64, 1000)])
def test_reductions_agree_with_a_plain_group_by(columns: int, chunk_rows: int | None,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Every user's sums, means, extremes, counts and distinct counts, however many
    columns a block reduces at once and however the rows come in pieces (the distinct
    days' bit sets widened piece by piece, then given up for pairs), are what one Polars
    group-by over the user's rows in the window gives (money summed exactly: decimals,
    then a float)."""
    monkeypatch.setattr("features.dense_blocks.BLOCK_COLUMNS", columns)
    rng = random.Random(11)
    rows = [payment(f"u{user}", rng.uniform(-20, 700), round(rng.uniform(-50.0, 900.0), 2),
                    category=rng.choice(["grocery", "gambling", "travel"]))
            for user in range(300) for _ in range(rng.randint(0, 40))]
    ops = ("sum", "mean", "min", "max")
    tables = [{"name": f"{op}_{{window}}", "kinds": ["payment"], "aggregation": op,
               "column": "amount", "windows": [30, 365, "all"]} for op in ops]
    tables += [
        {"name": "n_{window}", "kinds": ["payment"], "aggregation": "count",
         "windows": [30, 365, "all"]},
        {"name": "categories_{window}", "kinds": ["payment"], "aggregation": "distinct",
         "column": "merchant_category", "windows": [30, 365, "all"]},
        {"name": "days_{window}", "kinds": ["payment"], "aggregation": "distinct",
         "column": "event_day", "windows": [30, 365, "all"]},
    ]
    events = lake(rows).collect()
    found = feature_frame(events, as_of=AS_OF, plan=compile_plan(definitions(*tables)),
                          chunk_rows=chunk_rows)
    age = (pl.lit(D) - pl.col("event_time")).dt.total_microseconds() / 86_400_000_000
    for window, name in ((30, "30d"), (365, "365d"), (None, "all")):
        kept = events.filter(age > 0, True if window is None else age <= window)
        expected = kept.group_by("user_id").agg(
            *(getattr(pl.col("amount"), op)().cast(pl.Float64).alias(f"{op}_{name}")
              for op in ("sum", "min", "max")),
            (pl.col("amount").sum().cast(pl.Float64) / pl.len()).alias(f"mean_{name}"),
            pl.len().cast(pl.Float64).alias(f"n_{name}"),
            pl.col("merchant_category").n_unique().cast(pl.Float64).alias(f"categories_{name}"),
            pl.col("event_time").dt.date().n_unique().cast(pl.Float64).alias(f"days_{name}"))
        columns = [f"{op}_{name}" for op in (*ops, "n", "categories", "days")]
        got = found.select("user_id", *columns).join(expected, on="user_id", how="inner",
                                                     suffix="_expected")
        assert got.height == expected.height > 0
        for column in columns:
            assert got[column].to_list() == got[f"{column}_expected"].to_list(), column
