"""Consent and pairwise open ids: what a user lets one partner see, for what, until when.

A partner never learns the platform's user id. When a user first grants a
partner anything, the partner gets an ``open_id`` that is random and stored
(not derived from the user id), one per (user, partner): two partners holding
ids for the same person cannot join their data on them, and nothing about the
user can be computed from one. A consent names one purpose and one scope; a
newer grant for the same (user, partner, purpose) replaces the older one, and
revoking takes effect on the next lookup.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel

from config.purposes import SCOPE_CODES, load_purposes
from web.clock import as_utc, utcnow
from web.partners import Partner, PartnerInfo

# Scopes in order of what they show; each from `band` on includes the one before it.
SCOPE_RANK = {code: rank for rank, code in enumerate(SCOPE_CODES)}
_OPEN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$")


class ConsentError(ValueError):
    """A consent cannot be granted or revoked as asked; ``str()`` is one line."""


class OpenId(SQLModel, table=True):
    __tablename__ = "open_ids"
    __table_args__ = (sa.UniqueConstraint("user_id", "partner_id", name="uq_open_ids_user_partner"),)

    open_id: str = Field(primary_key=True, max_length=64)
    user_id: str = Field(max_length=128)
    partner_id: int = Field(foreign_key="partners.id")
    created_at: datetime = Field(sa_type=sa.DateTime(timezone=True))


class Consent(SQLModel, table=True):
    __tablename__ = "consents"
    __table_args__ = (sa.Index("ix_consents_partner_user_purpose", "partner_id", "user_id", "purpose"),
                      sa.Index("ix_consents_user", "user_id"))

    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(max_length=128)
    partner_id: int = Field(foreign_key="partners.id")
    purpose: str = Field(max_length=64)
    scope: str = Field(max_length=16)
    granted_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    expires_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    revoked_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))


@dataclass(frozen=True)
class ConsentView:
    """One consent as shown to its user, an operator or a test."""

    id: int
    user_id: str
    partner: str
    open_id: str
    purpose: str
    scope: str
    granted_at: datetime
    expires_at: datetime
    revoked_at: datetime | None

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expires_at <= utcnow() else "active"

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "user_id": self.user_id, "partner": self.partner,
                "open_id": self.open_id, "purpose": self.purpose, "scope": self.scope,
                "state": self.state, "granted_at": self.granted_at.isoformat(),
                "expires_at": self.expires_at.isoformat(),
                "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None}


def check_user_id(user_id: str) -> str:
    """A platform user id: 1-128 of letters, digits and ``_ . : @ -``, starting with a letter or digit."""
    if not _USER_ID.match(user_id):
        raise ConsentError(f"user id {user_id!r} is not a valid user id")
    return user_id


def check_grant(user_id: str, purpose: str, scope: str, days: int) -> None:
    """Refuse a bad grant with one line before anything is written."""
    check_user_id(user_id)
    purposes = load_purposes()
    if purpose not in purposes.codes:
        raise ConsentError(f"unknown purpose {purpose!r}; known: {', '.join(purposes.codes)}")
    if scope not in SCOPE_CODES:
        raise ConsentError(f"unknown scope {scope!r}; known: {', '.join(SCOPE_CODES)}")
    if not 1 <= days <= 3650:
        raise ConsentError("days must be between 1 and 3650")


def grant_consent(engine: Engine, *, user_id: str, partner: PartnerInfo, purpose: str, scope: str,
                  days: int) -> ConsentView:
    """Grant (or replace) a consent and return it with the partner's open id for this user."""
    check_grant(user_id, purpose, scope, days)
    if partner.disabled:
        raise ConsentError(f"partner {partner.name!r} is disabled")
    now = utcnow()
    with engine.begin() as connection:
        open_id = _ensure_open_id(connection, user_id, partner.id, now)
        connection.execute(
            sa.update(Consent)
            .where(Consent.partner_id == partner.id, Consent.user_id == user_id,
                   Consent.purpose == purpose, Consent.revoked_at.is_(None))  # type: ignore[union-attr]
            .values(revoked_at=now))
        consent_id = connection.execute(
            sa.insert(Consent).values(user_id=user_id, partner_id=partner.id, purpose=purpose,
                                      scope=scope, granted_at=now,
                                      expires_at=now + timedelta(days=days))
            .returning(Consent.id)).scalar_one()
    return ConsentView(id=consent_id, user_id=user_id, partner=partner.name, open_id=open_id,
                       purpose=purpose, scope=scope, granted_at=now,
                       expires_at=now + timedelta(days=days), revoked_at=None)


