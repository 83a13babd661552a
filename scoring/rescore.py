"""One person's score recomputed now, in place of their row of the latest published set.

A dispute changes what is known about one person; their score should follow at
once, without recomputing the population. The row is computed exactly as the
population recompute would compute it from a snapshot as of the same date D
as known now: the person's events and their contacts' events (the connections
features read the contacts' own histories) are read from the lake as known at
T = now up to the current ingest watermark W, the features computed by the
embedded engine, and the row scored, explained and given tips by the same
model version as the published set (:func:`scoring.recompute.score_records`).

The published row is replaced in one transaction, and the replacement is
logged in ``score_rescores`` with (D, T, W) and a snapshot id suffixed with
the cause, so the row stays reproducible; score history keeps one row per
user and as-of date.

A later population recompute of D reads D's snapshot as known at D, which may
predate a dispute: :func:`disputed_rows` finds the people whose disputes that
snapshot cannot see and gives the recompute their rows computed here, published
in the same transaction as the rest of the set and logged like a filing's.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from config.database import get_engine, upgrade
from config.settings import Settings
from features import lake
from features.store import (
    FeatureStoreError,
    SnapshotManifest,
    compute_features,
    load_snapshot,
    snapshot_dir,
)
from features.user_events import dispute_restore_id, dispute_void_id, events_around
from scoring.dispute_tables import OPEN, REJECTED, UPHELD, Dispute, ScoreRescore
from scoring.explain import Explainer
from scoring.publish import SCORED, ScoreRecord, current_score
from scoring.recompute import TIP_REFERENCE_FILE, explainer_for, score_records, tip_reference
from scoring.registry import load_version
from scoring.score_tables import PUBLISHED, ScoreHistory, ScoreSet
from scoring.tips import TipAdvisor

log = logging.getLogger(__name__)


class RescoreError(ValueError):
    """A one-user recompute that cannot go ahead; ``str()`` is one line."""


@dataclass(frozen=True)
class Rescore:
    """What a one-user recompute replaced: the as-of date, the set, the score before and after."""

    user_id: str
    as_of: date
    set_id: int
    model_version: str
    snapshot_id: str
    as_known_at: datetime
    event_watermark: datetime | None
    score_before: int | None
    score_after: int | None


def rescore_user(settings: Settings, user_id: str, *, cause: str,
                 dispute_id: int | None = None) -> Rescore | None:
    """Recompute ``user_id``'s row of their latest published as-of date; None when they have none."""
    engine = get_engine(settings)
    upgrade(engine)
    published = current_score(engine, user_id)
    if published is None:
        return None
    known_at, mark = datetime.now(UTC), lake.watermark(settings)
    record = score_user(settings, user_id, as_of=published.as_of,
                        model_version=published.model_version, as_known_at=known_at,
                        watermark=mark)
    suffix = f"+dispute-{dispute_id}" if dispute_id is not None else f"+{cause}"
    snapshot_id = snapshot_dir(settings, published.as_of, known_at).name + f"_user{suffix}"
    rescore = Rescore(user_id=user_id, as_of=published.as_of, set_id=0,
                      model_version=published.model_version, snapshot_id=snapshot_id,
                      as_known_at=known_at, event_watermark=mark,
                      score_before=published.score, score_after=record.score)
    set_id = _replace_row(engine, rescore, record, cause=cause, dispute_id=dispute_id)
    log.info("rescored %s as of %s (%s): %s -> %s", user_id, published.as_of, cause,
             published.score, record.score)
    return Rescore(**{**rescore.__dict__, "set_id": set_id})


def score_user(settings: Settings, user_id: str, *, as_of: date, model_version: str,
               as_known_at: datetime, watermark: datetime | None) -> ScoreRecord:
    """The row the population recompute would publish for ``user_id`` from a snapshot (D, T, W)."""
    try:
        model = load_version(settings, model_version)
    except (KeyError, LookupError, ValueError, OSError) as exc:
        raise RescoreError(f"model {model_version} cannot be loaded: {exc}") from None
    explainer = explainer_for(model)
    frame = user_features(settings, user_id, as_of=as_of, as_known_at=as_known_at,
                          watermark=watermark)
    reference = tip_reference(settings, model, explainer,
                              fallback=_tip_fallback(settings, model_version, as_of, frame))
    return next(iter(score_records(frame, explainer, TipAdvisor(explainer, reference))))


def user_features(settings: Settings, user_id: str, *, as_of: date, as_known_at: datetime,
                  watermark: datetime | None) -> pl.DataFrame:
    """One row: ``user_id``'s features as of D as known at T (nulls when nothing is known)."""
    return people_features(settings, [user_id], as_of=as_of, as_known_at=as_known_at,
                           watermark=watermark)


