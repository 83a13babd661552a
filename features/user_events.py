"""The events behind one person's score, as that person may see (and dispute) them.

A person sees their events by family (config/event_families.toml), newest
first, each as the furnisher last reported it, and whether a dispute keeps it
out of scoring. Everything is read from the lake with its point-in-time rule
(:func:`features.lake.resolve`); nothing here knows of the disputes table.

A dispute works through the lake (scoring/disputes.py): filing one ingests a
void correction of the event (event id ``altcredit-dispute-<id>-void``),
rejecting it ingests a correction that restores the furnisher's version
(``altcredit-dispute-<id>-restore``). So an event is *excluded* exactly when
the lake's resolution drops it while the furnishers' own rows alone keep it,
and a snapshot as known at T includes it exactly when no open or upheld
dispute was known at T.

An event is read with every row that shares its key (source and
``coalesce(corrects, event_id)``), whoever those rows are about, because a
correction may move an event from one person to another.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import polars as pl

from config.event_families import load_event_families
from config.feature_taxonomy import LATENESS_KINDS
from config.settings import Settings
from features import lake
from features.events import DISPUTE_PREFIX, LAKE_SCHEMA, payload_fields

FAMILIES: dict[str, tuple[str, ...]] = load_event_families().kinds()
"""family -> event kinds, from config/event_families.toml."""

TARGET = "__target"


def dispute_void_id(dispute_id: int) -> str:
    """The event id of the void correction that keeps a disputed event out of scoring."""
    return f"{DISPUTE_PREFIX}{dispute_id}-void"


def dispute_restore_id(dispute_id: int) -> str:
    """The event id of the correction that puts a rejected dispute's event back."""
    return f"{DISPUTE_PREFIX}{dispute_id}-restore"


@dataclass(frozen=True)
class UserEvent:
    """One event as its furnisher last reported it.

    ``event_id`` is the event's own id (a correction's target, never the
    correction's id); ``details`` holds the payload fields that have a value, as
    JSON-ready values (money and dates as text); ``excluded`` is true while an
    open or upheld dispute keeps it out of scoring; ``first_known_at`` is when
    any version of it first became known.
    """

    source: str
    event_id: str
    kind: str
    event_time: datetime
    known_at: datetime
    details: dict[str, Any]
    excluded: bool
    user_id: str
    first_known_at: datetime


@dataclass(frozen=True)
class EventPage:
    items: list[UserEvent]
    total: int
    page: int
    page_size: int
    family: str


def user_events(settings: Settings, user_id: str, *, family: str, page: int = 1,
                page_size: int = 50, as_known_at: datetime | None = None) -> EventPage:
    """One page of a person's events of one family, newest first (as known now by default)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; one of {', '.join(FAMILIES)}")
    limit = load_event_families().paging.page_size_max
    if not isinstance(page, int) or page < 1:
        raise ValueError(f"page must be a whole number from 1, got {page!r}")
    if not isinstance(page_size, int) or not 1 <= page_size <= limit:
        raise ValueError(f"page_size must be a whole number from 1 to {limit}, got {page_size!r}")
    events = [event for event in _events(stored_rows(settings, user_ids=[user_id]),
                                         as_known_at=as_known_at)
              if event.user_id == user_id and event.kind in FAMILIES[family]]
    events.sort(key=lambda event: (event.event_time, event.source, event.event_id), reverse=True)
    start = (page - 1) * page_size
    return EventPage(items=events[start:start + page_size], total=len(events), page=page,
                     page_size=page_size, family=family)


def find_event(settings: Settings, source: str, event_id: str, *,
               as_known_at: datetime | None = None) -> UserEvent | None:
    """The event ``(source, event_id)`` as its furnisher last reported it; None when unknown.

    ``event_id`` may be the event's own id or the id of one of its corrections. An
    event its furnisher voided is unknown.
    """
    stored = lake.scan_stored(settings)
    named = stored.filter((pl.col("source") == source) & (
        (pl.col("event_id") == event_id) | (pl.col("corrects") == event_id)))
    found = _events(_rows_of(stored, named), as_known_at=as_known_at)
    return found[0] if found else None


def stored_rows(settings: Settings, *, user_ids: Collection[str],
                watermark: datetime | None = None) -> pl.DataFrame:
    """Every stored row of every event that has a row about one of ``user_ids``."""
    stored = lake.scan_stored(settings, watermark=watermark)
    return _rows_of(stored, stored.filter(pl.col("user_id").is_in(list(user_ids))))


def events_around(settings: Settings, user_ids: Collection[str], *, as_known_at: datetime | None,
                  watermark: datetime | None) -> pl.DataFrame:
    """The resolved events of ``user_ids`` and of everyone they ever added as a contact.

    What the connections features of these people read (each contact is flagged
    by their own history); the contacts are taken from every stored contact row
    of the people, a superset of those that count, which changes none of their
    features. Several people are read in one pass over the lake.
    """
    mine = stored_rows(settings, user_ids=user_ids, watermark=watermark)
    contacts = (mine.filter(pl.col("kind") == "contact").get_column("contact_user_id")
                .drop_nulls().unique().to_list())
    others = sorted(set(contacts) - set(user_ids))
    people = [*user_ids, *others]
    rows = mine if not others else pl.concat(
        [mine, stored_rows(settings, user_ids=others, watermark=watermark)]
    ).unique(subset=["source", "event_id"], keep="first")
    resolved = lake.resolve(rows.lazy(), as_known_at=as_known_at, watermark=watermark)
    return resolved.filter(pl.col("user_id").is_in(people)).collect()


def void_record(event: UserEvent, *, event_id: str) -> dict[str, Any]:
    """An input record (for the ingest path) that retracts ``event``."""
    return {**_correction(event, event_id), "void": True}


def restore_record(event: UserEvent, *, event_id: str) -> dict[str, Any]:
    """An input record (for the ingest path) that states ``event``'s furnished version again."""
    payload = {name: value for name, value in event.details.items() if name != "days_late"}
    return {**_correction(event, event_id), **payload}