def _ensure_open_id(connection: Connection, user_id: str, partner_id: int, now: datetime) -> str:
    """The (user, partner) open id, created on first grant; a concurrent creator's id wins."""
    existing = _open_id_of(connection, user_id, partner_id)
    if existing is not None:
        return existing
    candidate = secrets.token_urlsafe(24)
    try:
        with connection.begin_nested():
            connection.execute(sa.insert(OpenId).values(open_id=candidate, user_id=user_id,
                                                        partner_id=partner_id, created_at=now))
    except IntegrityError:
        winner = _open_id_of(connection, user_id, partner_id)
        if winner is None:
            raise
        return winner
    return candidate


def _open_id_of(connection: Connection, user_id: str, partner_id: int) -> str | None:
    return connection.execute(
        sa.select(OpenId.open_id).where(OpenId.user_id == user_id, OpenId.partner_id == partner_id)
    ).scalar_one_or_none()


def revoke_consent(engine: Engine, *, user_id: str, partner: PartnerInfo,
                   purpose: str | None = None) -> int:
    """Revoke the user's active consents to a partner (one purpose, or all); returns how many."""
    with engine.begin() as connection:
        statement = (sa.update(Consent)
                     .where(Consent.partner_id == partner.id, Consent.user_id == user_id,
                            Consent.revoked_at.is_(None))  # type: ignore[union-attr]
                     .values(revoked_at=utcnow()))
        if purpose is not None:
            statement = statement.where(Consent.purpose == purpose)
        return int(connection.execute(statement).rowcount or 0)


def revoke_consent_by_id(engine: Engine, *, user_id: str, consent_id: int) -> bool:
    """Revoke one consent of this user (the consumer page's button); False when there is none."""
    with engine.begin() as connection:
        result = connection.execute(
            sa.update(Consent)
            .where(Consent.id == consent_id, Consent.user_id == user_id,
                   Consent.revoked_at.is_(None))  # type: ignore[union-attr]
            .values(revoked_at=utcnow()))
    return bool(result.rowcount)


def list_consents(engine: Engine, *, user_id: str | None = None,
                  partner: PartnerInfo | None = None) -> list[ConsentView]:
    """Consents, newest first, optionally for one user and/or one partner."""
    statement = (
        sa.select(Consent, Partner.name, OpenId.open_id)
        .join(Partner, Partner.id == Consent.partner_id)  # type: ignore[arg-type]
        .join(OpenId, sa.and_(OpenId.user_id == Consent.user_id,
                              OpenId.partner_id == Consent.partner_id))
        .order_by(Consent.granted_at.desc(), Consent.id.desc())  # type: ignore[attr-defined, union-attr]
    )
    if user_id is not None:
        statement = statement.where(Consent.user_id == user_id)
    if partner is not None:
        statement = statement.where(Consent.partner_id == partner.id)
    with engine.connect() as connection:
        rows = connection.execute(statement).all()
    return [ConsentView(id=row.id, user_id=row.user_id, partner=row.name, open_id=row.open_id,
                        purpose=row.purpose, scope=row.scope, granted_at=as_utc(row.granted_at),
                        expires_at=as_utc(row.expires_at),
                        revoked_at=as_utc(row.revoked_at) if row.revoked_at else None)
            for row in rows]


# -- the lookup side -------------------------------------------------------------


@dataclass(frozen=True)
class Access:
    """What an open id resolves to for one partner and purpose: the user and the consent's state."""

    user_id: str
    scope: str | None          # None: no consent for this purpose
    state: str                 # active | expired | revoked | none


def latest_consent(partner_id: Any, user_id: Any, purpose: Any) -> sa.ScalarSelect[Any]:
    """The id of the (user, partner)'s newest consent for ``purpose``: a correlated scalar subquery.

    Grants replace older ones (which are revoked), so the newest decides. Its
    own alias keeps it from correlating with an enclosing query's ``consents``.
    """
    consent = sa.alias(Consent.__table__, "newest_consent")  # type: ignore[attr-defined]
    return (sa.select(consent.c.id)
            .where(consent.c.partner_id == partner_id, consent.c.user_id == user_id,
                   consent.c.purpose == purpose)
            .order_by(consent.c.granted_at.desc(), consent.c.id.desc()).limit(1)
            .correlate_except(consent).scalar_subquery())


