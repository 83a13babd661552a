"""Partners: who may call the partner API, with which public key, role and limits.

The platform stores only a partner's Ed25519 *public* key; the private key
never leaves the partner. A partner's ``role`` says how it may furnish events:
an ordinary ``partner`` names users by the pairwise open ids it holds, while a
``furnisher`` (a trusted data provider, registered by an operator) may name
them by the platform's user id. ``pass_thresholds`` hold the score a ``pass``
answer checks, per purpose, when the partner registered its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from nacl.bindings import crypto_core_ed25519_is_valid_point
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel

from config.purposes import load_purposes
from web.clock import utcnow

ROLES = ("partner", "furnisher")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,63}$")
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour|day)\s*$")


class PartnerError(ValueError):
    """A partner cannot be registered or changed as asked; ``str()`` is one line."""


class Partner(SQLModel, table=True):
    __tablename__ = "partners"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, sa_column_kwargs={"unique": True})
    public_key_pem: str = Field(sa_type=sa.Text)
    role: str = Field(max_length=16)
    disabled: bool = Field(default=False)
    rate_limit: str = Field(max_length=32)
    pass_thresholds: dict[str, int] = Field(default_factory=dict, sa_type=sa.JSON)
    redirect_uri: str | None = Field(default=None, max_length=2000)
    created_at: datetime = Field(sa_type=sa.DateTime(timezone=True))


@dataclass(frozen=True)
class PartnerInfo:
    """What a request needs to know about its partner (a plain value, safe to cache or pass)."""

    id: int
    name: str
    public_key_pem: str
    role: str
    disabled: bool
    rate_limit: str
    pass_thresholds: dict[str, int]
    redirect_uri: str | None

    def pass_threshold(self, purpose: str) -> int:
        """The partner's own threshold for this purpose, else the purpose's configured one."""
        own = self.pass_thresholds.get(purpose)
        return int(own) if own is not None else load_purposes().purpose(purpose).pass_threshold

    def public_key(self) -> Ed25519PublicKey:
        return _parse_public_key(self.public_key_pem)

    def raw_public_key(self) -> bytes:
        """The key's 32 raw bytes (what :func:`web.signing.verify` checks against), parsed once per key."""
        return _raw_public_key(self.public_key_pem)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "disabled": self.disabled,
                "rate_limit": self.rate_limit, "pass_thresholds": self.pass_thresholds,
                "redirect_uri": self.redirect_uri}


PARTNER_COLUMNS = (Partner.id, Partner.name, Partner.public_key_pem, Partner.role, Partner.disabled,
            Partner.rate_limit, Partner.pass_thresholds, Partner.redirect_uri)


_BY_NAME = sa.select(*PARTNER_COLUMNS).where(Partner.name == sa.bindparam("name"))  # built once: hot path


def partner_info(row: Any) -> PartnerInfo:
    """A row holding PARTNER_COLUMNS as a :class:`PartnerInfo`."""
    return PartnerInfo(id=row.id, name=row.name, public_key_pem=row.public_key_pem, role=row.role,
                       disabled=bool(row.disabled), rate_limit=row.rate_limit,
                       pass_thresholds=dict(row.pass_thresholds or {}), redirect_uri=row.redirect_uri)


# -- validation ---------------------------------------------------------------


@lru_cache(maxsize=256)
def _parse_public_key(pem: str) -> Ed25519PublicKey:
    key = load_pem_public_key(pem.encode("ascii"))
    if not isinstance(key, Ed25519PublicKey):
        raise PartnerError("the public key is not an Ed25519 key")
    return key


@lru_cache(maxsize=256)
def _raw_public_key(pem: str) -> bytes:
    return _parse_public_key(pem).public_bytes_raw()


def check_public_key(pem: str) -> str:
    """The PEM text if it holds an Ed25519 public key, else :class:`PartnerError`."""
    text = pem.strip() + "\n"
    try:
        _parse_public_key(text)
    except (ValueError, UnsupportedAlgorithm, UnicodeEncodeError) as exc:
        if isinstance(exc, PartnerError):
            raise
        raise PartnerError("the public key is not a PEM-encoded Ed25519 public key") from None
    if not crypto_core_ed25519_is_valid_point(_raw_public_key(text)):
        raise PartnerError("the public key is a small-order Ed25519 point, which signs nothing "
                           "(requests signed for it are always refused): generate a new key pair")
    return text


