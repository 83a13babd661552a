"""The inquiry log, and the stored answers that make a repeated X-Transaction-Id idempotent.

A lookup that discloses anything writes its inquiry rows (who asked, about
whom, why, under which scope, which fields they saw) in one database
transaction *before* the answer leaves the server; when that write fails the
lookup answers 503 and discloses nothing. With an ``X-Transaction-Id`` the
answer is stored in the same transaction, keyed by (partner, transaction id):
the primary key makes two concurrent twins agree on one answer and one set of
inquiry rows, and a repeat within the idempotency window gets the stored
answer back without a second inquiry.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Field, SQLModel

from web import prepared
from web.clock import as_utc, utcnow
from web.partners import Partner
from web.prepared import Prepared
from web.signing import UsedNonce, spend_nonce_statement
from web.sqlite_writes import write_lock

logger = logging.getLogger(__name__)

TRANSACTION_HEADER = "X-Transaction-Id"  # the idempotency key a partner may send with a lookup


class InquiryLogUnavailable(Exception):
    """The inquiry log cannot be written; the caller must disclose nothing (503)."""


class TransactionReused(Exception):
    """An X-Transaction-Id was sent again with a different request (409)."""


class Inquiry(SQLModel, table=True):
    __tablename__ = "inquiries"
    __table_args__ = (sa.Index("ix_inquiries_user_created", "user_id", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    partner_id: int = Field(foreign_key="partners.id")
    user_id: str = Field(max_length=128)
    open_id: str = Field(max_length=64)
    purpose: str = Field(max_length=64)
    scope: str = Field(max_length=16)
    fields: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    endpoint: str = Field(max_length=16)
    request_id: str = Field(max_length=128)
    transaction_id: str | None = Field(default=None, max_length=64)


class PartnerTransaction(SQLModel, table=True):
    __tablename__ = "partner_transactions"
    __table_args__ = (sa.Index("ix_partner_transactions_created", "created_at"),)

    partner_id: int = Field(primary_key=True, foreign_key="partners.id")
    transaction_id: str = Field(primary_key=True, max_length=64)
    fingerprint: str = Field(max_length=64)
    status: int
    body: str = Field(sa_type=sa.Text)
    created_at: datetime = Field(sa_type=sa.DateTime(timezone=True))


_INSERT_INQUIRY = sa.insert(Inquiry)


@dataclass(frozen=True)
class Disclosure:
    """One user's data shown to one partner: becomes one inquiry row."""

    user_id: str
    open_id: str
    purpose: str
    scope: str
    fields: tuple[str, ...]


@dataclass(frozen=True)
class Transaction:
    """The idempotency key of a request and what identifies the request itself."""

    partner_id: int
    transaction_id: str
    fingerprint: str


@dataclass(frozen=True)
class StoredAnswer:
    status: int
    body: str


def request_fingerprint(method: str, target: str, body: bytes) -> str:
    """What makes two requests 'the same' for idempotency: method, target and body."""
    digest = hashlib.sha256()
    for part in (method.upper().encode(), b"\n", target.encode(), b"\n", body):
        digest.update(part)
    return digest.hexdigest()


_STORED = (sa.select(PartnerTransaction.fingerprint, PartnerTransaction.status, PartnerTransaction.body,
                     PartnerTransaction.created_at)
           .where(PartnerTransaction.partner_id == sa.bindparam("partner_id"),
                  PartnerTransaction.transaction_id == sa.bindparam("transaction_id")))


def stored_answer(connection: Connection, transaction: Transaction, *,
                  max_age: timedelta) -> StoredAnswer | None:
    """The first answer to this transaction id, when it is recent; 409 when the request differs."""
    row = connection.execute(_STORED, {"partner_id": transaction.partner_id,
                                       "transaction_id": transaction.transaction_id}).first()
    if row is None or as_utc(row.created_at) < utcnow() - max_age:
        return None
    if row.fingerprint != transaction.fingerprint:
        raise TransactionReused(transaction.transaction_id)
    return StoredAnswer(status=row.status, body=row.body)


