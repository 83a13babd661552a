"""Hand-built, lake-shaped events for the feature-store tests.

``ev(...)`` writes one event the way the lake stores it (every column of
LAKE_SCHEMA, null where the kind has none); ``lake(...)`` turns a list of them
into a LazyFrame of *resolved* events, the feature engines' input.
"""

from __future__ import annotations

import itertools
import tomllib
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import polars as pl
import pyarrow as pa

from config.feature_definitions import DEFINITIONS_FILE, FeatureSet, parse_feature_definitions
from features.events import LAKE_SCHEMA
from features.store import compute_features

AS_OF = date(2025, 7, 1)
D = datetime(2025, 7, 1, tzinfo=UTC)
_ids = itertools.count()
MONEY = ("amount", "amount_due", "credit_limit")


def ago(days: float) -> datetime:
    """The instant ``days`` days before the as-of date D."""
    return D - timedelta(days=days)


def ev(kind: str, user: str, when: datetime, *, known_at: datetime | None = None,
       ingested_at: datetime | None = None, source: str = "src", event_id: str | None = None,
       **payload: Any) -> dict[str, Any]:
    """One lake row; money given as numbers becomes Decimal, lateness is derived as ingestion does."""
    ingested = ingested_at or when + timedelta(hours=1)
    row: dict[str, Any] = {field.name: None for field in LAKE_SCHEMA}
    row.update(source=source, event_id=event_id or f"e{next(_ids)}", user_id=user, kind=kind,
               event_time=when, ingested_at=ingested, known_at=known_at or ingested)
    for name, value in payload.items():
        row[name] = Decimal(str(value)) if name in MONEY and value is not None else value
    if row["due_date"] is not None and row["paid_date"] is not None:
        row["days_late"] = max(0, (row["paid_date"] - row["due_date"]).days)
    return row


def repayment(user: str, days_ago: float, days_late: int, *, amount: float = 100.0,
              amount_due: float = 100.0, **extra: Any) -> dict[str, Any]:
    when = ago(days_ago)
    due = when.date() - timedelta(days=days_late)
    return ev("repayment", user, when, account_id="acc", amount=amount, amount_due=amount_due,
              currency="CNY", due_date=due, paid_date=when.date(), **extra)


def table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=LAKE_SCHEMA)


def lake(rows: list[dict[str, Any]]) -> pl.LazyFrame:
    """Resolved events (no corrections pending) as the engines receive them."""
    return pl.from_arrow(table(rows)).lazy()  # type: ignore[union-attr]


def definitions(*features: dict[str, Any]) -> FeatureSet:
    """A feature set of just these [[feature]] tables (the real file's header)."""
    document = tomllib.loads(DEFINITIONS_FILE.read_text(encoding="utf-8"))
    defaults = {"dimension": "behaviour", "description_en": "x {window}",
                "description_zh": "x {window}", "direction": 0, "actionable": False,
                "null_policy": "null", "windows": ["all"]}
    document["feature"] = [{**defaults, **feature} for feature in features]
    return parse_feature_definitions(document)


def features_of(rows: list[dict[str, Any]], *feature_tables: dict[str, Any],
                as_of: date = AS_OF) -> dict[str, dict[str, float | None]]:
    """user_id -> feature -> value, computed by the Polars engine from these lake rows."""
    frame = compute_features(lake(rows), as_of=as_of, definitions=definitions(*feature_tables))
    return {row.pop("user_id"): row for row in frame.to_dicts()}


def record(kind: str, user: str, when: datetime, *, reported_at: datetime | None = None,
           source: str = "src", event_id: str | None = None, **payload: Any) -> dict[str, Any]:
    """One input record as a furnisher sends it (for ingestion into a real lake)."""
    out: dict[str, Any] = {"kind": kind, "source": source, "event_id": event_id or f"r{next(_ids)}",
                           "user_id": user, "event_time": when,
                           "reported_at": reported_at or when + timedelta(hours=1)}
    for name, value in payload.items():
        out[name] = Decimal(str(value)) if name in MONEY and value is not None else value
    return out


def repayment_record(user: str, days_ago: float, days_late: int, *, amount: float = 100.0,
                     **extra: Any) -> dict[str, Any]:
    when = ago(days_ago)
    return record("repayment", user, when, account_id="acc", amount=amount, amount_due=amount,
                  currency="CNY", due_date=when.date() - timedelta(days=days_late),
                  paid_date=when.date(), **extra)