def check_rate_limit(text: str) -> str:
    """A rate limit such as ``600/minute``, normalised, else :class:`PartnerError`."""
    match = _RATE.match(text)
    if not match or int(match.group(1)) < 1:
        raise PartnerError(f"rate limit {text!r} must look like 600/minute (N per second|minute|hour|day)")
    return f"{int(match.group(1))}/{match.group(2)}"


def check_redirect_uri(uri: str) -> str:
    """An absolute https URI (http only for loopback hosts, for development)."""
    parts = urlsplit(uri)
    loopback = parts.hostname in {"localhost", "127.0.0.1", "::1"}
    if parts.scheme not in {"https", "http"} or not parts.netloc or parts.fragment:
        raise PartnerError("redirect URI must be an absolute http(s) URI without a fragment")
    if parts.scheme == "http" and not loopback:
        raise PartnerError("redirect URI must use https (http only for localhost)")
    return uri


def check_thresholds(thresholds: dict[str, int]) -> dict[str, int]:
    purposes = load_purposes()
    for purpose, value in thresholds.items():
        if purpose not in purposes.codes:
            raise PartnerError(f"unknown purpose {purpose!r}; known: {', '.join(purposes.codes)}")
        if not 0 <= int(value) <= 1000:
            raise PartnerError(f"pass threshold for {purpose} must be between 0 and 1000")
    return {purpose: int(value) for purpose, value in thresholds.items()}


# -- operations ----------------------------------------------------------------


def create_partner(engine: Engine, name: str, *, public_key_pem: str, rate_limit: str,
                   role: str = "partner", redirect_uri: str | None = None,
                   pass_thresholds: dict[str, int] | None = None) -> PartnerInfo:
    """Register a partner; every value is checked first, so a refusal stores nothing."""
    if not _NAME.match(name):
        raise PartnerError(f"partner name {name!r} must be 2-64 of a-z 0-9 _ . - (lower case)")
    if role not in ROLES:
        raise PartnerError(f"role must be one of {', '.join(ROLES)}")
    row = Partner(name=name, public_key_pem=check_public_key(public_key_pem),
                  role=role, rate_limit=check_rate_limit(rate_limit),
                  redirect_uri=check_redirect_uri(redirect_uri) if redirect_uri else None,
                  pass_thresholds=check_thresholds(pass_thresholds or {}), created_at=utcnow())
    values = row.model_dump(exclude={"id"})
    try:
        with engine.begin() as connection:
            connection.execute(sa.insert(Partner).values(**values))
    except IntegrityError:
        raise PartnerError(f"a partner named {name!r} already exists") from None
    partner = find_partner(engine, name)
    assert partner is not None
    return partner


def is_partner_name(name: str) -> bool:
    """Whether ``name`` could be a partner's name (checked before any query sees it)."""
    return bool(_NAME.match(name))


def find_partner(engine: Engine, name: str) -> PartnerInfo | None:
    with engine.connect() as connection:
        return partner_by_name(connection, name)


def partner_by_name(connection: Connection, name: str) -> PartnerInfo | None:
    """The partner called ``name``, read on the caller's connection (the API's hot path)."""
    if not is_partner_name(name):
        return None
    row = connection.execute(_BY_NAME, {"name": name}).first()
    return partner_info(row) if row is not None else None


def require_partner(engine: Engine, name: str) -> PartnerInfo:
    partner = find_partner(engine, name)
    if partner is None:
        raise PartnerError(f"no partner named {name!r}")
    return partner


def list_partners(engine: Engine) -> list[PartnerInfo]:
    with engine.connect() as connection:
        rows = connection.execute(sa.select(*PARTNER_COLUMNS).order_by(Partner.name)).all()
    return [partner_info(row) for row in rows]


def set_disabled(engine: Engine, name: str, *, disabled: bool = True) -> PartnerInfo:
    """Disable (or re-enable) a partner: its signed requests are refused from the next one on."""
    with engine.begin() as connection:
        result = connection.execute(
            sa.update(Partner).where(Partner.name == name).values(disabled=disabled))
    if result.rowcount == 0:
        raise PartnerError(f"no partner named {name!r}")
    return require_partner(engine, name)