def log_and_store(connection: Connection, disclosures: list[Disclosure], *, partner_id: int, endpoint: str,
                  request_id: str, answer: StoredAnswer, transaction: Transaction | None,
                  max_age: timedelta,
                  first: Callable[[Connection], None] | None = None) -> StoredAnswer:
    """Write the inquiry rows (and the answer, for a transaction id) in one transaction, and commit.

    ``connection`` is the request's: whatever it read before joins this
    transaction, which is committed here (or rolled back on any failure).

    Returns the answer to send: ``answer`` itself, or — when a concurrent twin
    with the same transaction id committed first — the twin's answer, with no
    inquiry written by this request. Raises :class:`InquiryLogUnavailable`
    when nothing could be written. ``first`` runs first inside the same
    transaction (the partner API spends the request's nonce there); whatever it
    raises rolls everything back and propagates.
    """
    now = utcnow()
    rows = [_inquiry_row(item, partner_id=partner_id, endpoint=endpoint, request_id=request_id,
                         transaction_id=transaction.transaction_id if transaction else None, now=now)
            for item in disclosures]
    try:
        with write_lock(connection):
            if first is not None:
                first(connection)
            if transaction is not None:
                _claim_transaction(connection, transaction, answer, now=now, max_age=max_age)
            if rows:
                connection.execute(_INSERT_INQUIRY, rows)
            connection.commit()
    except IntegrityError:
        connection.rollback()
        if transaction is None:
            raise InquiryLogUnavailable("the inquiry log refused the rows") from None
        twin = stored_answer(connection, transaction, max_age=max_age)
        if twin is None:
            raise InquiryLogUnavailable("a concurrent transaction vanished") from None
        return twin
    except SQLAlchemyError as exc:
        connection.rollback()
        logger.error("inquiry log unavailable: %s", type(exc).__name__, exc_info=exc)
        raise InquiryLogUnavailable(type(exc).__name__) from None
    except BaseException:
        connection.rollback()
        raise
    return answer


def log_lookups(connection: Connection, disclosures: list[Disclosure], *, partner_id: int, endpoint: str,
                request_id: str, nonce: tuple[int, str] | None) -> bool:
    """Write the inquiry rows of a lookup without a transaction id, spending its nonce in the same commit.

    The hot path of the partner API, on prepared statements (:mod:`web.prepared`):
    on PostgreSQL one disclosure and its nonce are a single statement (one round
    trip, atomic); otherwise one transaction. Committed before this returns.
    Returns False, having written nothing, when the nonce was spent before (a
    replay). Raises :class:`InquiryLogUnavailable` when the rows cannot be
    written.
    """
    now = utcnow()
    rows = [_inquiry_row(item, partner_id=partner_id, endpoint=endpoint, request_id=request_id,
                         transaction_id=None, now=now) for item in disclosures]
    spend = {} if nonce is None else {"nonce_partner_id": nonce[0], "nonce": nonce[1], "created_at": now}
    dialect = connection.dialect
    try:
        with write_lock(connection):
            if dialect.name == "postgresql" and len(rows) == 1 and spend:
                cursor = _NONCE_AND_INQUIRY.execute(connection, rows[0] | spend)
                written = cursor.fetchone() is not None
                cursor.close()
            else:
                written = not spend or _spent(connection, spend)
                if written:
                    _INSERT_ROW.execute_many(connection, rows)
            if written:
                prepared.commit(connection)
            else:
                prepared.rollback(connection)
    except dialect.loaded_dbapi.Error as exc:
        prepared.rollback(connection)
        logger.error("inquiry log unavailable: %s", type(exc).__name__, exc_info=exc)
        raise InquiryLogUnavailable(type(exc).__name__) from None
    return written


def _spent(connection: Connection, spend: dict[str, Any]) -> bool:
    """Spend the nonce in the connection's transaction; False when it was spent before."""
    cursor = _SPEND_NONCE[connection.dialect.name].execute(connection, spend)
    try:
        return bool(cursor.rowcount == 1)
    finally:
        cursor.close()


_INQUIRY_COLUMNS = [column for column in Inquiry.__table__.c if column.name != "id"]  # type: ignore[attr-defined]
_INSERT_ROW = Prepared(sa.insert(Inquiry).values({column.name: sa.bindparam(column.name, type_=column.type)
                                                  for column in _INQUIRY_COLUMNS}))


