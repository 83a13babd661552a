"""Disputes: a person contests one event behind their score; an operator decides.

Filing a dispute takes the event out of scoring at once and recomputes the
person's score (one user, :mod:`scoring.rescore`); the operator then upholds it
(the event stays out for good) or rejects it (the event counts again, and the
score is recomputed again). Each open dispute has a deadline
(``disputes_deadline_days`` after filing); the daily ``dispute_deadlines`` job
flags the ones past it (:func:`flag_overdue`).

The exclusion goes through the event lake, not around it: filing ingests a void
correction of the event (``altcredit-dispute-<id>-void``), rejecting ingests a
correction that restores the furnisher's version (``altcredit-dispute-<id>-restore``),
both by the normal ingestion path. So the lake's point-in-time rule decides,
for any snapshot as known at T, whether the event counts: exactly when no open
or upheld dispute of it was known at T. Every past snapshot stays reproducible.

Refusals raise :class:`DisputeError` (one line) and change nothing.
"""

from __future__ import annotations

import json
import logging
import weakref
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from config.database import get_engine, upgrade
from config.settings import Settings
from features.ingest import ingest_platform_records
from features.ingest_errors import IngestError
from features.user_events import (
    UserEvent,
    dispute_restore_id,
    dispute_void_id,
    find_event,
    restore_record,
    void_record,
)
from scoring.dispute_tables import OPEN, REJECTED, STATUSES, UPHELD, Dispute
from scoring.publish import current_score
from scoring.recompute import RecomputeError
from scoring.rescore import Rescore, RescoreError, rescore_user

log = logging.getLogger(__name__)

TABLE = Dispute.__table__
_MIGRATED: weakref.WeakSet[Engine] = weakref.WeakSet()


class DisputeError(ValueError):
    """A dispute request refused; ``str()`` is one line, and nothing was changed."""


@dataclass(frozen=True)
class DisputeView:
    """A dispute as people and operators see it.

    ``score_before`` is the published score when it was filed, ``score_after`` the
    score recomputed without the event, ``score_resolved`` the score recomputed
    after a rejection (the event counts again); each None when there was no
    published score to recompute. ``overdue``: open and past its deadline.
    """

    id: int
    user_id: str
    source: str
    event_id: str
    kind: str
    reason: str
    status: str
    filed_at: datetime
    deadline: datetime
    overdue: bool
    resolved_at: datetime | None
    note: str | None
    score_before: int | None
    score_after: int | None
    score_resolved: int | None
    as_of: date | None
    event_time: datetime
    event_known_at: datetime
    overdue_since: datetime | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: times in ISO 8601."""
        return {key: value.isoformat() if isinstance(value, date) else value
                for key, value in asdict(self).items()}


def file_dispute(settings: Settings, *, user_id: str, source: str, event_id: str,
                 reason: str) -> DisputeView:
    """Dispute one of the user's events: excluded from scoring while open, score recomputed now."""
    reason = _text("reason", reason, settings)
    engine = _engine(settings)
    event = find_event(settings, source, event_id)
    if event is None or event.user_id != user_id:
        raise DisputeError(f"no event {event_id!r} from {source!r} among user {user_id}'s events")
    _refuse_if_disputed(engine, event)
    published = current_score(engine, user_id)
    dispute_id = _insert(engine, settings, event, reason=reason,
                         score_before=published.score if published else None)
    try:
        ingest_platform_records(settings, [void_record(event, event_id=dispute_void_id(dispute_id))])
    except IngestError as exc:
        _delete(engine, dispute_id)
        raise DisputeError(f"event {event.event_id!r} cannot be excluded: {exc}") from None
    log.info("dispute %d filed by %s on %s/%s", dispute_id, user_id, source, event.event_id)
    rescore = _rescore(settings, user_id, dispute_id, cause="dispute_filed")
    if rescore is not None:
        _update(engine, dispute_id, as_of=rescore.as_of, score_after=rescore.score_after)
    return _view(engine, dispute_id)