def _correction(event: UserEvent, event_id: str) -> dict[str, Any]:
    return {"source": event.source, "event_id": event_id, "user_id": event.user_id,
            "kind": "correction", "corrects": event.event_id, "corrected_kind": event.kind,
            "event_time": event.event_time.isoformat()}


# -- resolution ---------------------------------------------------------------------


def _keyed(frame: pl.LazyFrame) -> pl.LazyFrame:
    return frame.with_columns(pl.coalesce("corrects", "event_id").alias(TARGET))


def _rows_of(stored: pl.LazyFrame, named: pl.LazyFrame) -> pl.DataFrame:
    """Every stored row of the events that the rows ``named`` belong to.

    Filtered scans instead of a join, so the Parquet reader decodes little: the
    named rows, the corrections of their events (``corrects`` is mostly null, so
    cheap to test), and, only when a named row is itself a correction, the
    original rows it corrects (a few stray rows of other sources are dropped).
    """
    found = named.collect()
    keys = _keyed(found.lazy()).select("source", TARGET).unique().collect()
    if keys.is_empty():
        return found.select(LAKE_SCHEMA.names)
    ids, sources = keys[TARGET].implode(), keys["source"].unique().implode()
    # Null first: row groups without corrections are skipped on their statistics.
    corrections = (stored.filter(pl.col("corrects").is_not_null())
                   .filter(pl.col("corrects").is_in(ids) & pl.col("source").is_in(sources)))
    parts = [found.lazy(), corrections]
    originals = found.get_column("corrects").drop_nulls().unique()
    if originals.len():
        parts.append(stored.filter(pl.col("event_id").is_in(originals.implode())
                                   & pl.col("source").is_in(sources)))
    rows = pl.concat([part.select(LAKE_SCHEMA.names) for part in parts]).unique(
        subset=["source", "event_id"], keep="first")
    return _keyed(rows).join(keys.lazy(), on=["source", TARGET], how="semi") \
        .select(LAKE_SCHEMA.names).collect()


def _events(rows: pl.DataFrame, *, as_known_at: datetime | None) -> list[UserEvent]:
    """Each event of ``rows`` as furnished (dispute rows left out), marked when excluded."""
    if rows.is_empty():
        return []
    rows = rows.select(LAKE_SCHEMA.names)
    if as_known_at is not None:
        rows = rows.filter(pl.col("known_at") <= as_known_at)
    ours = pl.col("event_id").str.starts_with(DISPUTE_PREFIX)
    furnished = lake.resolve(rows.filter(~ours).lazy()).collect()
    counted = lake.resolve(rows.lazy()).select("source", pl.coalesce("corrects", "event_id")
                                               .alias(TARGET)).collect()
    included = set(zip(counted["source"], counted[TARGET], strict=True))
    first = (rows.filter(~ours & ~pl.col("voided").fill_null(False))
             .group_by("source", pl.coalesce("corrects", "event_id").alias(TARGET))
             .agg(pl.col("known_at").min()))
    first_known = {(s, t): k for s, t, k in first.iter_rows()}
    events = []
    for row in furnished.iter_rows(named=True):
        target = row["corrects"] or row["event_id"]
        events.append(UserEvent(
            source=row["source"], event_id=target, kind=row["kind"], event_time=row["event_time"],
            known_at=row["known_at"], details=_details(row),
            excluded=(row["source"], target) not in included, user_id=row["user_id"],
            first_known_at=first_known.get((row["source"], target), row["known_at"])))
    return events


def _details(row: dict[str, Any]) -> dict[str, Any]:
    names = list(payload_fields(row["kind"]))
    if row["kind"] in LATENESS_KINDS:
        names.append("days_late")
    return {name: _plain(row[name]) for name in names if row.get(name) is not None}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value