ACCESS_COLUMNS = (OpenId.user_id, Consent.scope, Consent.expires_at, Consent.revoked_at)


def access_joins(select: sa.Select[Any], *, open_id: Any, partner_id: Any, purpose: Any) -> sa.Select[Any]:
    """``select`` outer-joined to the open id (of this partner) and its newest consent for ``purpose``."""
    return (select
            .outerjoin(OpenId, sa.and_(OpenId.partner_id == partner_id, OpenId.open_id == open_id))
            .outerjoin(Consent, Consent.id == latest_consent(OpenId.partner_id, OpenId.user_id, purpose)))


# The lookups' queries, built once (they run on every lookup).
_ACCESS = (sa.select(*ACCESS_COLUMNS).select_from(OpenId)
           .outerjoin(Consent, Consent.id == latest_consent(OpenId.partner_id, OpenId.user_id,
                                                            sa.bindparam("purpose")))
           .where(OpenId.open_id == sa.bindparam("open_id"), OpenId.partner_id == sa.bindparam("partner_id")))
_ACCESSES = (sa.select(OpenId.open_id, *ACCESS_COLUMNS).select_from(OpenId)
             .outerjoin(Consent, Consent.id == latest_consent(OpenId.partner_id, OpenId.user_id,
                                                              sa.bindparam("purpose")))
             .where(OpenId.partner_id == sa.bindparam("partner_id"),
                    OpenId.open_id.in_(sa.bindparam("open_ids", expanding=True))))  # type: ignore[attr-defined]
_READ_CHUNK = 500  # open ids per query of a bulk resolution


def is_open_id(value: str) -> bool:
    """Whether ``value`` could be an open id; anything else is unknown without a query.

    This keeps arbitrary path text (NUL bytes included, which PostgreSQL refuses
    outright) away from the database.
    """
    return bool(_OPEN_ID.match(value))


def resolve_access(connection: Connection, *, partner_id: int, open_id: str, purpose: str) -> Access | None:
    """The user behind ``open_id`` for this partner and their latest consent for ``purpose``.

    None when the open id is unknown *to this partner* (another partner's open
    id is as unknown as a made-up one).
    """
    if not is_open_id(open_id):
        return None
    row = connection.execute(_ACCESS, {"open_id": open_id, "partner_id": partner_id,
                                       "purpose": purpose}).first()
    return access_of(row) if row is not None else None


def resolve_accesses(connection: Connection, *, partner_id: int, open_ids: list[str],
                     purpose: str) -> dict[str, Access]:
    """:func:`resolve_access` for many open ids in a few queries; unknown ones are left out."""
    wanted = sorted({open_id for open_id in open_ids if is_open_id(open_id)})
    found: dict[str, Access] = {}
    for start in range(0, len(wanted), _READ_CHUNK):
        rows = connection.execute(_ACCESSES, {"partner_id": partner_id, "purpose": purpose,
                                              "open_ids": wanted[start:start + _READ_CHUNK]})
        found.update((row.open_id, access_of(row)) for row in rows)
    return found


def access_of(row: Any) -> Access:
    """The access a row holding :data:`ACCESS_COLUMNS` (with a known open id) grants."""
    if row.scope is None:
        return Access(user_id=row.user_id, scope=None, state="none")
    if row.revoked_at is not None:
        return Access(user_id=row.user_id, scope=row.scope, state="revoked")
    if as_utc(row.expires_at) <= utcnow():
        return Access(user_id=row.user_id, scope=row.scope, state="expired")
    return Access(user_id=row.user_id, scope=row.scope, state="active")


def user_ids_for_open_ids(connection: Connection, *, partner_id: int,
                          open_ids: list[str]) -> dict[str, str]:
    """open_id -> user_id for the ids this partner holds (unknown ones are left out)."""
    wanted = sorted({open_id for open_id in open_ids if is_open_id(open_id)})
    if not wanted:
        return {}
    rows = connection.execute(
        sa.select(OpenId.open_id, OpenId.user_id)
        .where(OpenId.partner_id == partner_id, OpenId.open_id.in_(wanted))  # type: ignore[attr-defined]
    ).all()
    return {row.open_id: row.user_id for row in rows}
