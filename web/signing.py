"""Signed requests: Ed25519 over a canonical string, a clock window and single-use nonces.

A partner signs ``METHOD\\nTARGET\\nTIMESTAMP\\nNONCE\\nSHA256_HEX(BODY)`` where
TARGET is the request target exactly as sent on the request line (the path,
and ``?query`` when there is a query). The server rebuilds the same string
from the request it received, so any change to method, path, query, body,
timestamp or nonce breaks the signature. Signatures are checked by libsodium
(PyNaCl), which verifies in about half the time OpenSSL takes here and is at
least as strict (it also refuses small-order keys and non-canonical
encodings). A timestamp more than
``partner_clock_skew`` seconds from the server's clock is refused, and a nonce
is accepted once: it is kept (in the database, or Redis when configured) for
twice the window, longer than any timestamp that could still carry it.

Every refusal is the same 401 with the same words, so a caller learns nothing
about which part failed; the server logs the reason.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Protocol

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from nacl.bindings import crypto_sign_open
from nacl.exceptions import CryptoError
from sqlalchemy import Connection, Engine, Insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel

from web.clock import utcnow
from web.sqlite_writes import write_lock

logger = logging.getLogger(__name__)

HEADER_PARTNER = "X-Partner"
HEADER_TIMESTAMP = "X-Timestamp"
HEADER_NONCE = "X-Nonce"
HEADER_SIGNATURE = "X-Signature"
_NONCE = re.compile(r"^[A-Za-z0-9._~-]{8,128}$")
_TIMESTAMP = re.compile(r"^\d{1,12}$")
REFUSAL = "the request is not signed, or its signature is not accepted"


class SignatureRefused(Exception):
    """The request's signature is not accepted; ``reason`` is for the server's log only."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def canonical_string(method: str, target: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """What is signed: method, request target, timestamp, nonce and the body's SHA-256, one per line."""
    return "\n".join((method.upper(), target, timestamp, nonce, body_digest(body))).encode("utf-8")