def _spend_nonce(dialect: str) -> sa.Insert:
    """Spend the nonce (bound as nonce_partner_id, nonce, created_at) unless it was spent before."""
    names = {"partner_id": "nonce_partner_id", "nonce": "nonce", "seen_at": "created_at"}
    return spend_nonce_statement(dialect).values({column: sa.bindparam(key) for column, key in names.items()})


def _nonce_and_inquiry() -> Prepared:
    """PostgreSQL: spend the nonce and write the inquiry in one statement; no row back on a replay."""
    spent = _spend_nonce("postgresql").returning(UsedNonce.partner_id).cte("spent")
    values = sa.select(*(sa.bindparam(column.name, type_=column.type) for column in _INQUIRY_COLUMNS))
    return Prepared(sa.insert(Inquiry).from_select([column.name for column in _INQUIRY_COLUMNS],
                                                   values.select_from(spent)).returning(Inquiry.id))


_SPEND_NONCE = {dialect: Prepared(_spend_nonce(dialect)) for dialect in ("sqlite", "postgresql")}
_NONCE_AND_INQUIRY = _nonce_and_inquiry()


def _inquiry_row(item: Disclosure, *, partner_id: int, endpoint: str, request_id: str,
                 transaction_id: str | None, now: datetime) -> dict[str, Any]:
    return {"created_at": now, "partner_id": partner_id, "user_id": item.user_id, "open_id": item.open_id,
            "purpose": item.purpose, "scope": item.scope, "fields": list(item.fields), "endpoint": endpoint,
            "request_id": request_id, "transaction_id": transaction_id}


def _claim_transaction(connection: Any, transaction: Transaction, answer: StoredAnswer, *,
                       now: datetime, max_age: timedelta) -> None:
    key = (PartnerTransaction.partner_id == transaction.partner_id,
           PartnerTransaction.transaction_id == transaction.transaction_id)
    connection.execute(sa.delete(PartnerTransaction).where(*key,
                                                           PartnerTransaction.created_at < now - max_age))
    connection.execute(sa.insert(PartnerTransaction).values(
        partner_id=transaction.partner_id, transaction_id=transaction.transaction_id,
        fingerprint=transaction.fingerprint, status=answer.status, body=answer.body, created_at=now))


# By engine (one per database URL: config.database.get_engine), not by URL: hashing a URL renders it
# as text, which cost every partner request more than the rest of its housekeeping.
_next_purge: weakref.WeakKeyDictionary[Engine, float] = weakref.WeakKeyDictionary()
_purge_lock = threading.Lock()


def purge_stale_transactions(engine: Engine, *, max_age: timedelta) -> None:
    """Forget stored answers older than the idempotency window, at most once a minute per database.

    A stale one is also replaced when its transaction id comes again; this keeps
    the table from growing with ids that never do.
    """
    if time.monotonic() < _next_purge.get(engine, 0.0):  # most calls stop here, without the lock
        return
    with _purge_lock:
        if time.monotonic() < _next_purge.get(engine, 0.0):
            return
        _next_purge[engine] = time.monotonic() + 60
    with engine.begin() as connection:
        connection.execute(sa.delete(PartnerTransaction)
                           .where(PartnerTransaction.created_at < utcnow() - max_age))


def list_inquiries(engine: Engine, *, user_id: str, limit: int = 1000) -> list[dict[str, Any]]:
    """Who looked at this user's score, newest first: when, who, why, under which scope, what."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(Inquiry, Partner.name)
            .join(Partner, Partner.id == Inquiry.partner_id)  # type: ignore[arg-type]
            .where(Inquiry.user_id == user_id)
            .order_by(Inquiry.created_at.desc(), Inquiry.id.desc())  # type: ignore[attr-defined, union-attr]
            .limit(limit)
        ).all()
    return [{"time": as_utc(row.created_at).isoformat(), "partner": row.name, "purpose": row.purpose,
             "scope": row.scope, "fields": list(row.fields or []), "endpoint": row.endpoint,
             "open_id": row.open_id, "request_id": row.request_id,
             "transaction_id": row.transaction_id} for row in rows]


def count_inquiries(engine: Engine, *, user_id: str | None = None) -> int:
    statement = sa.select(sa.func.count()).select_from(Inquiry)
    if user_id is not None:
        statement = statement.where(Inquiry.user_id == user_id)
    with engine.connect() as connection:
        return int(connection.execute(statement).scalar_one())