def resolve_dispute(settings: Settings, dispute_id: int, *, uphold: bool, note: str) -> DisputeView:
    """Uphold (the event stays excluded for good) or reject (it counts again, score recomputed)."""
    note = _text("note", note, settings)
    engine = _engine(settings)
    row = _row(engine, dispute_id)
    if row is None:
        raise DisputeError(f"no dispute #{dispute_id}")
    status = UPHELD if uphold else REJECTED
    _claim(engine, row, status=status, note=note)
    if uphold:
        log.info("dispute %d upheld", dispute_id)
        return _view(engine, dispute_id)
    try:
        _restore(settings, row, dispute_id)
    except IngestError as exc:
        _unclaim(engine, dispute_id, row)
        raise DisputeError(f"dispute #{dispute_id}: the event cannot be restored: {exc}") from None
    log.info("dispute %d rejected; event restored", dispute_id)
    rescore = _rescore(settings, row["user_id"], dispute_id, cause="dispute_rejected")
    if rescore is not None:
        _update(engine, dispute_id, score_resolved=rescore.score_after)
    return _view(engine, dispute_id)


def get_dispute(settings: Settings, dispute_id: int) -> DisputeView | None:
    engine = _engine(settings)
    return _view(engine, dispute_id) if _row(engine, dispute_id) is not None else None


def list_disputes(settings: Settings, *, user_id: str | None = None, status: str | None = None,
                  overdue: bool | None = None, now: datetime | None = None) -> list[DisputeView]:
    """Disputes, newest first; filtered by user, status, and whether they are overdue at ``now``."""
    if status is not None and status not in STATUSES:
        raise DisputeError(f"unknown status {status!r}; one of {', '.join(STATUSES)}")
    moment = _aware(now) if now is not None else datetime.now(UTC)
    query = sa.select(TABLE).order_by(TABLE.c.id.desc())
    if user_id is not None:
        query = query.where(TABLE.c.user_id == user_id)
    if status is not None:
        query = query.where(TABLE.c.status == status)
    late = sa.and_(TABLE.c.status == OPEN, TABLE.c.deadline <= moment)
    if overdue is not None:
        query = query.where(late if overdue else sa.not_(late))
    with _engine(settings).connect() as connection:
        return [_as_view(row._mapping, moment) for row in connection.execute(query)]


def flag_overdue(settings: Settings, *, now: datetime) -> int:
    """Mark open disputes past their deadline at ``now`` (first time only); how many are overdue."""
    moment = _aware(now)
    late = sa.and_(TABLE.c.status == OPEN, TABLE.c.deadline <= moment)
    with _engine(settings).begin() as connection:
        fresh = connection.execute(sa.select(TABLE.c.id).where(
            late, TABLE.c.overdue_since.is_(None))).scalars().all()
        if fresh:
            connection.execute(sa.update(TABLE).where(TABLE.c.id.in_(fresh))
                               .values(overdue_since=moment))
        total = connection.execute(sa.select(sa.func.count()).select_from(TABLE)
                                   .where(late)).scalar_one()
    for dispute_id in fresh:
        log.warning("dispute %d is overdue: open past its deadline", dispute_id)
    return int(total)


# -- steps ----------------------------------------------------------------------------


def _engine(settings: Settings) -> Engine:
    """The settings' engine, migrated once per engine in this process (pages call this often)."""
    engine = get_engine(settings)
    if engine not in _MIGRATED:
        upgrade(engine)
        _MIGRATED.add(engine)
    return engine


def _text(name: str, value: Any, settings: Settings) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        raise DisputeError(f"the {name} is empty: say in a few words what is wrong")
    if len(text) > settings.disputes_text_max_chars:
        raise DisputeError(f"the {name} is longer than {settings.disputes_text_max_chars} characters")
    return text


def _open_key(source: str, event_id: str) -> str:
    return json.dumps([source, event_id], ensure_ascii=False, separators=(",", ":"))


def _refuse_if_disputed(engine: Engine, event: UserEvent) -> None:
    with engine.connect() as connection:
        found = connection.execute(sa.select(TABLE.c.id, TABLE.c.status).where(
            TABLE.c.source == event.source, TABLE.c.event_id == event.event_id,
            TABLE.c.status.in_((OPEN, UPHELD))).order_by(TABLE.c.id.desc())).first()
    if found is not None:
        state = "under open dispute" if found.status == OPEN else "excluded by upheld dispute"
        raise DisputeError(f"event {event.event_id!r} from {event.source!r} is already "
                           f"{state} #{found.id}")
    if event.excluded:
        raise DisputeError(f"event {event.event_id!r} from {event.source!r} is already excluded")


