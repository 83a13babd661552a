"""Published scores: atomic score sets, one history row per user and as-of date, and the readers.

A recompute writes its rows under a new set in status ``building`` (invisible
to every reader), in as many transactions as it likes. Then ONE transaction
marks it ``published`` and supersedes the previously published set of the same
as-of date, deleting that set's rows: readers see the old complete set until
the commit and the new complete set after it, never a mix, and history keeps
one row per user and as-of date. A run killed half-way leaves only a building
set, which the next publish of that date discards.

Every row keeps its model version and feature-snapshot id (through its set),
so any published score can be reproduced and re-explained.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from itertools import islice
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from scoring.score_tables import (
    BUILDING,
    HISTORY_COLUMNS,
    PUBLISHED,
    SUPERSEDED,
    ScoreHistory,
    ScoreSet,
)

log = logging.getLogger(__name__)

__all__ = ["PublishedScore", "ScoreRecord", "ScoreSetSummary", "current_score", "current_scores",
           "latest_published_as_of", "latest_score_set", "list_score_sets", "list_scores",
           "publish_scores", "score_at", "score_history"]

SCORED = "scored"
INSUFFICIENT_DATA = "insufficient_data"
CHUNK_ROWS = 20_000  # rows per transaction: a bulk load, ~100 MB of JSON at most
READ_CHUNK = 500  # users per query of a bulk read (well under any bound-parameter limit)


@dataclass(frozen=True)
class ScoreRecord:
    """One user's row to publish. JSON fields may be given already encoded (a ``str``)."""

    user_id: str
    score: int | None
    score_unclipped: float | None
    band_code: str | None
    base_points: float | None
    features: dict[str, float] | str = field(default_factory=dict)
    dimensions: dict[str, float] | str = field(default_factory=dict)
    reasons: list[dict[str, Any]] | str = field(default_factory=list)
    tips: list[dict[str, Any]] | str = field(default_factory=list)
    status: str = SCORED
    reason: str | None = None

    def __post_init__(self) -> None:
        if not self.user_id:
            raise ValueError("user_id is empty")
        if self.status not in (SCORED, INSUFFICIENT_DATA):
            raise ValueError(f"status must be {SCORED} or {INSUFFICIENT_DATA}, got {self.status!r}")
        if (self.status == SCORED) != (self.score is not None):
            raise ValueError(f"user {self.user_id}: a scored row has a score, an unscored row none")
        if self.status == INSUFFICIENT_DATA and not self.reason:
            raise ValueError(f"user {self.user_id}: an unscored row needs the reason")


@dataclass(frozen=True)
class PublishedScore:
    """A published score with everything needed to explain and reproduce it."""

    user_id: str
    as_of: date
    score: int | None
    score_unclipped: float | None
    band_code: str | None
    model_version: str
    snapshot_id: str
    base_points: float | None
    features: dict[str, float]
    dimensions: dict[str, float]
    reasons: list[dict[str, Any]]
    tips: list[dict[str, Any]]
    status: str
    reason: str | None
    clipped: bool


@dataclass(frozen=True)
class ScoreSetSummary:
    set_id: int
    as_of: date
    model_version: str
    snapshot_id: str
    status: str
    n_scored: int
    n_unscored: int
    created_at: datetime
    published_at: datetime | None
    superseded: int | None = None


# -- writing ------------------------------------------------------------------------


def publish_scores(engine: Engine, *, as_of: date, model_version: str, snapshot_id: str,
                   records: Iterable[ScoreRecord],
                   on_publish: Callable[[Connection, int], None] | None = None) -> ScoreSetSummary:
    """Write ``records`` under a new set, then publish it atomically (replacing that date's set).

    ``on_publish(connection, set_id)`` runs inside the publishing transaction, for
    rows that must appear exactly when the set does (the log of rows a one-user
    recompute supplied). Bad input (a duplicate user, an invalid record) raises
    ValueError and leaves the published state exactly as it was.
    """
    if not model_version or not snapshot_id:
        raise ValueError("model_version and snapshot_id are required")
    _discard_building(engine, as_of)
    set_id = _open_set(engine, as_of=as_of, model_version=model_version, snapshot_id=snapshot_id)
    try:
        n_scored, n_unscored = _write_rows(engine, set_id, as_of, records)
        superseded = _publish(engine, set_id, as_of, n_scored, n_unscored, on_publish)
    except BaseException:
        _drop_set(engine, set_id)
        raise
    log.info("published score set %d for %s: %d scored, %d without a score", set_id, as_of,
             n_scored, n_unscored)
    summary = _summary(engine, set_id)
    return ScoreSetSummary(**{**summary.__dict__, "superseded": superseded})


def _open_set(engine: Engine, *, as_of: date, model_version: str, snapshot_id: str) -> int:
    with engine.begin() as connection:
        result = connection.execute(sa.insert(ScoreSet.__table__).values(
            as_of=as_of, model_version=model_version, snapshot_id=snapshot_id, status=BUILDING,
            created_at=datetime.now(UTC), published_at=None, n_scored=0, n_unscored=0,
        ).returning(ScoreSet.__table__.c.id))
        return int(result.scalar_one())