def people_features(settings: Settings, user_ids: list[str], *, as_of: date, as_known_at: datetime,
                    watermark: datetime | None) -> pl.DataFrame:
    """One row per person of ``user_ids``, in order, read from the lake in one pass."""
    events = events_around(settings, user_ids, as_known_at=as_known_at, watermark=watermark)
    frame = compute_features(events.lazy(), as_of=as_of)
    people = pl.DataFrame({"user_id": user_ids}, schema={"user_id": frame.schema["user_id"]})
    return people.join(frame, on="user_id", how="left", maintain_order="left")


RECOMPUTE_CAUSE = "recompute_disputed"
"""The cause logged for a row a population recompute took from a one-user recompute."""


@dataclass
class DisputedRows:
    """The rows a population recompute of D takes from one-user recomputes, and their log.

    ``rows`` maps each person whose disputes D's snapshot cannot see to their row
    as known now; :meth:`replace` swaps those rows into the population's stream
    (a person the snapshot does not hold is not added), and :meth:`log` records
    each swap in ``score_rescores`` inside the publishing transaction.
    """

    as_of: date
    model_version: str
    as_known_at: datetime
    event_watermark: datetime | None
    rows: dict[str, ScoreRecord] = field(default_factory=dict)
    disputes: dict[str, int] = field(default_factory=dict)
    snapshot_ids: dict[str, str] = field(default_factory=dict)
    replaced: dict[str, int | None] = field(default_factory=dict)

    def replace(self, records: Iterable[ScoreRecord]) -> Iterable[ScoreRecord]:
        """``records`` with the disputed people's rows swapped in (unchanged when there are none)."""
        return self._swapped(records) if self.rows else records

    def _swapped(self, records: Iterable[ScoreRecord]) -> Iterator[ScoreRecord]:
        for record in records:
            mine = self.rows.get(record.user_id)
            if mine is not None:
                self.replaced[record.user_id] = record.score
            yield record if mine is None else mine

    def log(self, connection: Connection, set_id: int) -> None:
        """Record every swapped row, as a filing records its rescore (called by the publish)."""
        now = datetime.now(UTC)
        logs = [{"set_id": set_id, "user_id": user, "as_of": self.as_of,
                 "dispute_id": self.disputes[user], "cause": RECOMPUTE_CAUSE,
                 "model_version": self.model_version, "snapshot_id": self.snapshot_ids[user],
                 "as_known_at": self.as_known_at, "event_watermark": self.event_watermark,
                 "score_before": before, "score_after": self.rows[user].score, "created_at": now}
                for user, before in self.replaced.items()]
        if logs:
            connection.execute(sa.insert(ScoreRescore.__table__), logs)
        for user, before in self.replaced.items():
            log.info("recompute of %s keeps dispute %d: %s rescored, %s -> %s", self.as_of,
                     self.disputes[user], user, before, self.rows[user].score)


def disputed_rows(settings: Settings, manifest: SnapshotManifest, *, model_version: str,
                  explainer: Explainer, advisor: TipAdvisor) -> DisputedRows:
    """The rows that keep disputes in force in a population recompute from ``manifest``'s snapshot.

    The people are those with a dispute the snapshot (D, T, W) cannot see
    (:func:`unseen_disputes`); each gets the row a filing would give them (as of D,
    as known now), scored by the recompute's own explainer and tips.
    """
    known_at, mark = datetime.now(UTC), lake.watermark(settings)
    kept = DisputedRows(as_of=manifest.as_of, model_version=model_version, as_known_at=known_at,
                        event_watermark=mark)
    kept.disputes = unseen_disputes(settings, as_known_at=manifest.as_known_at,
                                    watermark=manifest.event_watermark)
    if not kept.disputes:
        return kept
    frame = people_features(settings, sorted(kept.disputes), as_of=manifest.as_of,
                            as_known_at=known_at, watermark=mark)
    kept.rows = {record.user_id: record for record in score_records(frame, explainer, advisor)}
    name = snapshot_dir(settings, manifest.as_of, known_at).name
    kept.snapshot_ids = {user: f"{name}_user+dispute-{dispute}" for user, dispute in kept.disputes.items()}
    return kept