def sign_request(private_key: Ed25519PrivateKey, *, partner: str, method: str, target: str,
                 body: bytes = b"", timestamp: int | None = None,
                 nonce: str | None = None) -> dict[str, str]:
    """The four signature headers for one request (what the client and the benchmarks send)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or secrets.token_urlsafe(18)
    signature = private_key.sign(canonical_string(method, target, stamp, nonce, body))
    return {HEADER_PARTNER: partner, HEADER_TIMESTAMP: stamp, HEADER_NONCE: nonce,
            HEADER_SIGNATURE: base64.b64encode(signature).decode("ascii")}


@dataclass(frozen=True)
class SignedParts:
    """The signature headers of a request, checked for shape but not yet for truth."""

    partner: str
    timestamp: int
    nonce: str
    signature: bytes


def parse_headers(headers: dict[str, str] | object) -> SignedParts:
    """The signature headers, or :class:`SignatureRefused` when one is missing or malformed."""
    get = headers.get  # type: ignore[attr-defined]
    partner, stamp = get(HEADER_PARTNER), get(HEADER_TIMESTAMP)
    nonce, signature = get(HEADER_NONCE), get(HEADER_SIGNATURE)
    if not (partner and stamp and nonce and signature):
        raise SignatureRefused("a signature header is missing")
    if not _TIMESTAMP.match(stamp) or not _NONCE.match(nonce) or len(partner) > 64:
        raise SignatureRefused("a signature header is malformed")
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureRefused("the signature is not base64") from None
    if len(raw) != 64:
        raise SignatureRefused("the signature is not 64 bytes")
    return SignedParts(partner=partner, timestamp=int(stamp), nonce=nonce, signature=raw)


def check_clock(parts: SignedParts, *, skew: int, now: float | None = None) -> None:
    current = time.time() if now is None else now
    if abs(current - parts.timestamp) > skew:
        raise SignatureRefused("the timestamp is outside the accepted window")


def verify(public_key: Ed25519PublicKey | bytes, parts: SignedParts, *, method: str, target: str,
           body: bytes) -> None:
    """Check the Ed25519 signature over the canonical string rebuilt from the received request.

    ``public_key`` is a key, or its 32 raw bytes (what the partner API passes:
    :meth:`web.partners.PartnerInfo.raw_public_key`, parsed once per key).
    """
    raw = public_key if isinstance(public_key, bytes) else public_key.public_bytes_raw()
    message = canonical_string(method, target, str(parts.timestamp), parts.nonce, body)
    try:
        crypto_sign_open(parts.signature + message, raw)
    except (CryptoError, ValueError, TypeError):
        raise SignatureRefused("the signature does not verify") from None


# -- nonces ---------------------------------------------------------------------


class NonceStore(Protocol):
    #: True when a claim can join the caller's database transaction (so a lookup spends
    #: its nonce and writes its inquiry in one commit).
    joins_transaction: bool

    def claim(self, partner_id: int, nonce: str, connection: Connection | None = None) -> bool:
        """Record the nonce; False when it was already seen within the window."""

    def purge_expired(self) -> None:
        """Forget what the window no longer needs (a no-op where the store expires by itself)."""


class UsedNonce(SQLModel, table=True):
    __tablename__ = "used_nonces"
    __table_args__ = (sa.Index("ix_used_nonces_seen_at", "seen_at"),)

    partner_id: int = Field(primary_key=True, foreign_key="partners.id")
    nonce: str = Field(primary_key=True, max_length=128)
    seen_at: datetime = Field(sa_type=sa.DateTime(timezone=True))


_INSERT_NONCE = sa.insert(UsedNonce)


@lru_cache(maxsize=4)
def spend_nonce_statement(dialect: str) -> Insert:
    """The INSERT of a nonce that does nothing when it is there already (no row, rowcount 0).

    For writers that spend a nonce inside a larger statement or transaction and
    must tell a reused nonce from a failure without an exception.
    """
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(UsedNonce).on_conflict_do_nothing()


class DatabaseNonceStore:
    """Nonces in the app database: the primary key refuses a second claim, across all workers."""

    joins_transaction = True

    def __init__(self, engine: Engine, *, keep_seconds: int) -> None:
        self.engine = engine
        self.keep = timedelta(seconds=keep_seconds)
        self._next_purge = 0.0
        self._lock = threading.Lock()

    def claim(self, partner_id: int, nonce: str, connection: Connection | None = None) -> bool:
        """Insert the nonce, in ``connection``'s transaction when given (its caller commits)."""
        now = utcnow()
        values = {"partner_id": partner_id, "nonce": nonce, "seen_at": now}
        try:
            if connection is not None:  # a refusal aborts the caller's transaction, as it should
                connection.execute(_INSERT_NONCE, values)
            else:
                with write_lock(self.engine), self.engine.begin() as own:
                    own.execute(_INSERT_NONCE, values)
        except IntegrityError:
            return False
        return True

    def purge_expired(self) -> None:
        """Forget nonces older than the window, at most once a minute per process.

        Called between requests, never inside a caller's transaction (on SQLite a
        second writer would wait for that transaction's lock).
        """
        if time.monotonic() < self._next_purge:  # most calls stop here, without the lock
            return
        with self._lock:
            if time.monotonic() < self._next_purge:
                return
            self._next_purge = time.monotonic() + 60
        with self.engine.begin() as connection:
            connection.execute(sa.delete(UsedNonce).where(UsedNonce.seen_at < utcnow() - self.keep))


class RedisNonceStore:
    """Nonces in Redis: ``SET NX`` with an expiry, shared by every worker and host."""

    joins_transaction = False

    def __init__(self, url: str, *, keep_seconds: int) -> None:
        import redis

        self.client = redis.Redis.from_url(url)
        self.keep = keep_seconds

    def claim(self, partner_id: int, nonce: str, connection: Connection | None = None) -> bool:
        return bool(self.client.set(f"altcredit:nonce:{partner_id}:{nonce}", b"1",
                                    nx=True, ex=self.keep))

    def purge_expired(self) -> None:
        """Redis expires the keys itself."""


def nonce_store(engine: Engine, *, redis_url: str, skew: int) -> NonceStore:
    """Redis when configured (shared by hosts), else the app database."""
    keep = 2 * skew
    if redis_url:
        return RedisNonceStore(redis_url, keep_seconds=keep)
    return DatabaseNonceStore(engine, keep_seconds=keep)