def _insert(engine: Engine, settings: Settings, event: UserEvent, *, reason: str,
            score_before: int | None) -> int:
    now = datetime.now(UTC)
    try:
        with engine.begin() as connection:
            return int(connection.execute(sa.insert(TABLE).values(
                user_id=event.user_id, source=event.source, event_id=event.event_id,
                kind=event.kind, event_time=event.event_time, event_known_at=event.first_known_at,
                reason=reason, status=OPEN, open_key=_open_key(event.source, event.event_id),
                filed_at=now, deadline=now + timedelta(days=settings.disputes_deadline_days),
                score_before=score_before,
            ).returning(TABLE.c.id)).scalar_one())
    except IntegrityError:
        raise DisputeError(f"event {event.event_id!r} from {event.source!r} is already under "
                           "open dispute") from None


def _delete(engine: Engine, dispute_id: int) -> None:
    with engine.begin() as connection:
        connection.execute(sa.delete(TABLE).where(TABLE.c.id == dispute_id))


def _claim(engine: Engine, row: Any, *, status: str, note: str) -> None:
    """Resolve the row only if it is still open: two operators never both resolve it."""
    with engine.begin() as connection:
        claimed = connection.execute(sa.update(TABLE).where(
            TABLE.c.id == row["id"], TABLE.c.status == OPEN).values(
            status=status, note=note, resolved_at=datetime.now(UTC), open_key=None)).rowcount
    if claimed != 1:
        current = _row(engine, row["id"])
        raise DisputeError(f"dispute #{row['id']} is already {current['status'] if current else 'gone'}")


def _unclaim(engine: Engine, dispute_id: int, row: Any) -> None:
    with engine.begin() as connection:
        connection.execute(sa.update(TABLE).where(TABLE.c.id == dispute_id).values(
            status=OPEN, note=None, resolved_at=None, open_key=row["open_key"]))


def _restore(settings: Settings, row: Any, dispute_id: int) -> None:
    """Put the furnisher's version back (unless the furnisher has corrected or voided it since)."""
    event = find_event(settings, row["source"], row["event_id"])
    if event is None or not event.excluded:
        return
    ingest_platform_records(settings, [restore_record(event, event_id=dispute_restore_id(dispute_id))])


def _rescore(settings: Settings, user_id: str, dispute_id: int, *, cause: str) -> Rescore | None:
    """The one-user recompute; a failure is logged (the next population recompute catches up)."""
    try:
        return rescore_user(settings, user_id, cause=cause, dispute_id=dispute_id)
    except (RescoreError, RecomputeError) as exc:
        log.warning("dispute %d: %s's score was not recomputed: %s", dispute_id, user_id, exc)
        return None


def _update(engine: Engine, dispute_id: int, **values: Any) -> None:
    with engine.begin() as connection:
        connection.execute(sa.update(TABLE).where(TABLE.c.id == dispute_id).values(**values))


def _row(engine: Engine, dispute_id: int) -> Any:
    with engine.connect() as connection:
        row = connection.execute(sa.select(TABLE).where(TABLE.c.id == dispute_id)).first()
    return None if row is None else row._mapping


def _view(engine: Engine, dispute_id: int) -> DisputeView:
    return _as_view(_row(engine, dispute_id), datetime.now(UTC))


def _as_view(row: Any, now: datetime) -> DisputeView:
    deadline = _aware(row["deadline"])
    return DisputeView(
        id=row["id"], user_id=row["user_id"], source=row["source"], event_id=row["event_id"],
        kind=row["kind"], reason=row["reason"], status=row["status"],
        filed_at=_aware(row["filed_at"]), deadline=deadline,
        overdue=row["status"] == OPEN and deadline <= now,
        resolved_at=_maybe(row["resolved_at"]), note=row["note"],
        score_before=row["score_before"], score_after=row["score_after"],
        score_resolved=row["score_resolved"], as_of=row["as_of"],
        event_time=_aware(row["event_time"]), event_known_at=_aware(row["event_known_at"]),
        overdue_since=_maybe(row["overdue_since"]),
    )


def _aware(moment: datetime) -> datetime:
    """SQLite gives back naive UTC times; every time leaves this module aware, in UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _maybe(moment: datetime | None) -> datetime | None:
    return None if moment is None else _aware(moment)