def _write_rows(engine: Engine, set_id: int, as_of: date,
                records: Iterable[ScoreRecord]) -> tuple[int, int]:
    seen: set[str] = set()
    counts = [0, 0]
    iterator = iter(records)
    while chunk := list(islice(iterator, CHUNK_ROWS)):
        rows = []
        for record in chunk:
            if record.user_id in seen:
                raise ValueError(f"user {record.user_id} appears twice in one score set")
            seen.add(record.user_id)
            counts[record.status != SCORED] += 1
            rows.append(_row(set_id, as_of, record))
        with engine.begin() as connection:
            _bulk_insert(connection, rows)
    return counts[0], counts[1]


def _row(set_id: int, as_of: date, record: ScoreRecord) -> tuple[Any, ...]:
    return (set_id, record.user_id, as_of, record.score, record.score_unclipped, record.band_code,
            record.base_points, _json(record.features), _json(record.dimensions),
            _json(record.reasons), _json(record.tips), record.status, record.reason)


def _json(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False,
                                                           separators=(",", ":"))


def _bulk_insert(connection: Connection, rows: list[tuple[Any, ...]]) -> None:
    """COPY on PostgreSQL, executemany on SQLite: the fastest bulk path of each."""
    columns = ", ".join(HISTORY_COLUMNS)
    if connection.dialect.name == "postgresql":
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor.copy(f"COPY score_history ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    marks = ", ".join("?" for _ in HISTORY_COLUMNS)
    connection.exec_driver_sql(f"INSERT INTO score_history ({columns}) VALUES ({marks})", rows)


def _publish(engine: Engine, set_id: int, as_of: date, n_scored: int, n_unscored: int,
             on_publish: Callable[[Connection, int], None] | None = None) -> int | None:
    """The one transaction that swaps the published set of ``as_of``."""
    sets, history = ScoreSet.__table__, ScoreHistory.__table__
    with engine.begin() as connection:
        old = connection.execute(
            sa.select(sets.c.id).where(sets.c.as_of == as_of, sets.c.status == PUBLISHED)
            .with_for_update()
        ).scalars().all()
        if old:
            connection.execute(sa.delete(history).where(history.c.set_id.in_(old)))
            connection.execute(sa.update(sets).where(sets.c.id.in_(old)).values(status=SUPERSEDED))
        connection.execute(sa.update(sets).where(sets.c.id == set_id).values(
            status=PUBLISHED, published_at=datetime.now(UTC), n_scored=n_scored,
            n_unscored=n_unscored))
        if on_publish is not None:
            on_publish(connection, set_id)
    return old[0] if old else None


def _discard_building(engine: Engine, as_of: date) -> None:
    """Remove what a killed run of the same date left behind (never visible to readers)."""
    sets = ScoreSet.__table__
    with engine.connect() as connection:
        stale = connection.execute(sa.select(sets.c.id).where(
            sets.c.as_of == as_of, sets.c.status == BUILDING)).scalars().all()
    for set_id in stale:
        log.warning("discarding unfinished score set %d of %s", set_id, as_of)
        _drop_set(engine, set_id)


def _drop_set(engine: Engine, set_id: int) -> None:
    sets, history = ScoreSet.__table__, ScoreHistory.__table__
    with engine.begin() as connection:
        connection.execute(sa.delete(history).where(history.c.set_id == set_id))
        connection.execute(sa.delete(sets).where(sets.c.id == set_id, sets.c.status == BUILDING))


# -- reading ------------------------------------------------------------------------


def current_score(engine: Engine, user_id: str) -> PublishedScore | None:
    """The user's score of the latest published as-of date they have, or None."""
    with engine.connect() as connection:
        row = connection.execute(_CURRENT, {"user_id": user_id}).first()
    return _published(row._mapping) if row is not None else None


def current_scores(engine: Engine, user_ids: Iterable[str]) -> dict[str, PublishedScore]:
    """Each user's current score (as :func:`current_score`), in a few queries; users without one are left out.

    One query per ``READ_CHUNK`` users instead of one per user, for batch lookups.
    """
    wanted = sorted(set(user_ids))
    scores: dict[str, PublishedScore] = {}
    with engine.connect() as connection:
        for start in range(0, len(wanted), READ_CHUNK):
            chunk = wanted[start:start + READ_CHUNK]
            for row in connection.execute(_CURRENT_MANY, {"user_ids": chunk}):
                scores[row.user_id] = _published(row._mapping)
    return scores


def latest_score_set(user_id: sa.ColumnElement[Any]) -> sa.ScalarSelect[Any]:
    """The id of the published set holding ``user_id``'s current score: a correlated scalar subquery.

    For queries elsewhere that read a user's current score row together with
    other tables (the partner API's lookup): join ``score_history`` on this
    set id and the user id. Its own aliases keep it from correlating with the
    tables of the enclosing query.
    """
    history, sets = ScoreHistory.__table__.alias("current_history"), ScoreSet.__table__.alias("current_set")
    return (sa.select(history.c.set_id).join(sets, sets.c.id == history.c.set_id)
            .where(history.c.user_id == user_id, sets.c.status == PUBLISHED)
            .order_by(history.c.as_of.desc()).limit(1)
            .correlate_except(history, sets).scalar_subquery())


def score_at(engine: Engine, user_id: str, as_of: date) -> PublishedScore | None:
    history = ScoreHistory.__table__
    rows = _select(engine, _query().where(history.c.user_id == user_id, history.c.as_of == as_of))
    return rows[0] if rows else None


def score_history(engine: Engine, user_id: str) -> list[PublishedScore]:
    """Every published score of the user, oldest first."""
    history = ScoreHistory.__table__
    return _select(engine, _query().where(history.c.user_id == user_id).order_by(history.c.as_of))


def latest_published_as_of(engine: Engine) -> date | None:
    sets = ScoreSet.__table__
    with engine.connect() as connection:
        value = connection.execute(
            sa.select(sa.func.max(sets.c.as_of)).where(sets.c.status == PUBLISHED)).scalar()
    return _as_date(value) if value is not None else None


def list_scores(engine: Engine, *, as_of: date | None = None, limit: int = 100,
                offset: int = 0) -> list[PublishedScore]:
    """Published scores of ``as_of`` (default: the latest published date), by user id."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    if offset < 0:
        raise ValueError(f"offset must not be negative, got {offset}")
    day = as_of or latest_published_as_of(engine)
    if day is None:
        return []
    history = ScoreHistory.__table__
    return _select(engine, _query().where(history.c.as_of == day)
                   .order_by(history.c.user_id).limit(limit).offset(offset))


def list_score_sets(engine: Engine, *, limit: int = 50) -> list[ScoreSetSummary]:
    """The newest score sets (any status), newest first."""
    sets = ScoreSet.__table__
    with engine.connect() as connection:
        rows = connection.execute(sa.select(sets).order_by(sets.c.id.desc()).limit(limit)).all()
    return [_set_summary(row) for row in rows]


def _query() -> sa.Select[Any]:
    sets, history = ScoreSet.__table__, ScoreHistory.__table__
    return (sa.select(history, sets.c.model_version, sets.c.snapshot_id)
            .join(sets, sets.c.id == history.c.set_id).where(sets.c.status == PUBLISHED))


def _current_many() -> sa.Select[Any]:
    """Published rows of the latest as-of date of each user in the expanding ``user_ids``."""
    sets, history = ScoreSet.__table__, ScoreHistory.__table__
    latest = (sa.select(history.c.user_id, sa.func.max(history.c.as_of).label("as_of"))
              .join(sets, sets.c.id == history.c.set_id)
              .where(sets.c.status == PUBLISHED,
                     history.c.user_id.in_(sa.bindparam("user_ids", expanding=True)))
              .group_by(history.c.user_id).subquery("latest"))
    return _query().join(latest, sa.and_(latest.c.user_id == history.c.user_id,
                                         latest.c.as_of == history.c.as_of))


# Built once: the single and bulk reads run on every partner lookup.
_CURRENT = (_query().where(ScoreHistory.__table__.c.user_id == sa.bindparam("user_id"))
            .order_by(ScoreHistory.__table__.c.as_of.desc()).limit(1))
_CURRENT_MANY = _current_many()


def _select(engine: Engine, query: sa.Select[Any]) -> list[PublishedScore]:
    with engine.connect() as connection:
        return [_published(row._mapping) for row in connection.execute(query)]


def _published(row: Any) -> PublishedScore:
    score, unclipped = row["score"], row["score_unclipped"]
    clipped = score is not None and unclipped is not None and _rounded(unclipped) != score
    return PublishedScore(
        user_id=row["user_id"], as_of=_as_date(row["as_of"]), score=score,
        score_unclipped=unclipped, band_code=row["band_code"], model_version=row["model_version"],
        snapshot_id=row["snapshot_id"], base_points=row["base_points"],
        features=_loaded(row["features"], {}), dimensions=_loaded(row["dimensions"], {}),
        reasons=_loaded(row["reasons"], []), tips=_loaded(row["tips"], []),
        status=row["status"], reason=row["reason"], clipped=clipped,
    )


def _rounded(value: float) -> int:
    return int(value + 0.5) if value >= 0 else -int(-value + 0.5)


def _loaded(value: Any, empty: Any) -> Any:
    if value is None:
        return empty
    return json.loads(value) if isinstance(value, str) else value


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _summary(engine: Engine, set_id: int) -> ScoreSetSummary:
    sets = ScoreSet.__table__
    with engine.connect() as connection:
        row = connection.execute(sa.select(sets).where(sets.c.id == set_id)).one()
    return _set_summary(row)


def _set_summary(row: Any) -> ScoreSetSummary:
    m = row._mapping
    return ScoreSetSummary(
        set_id=m["id"], as_of=_as_date(m["as_of"]), model_version=m["model_version"],
        snapshot_id=m["snapshot_id"], status=m["status"], n_scored=m["n_scored"],
        n_unscored=m["n_unscored"], created_at=m["created_at"], published_at=m["published_at"],
    )