def unseen_disputes(settings: Settings, *, as_known_at: datetime,
                    watermark: datetime | None) -> dict[str, int]:
    """Person -> their latest dispute that a snapshot as known at T (up to W) gets wrong.

    An open or upheld dispute whose void the snapshot does not see (it was filed
    later), and a rejected one whose void it sees but not the restore (rejected
    later): in both the snapshot counts the event the other way round from now.
    The lake decides what the snapshot sees, exactly as it did when it was built.
    """
    table = Dispute.__table__
    with get_engine(settings).connect() as connection:
        disputes = connection.execute(sa.select(table.c.id, table.c.user_id, table.c.status)
                                      .order_by(table.c.id)).all()
    if not disputes:
        return {}
    seen = _seen_ids(settings, {dispute_void_id(d.id) for d in disputes}
                     | {dispute_restore_id(d.id) for d in disputes if d.status == REJECTED},
                     as_known_at=as_known_at, watermark=watermark)
    wrong = {}
    for dispute in disputes:
        void_seen = dispute_void_id(dispute.id) in seen
        if (dispute.status in (OPEN, UPHELD) and not void_seen) or (
                dispute.status == REJECTED and void_seen
                and dispute_restore_id(dispute.id) not in seen):
            wrong[dispute.user_id] = dispute.id
    return wrong


def _seen_ids(settings: Settings, event_ids: set[str], *, as_known_at: datetime,
              watermark: datetime | None) -> set[str]:
    """Those of ``event_ids`` (the platform's corrections) that a snapshot (T, W) reads."""
    known = pl.col("known_at") <= as_known_at
    if watermark is not None:
        known = known & (pl.col("ingested_at") <= watermark)
    # Null first: row groups without corrections are skipped on their statistics.
    found = (lake.scan_stored(settings).filter(pl.col("corrects").is_not_null())
             .filter(pl.col("event_id").is_in(sorted(event_ids)) & known)
             .select("event_id").collect())
    return set(found.get_column("event_id").to_list())


def _tip_fallback(settings: Settings, version: str, as_of: date, frame: pl.DataFrame) -> pl.DataFrame:
    """The population of D, needed only when the version's tip table was never built."""
    if settings.path("explanations", version, TIP_REFERENCE_FILE).is_file():
        return frame
    try:
        return load_snapshot(settings, as_of)
    except FeatureStoreError:
        return frame


def _replace_row(engine: Engine, rescore: Rescore, record: ScoreRecord, *, cause: str,
                 dispute_id: int | None) -> int:
    """Swap the user's row of the published set of D and log it, in one transaction."""
    sets, history = ScoreSet.__table__, ScoreHistory.__table__
    with engine.begin() as connection:
        set_id = connection.execute(
            sa.select(sets.c.id).where(sets.c.as_of == rescore.as_of, sets.c.status == PUBLISHED)
            .with_for_update()).scalar()
        if set_id is None:
            raise RescoreError(f"no published score set as of {rescore.as_of} any more")
        old = connection.execute(sa.select(history.c.status).where(
            history.c.set_id == set_id, history.c.user_id == rescore.user_id)).scalar()
        connection.execute(sa.delete(history).where(history.c.set_id == set_id,
                                                    history.c.user_id == rescore.user_id))
        connection.execute(sa.insert(history).values(_history_row(set_id, rescore.as_of, record)))
        counters = _counter_changes(sets, old, record.status)
        if counters:
            connection.execute(sa.update(sets).where(sets.c.id == set_id).values(**counters))
        connection.execute(sa.insert(ScoreRescore.__table__).values(
            set_id=set_id, user_id=rescore.user_id, as_of=rescore.as_of, dispute_id=dispute_id,
            cause=cause, model_version=rescore.model_version, snapshot_id=rescore.snapshot_id,
            as_known_at=rescore.as_known_at, event_watermark=rescore.event_watermark,
            score_before=rescore.score_before, score_after=rescore.score_after,
            created_at=datetime.now(UTC)))
    return int(set_id)


def _history_row(set_id: int, as_of: date, record: ScoreRecord) -> dict[str, Any]:
    return {"set_id": set_id, "user_id": record.user_id, "as_of": as_of, "score": record.score,
            "score_unclipped": record.score_unclipped, "band_code": record.band_code,
            "base_points": record.base_points, "features": _loaded(record.features),
            "dimensions": _loaded(record.dimensions), "reasons": _loaded(record.reasons),
            "tips": _loaded(record.tips), "status": record.status, "reason": record.reason}


def _counter_changes(sets: sa.Table, old: str | None, new: str) -> dict[str, Any]:
    """n_scored / n_unscored after the row's status went from ``old`` (None: no row) to ``new``."""
    change = {"n_scored": 0, "n_unscored": 0}
    if old is not None:
        change["n_scored" if old == SCORED else "n_unscored"] -= 1
    change["n_scored" if new == SCORED else "n_unscored"] += 1
    return {name: sets.c[name] + delta for name, delta in change.items() if delta}


def _loaded(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value
