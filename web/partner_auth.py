"""Who is calling: the signed-request check every ``/v1`` request passes first.

Order matters: the signature (and the partner's existence and standing) is
checked before the rate limit is counted, and the nonce is spent only after
both — so unsigned noise spends neither a partner's quota nor its nonces, and
every refusal is the same 401 (the server logs which check failed).

With the database nonce store, a lookup spends its nonce in the same commit
that writes its inquiry (:func:`take_pending_nonce`): one write per lookup
instead of two, and a replay is refused before anything is disclosed because
that write commits before the answer is sent. Every other request spends its
nonce when it ends (``after_request``), and a reused nonce turns any answer
into the same 401.

A single lookup (``GET /v1/scores/{open_id}``) reads its partner, its access
and the user's score in one query (:mod:`web.lookup`) before the signature is
verified; on PostgreSQL, without an ``X-Transaction-Id``, its connection runs
in autocommit, so that read and the one-statement inquiry write are a round
trip each, with no BEGIN or COMMIT between them.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import urlsplit

from flask import Flask, Request, Response, current_app, g, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from sqlalchemy import Connection, Engine

from web import prepared, rate_limits
from web.inquiries import TRANSACTION_HEADER
from web.lookup import Lookup, read_lookup
from web.partners import PartnerInfo, partner_by_name
from web.problems import Problem, problem_response
from web.signing import (
    REFUSAL,
    NonceStore,
    SignatureRefused,
    check_clock,
    nonce_store,
    parse_headers,
    verify,
)
from web.sqlite_writes import write_lock
from web.state import current_state

logger = logging.getLogger(__name__)
EXTENSION = "altcredit_partner_auth"
API_PREFIX = "/v1/"


class _Held:
    """One thread's held connection, given back to the pool when the thread ends (or is forgotten).

    Only the process that took it gives it back: a forked child never touches its parent's connection.
    """

    __slots__ = ("connection", "pid")

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.pid = os.getpid()

    def __del__(self) -> None:
        if self.pid == os.getpid() and not self.connection.closed:
            self.connection.close()


class HeldConnections(threading.local):
    """Each thread's SQLite connection for partner requests, kept checked out from one request to the next.

    The pool keeps SQLite's connections open between checkouts anyway; what
    holding one saves is the checkout and checkin themselves (queue, events,
    reset), which cost a partner lookup about as much as its read. Between
    requests the held connection is in no transaction (:func:`close_db` ends
    any, as the pool's reset on return would). A server that starts a thread
    per request (the development server) gets its connection back into the
    pool when the thread ends, so it holds no more connections than before.
    PostgreSQL's connections go back to the pool after every request:
    pre-ping, and the isolation level a lookup sets, are reset there.
    """

    held: _Held | None = None

    def take(self, engine: Engine) -> Connection:
        """The thread's connection, or a new one from the pool that the thread then keeps."""
        held = self.held
        if held is not None and held.pid == os.getpid():
            connection = held.connection
            if not (connection.closed or connection.invalidated):
                return connection
        self.held = _Held(engine.connect())
        return self.held.connection

    def holds(self, connection: Connection) -> bool:
        return self.held is not None and self.held.connection is connection

    def forget(self) -> None:
        """Give the connection back to the pool (which discards it when it was invalidated)."""
        self.held = None


@dataclass
class PartnerAuth:
    nonces: NonceStore
    held: HeldConnections | None  # SQLite only


def init_app(app: Flask) -> None:
    state = app.extensions["altcredit"]
    settings = state.settings
    app.extensions[EXTENSION] = PartnerAuth(
        nonces=nonce_store(state.engine, redis_url=settings.redis_url, skew=settings.partner_clock_skew),
        held=HeldConnections() if state.engine.dialect.name == "sqlite" else None)
    if type(app.session_interface) is SecureCookieSessionInterface:
        app.session_interface = NoSessionForPartners()


class NoSessionForPartners(SecureCookieSessionInterface):
    """Cookie sessions for the pages, none for ``/v1``: partner requests are signed and carry no cookie.

    Opening a cookie session costs every request a signing serializer; the
    partner API gets Flask's null session instead (which refuses writes).
    """

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if request.path.startswith(API_PREFIX):
            return None  # Flask substitutes its null session
        return super().open_session(app, request)


def db() -> Connection:
    """This request's one database connection (taken on first use, given back at teardown)."""
    request_globals = g._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup, not two
    connection: Connection | None = request_globals.get("db_connection")
    if connection is None:
        connection = request_globals.db_connection = _take_connection()
    return connection


def _take_connection() -> Connection:
    held = _auth().held
    engine = current_state().engine
    return engine.connect() if held is None else held.take(engine)


def close_db(_error: BaseException | None = None) -> None:
    """Give the request's connection back (a later :func:`db` takes one again).

    A pooled connection is closed, so a request never holds two of them (the
    score is read on its own), and threaded workers stay within the pool
    instead of opening and closing overflow connections. A thread's held
    SQLite connection (:class:`HeldConnections`) stays with the thread, in no
    transaction.
    """
    connection: Connection | None = g.pop("db_connection", None)
    if connection is None:
        return
    held = _auth().held
    if held is None or not held.holds(connection):
        connection.close()
        return
    try:
        if connection.in_transaction():
            connection.rollback()
        if prepared.driver(connection).in_transaction:  # left by a statement run on the driver
            prepared.rollback(connection)
    except Exception as exc:  # a connection that cannot end its transaction is not kept
        logger.warning("dropping a held connection: %s", type(exc).__name__, exc_info=exc)
        connection.invalidate()
        held.forget()


def request_target(req: Request | None = None) -> str:
    """The request target as it arrived on the request line (path and query), which is what is signed.

    ``req`` defaults to the current request (a caller holding it already saves a proxy lookup).
    """
    req = req or request._get_current_object()  # type: ignore[attr-defined]
    environ = req.environ
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        if not raw.startswith("/"):  # absolute-form: keep path and query only
            parts = urlsplit(raw)
            raw = parts.path + (f"?{parts.query}" if parts.query else "")
        return str(raw)
    query = req.query_string.decode("latin-1")
    return req.path + (f"?{query}" if query else "")


def request_body(req: Request) -> bytes:
    """The body that was signed: empty when the request has none by HTTP's framing rules.

    A request with neither ``Content-Length`` nor ``Transfer-Encoding`` has no
    body (RFC 9112, section 6.3: gunicorn reads it as zero bytes, werkzeug
    gives an empty stream), so a lookup's GET skips wrapping and reading the
    input stream; any other request is read (and cached) as sent.
    """
    environ = req.environ
    if "CONTENT_LENGTH" not in environ and "HTTP_TRANSFER_ENCODING" not in environ:
        return b""
    return req.get_data(cache=True)


def authenticate() -> PartnerInfo:
    """The verified partner of this request, or the 401 (or 429) problem."""
    # Every request pays this: the request and g are looked up through their proxies once.
    req: Request = request._get_current_object()  # type: ignore[attr-defined]
    request_globals = g._get_current_object()  # type: ignore[attr-defined]
    state = current_state()
    try:
        parts = parse_headers(req.headers)
        check_clock(parts, skew=state.settings.partner_clock_skew)
        partner = _partner(req, request_globals, parts.partner)
        if partner is None or partner.disabled:
            raise SignatureRefused("unknown or disabled partner")
        verify(partner.raw_public_key(), parts, method=req.method, target=request_target(req),
               body=request_body(req))
    except SignatureRefused as refused:
        refuse(refused.reason)
    rate_limits.hit(partner.rate_limit, "partner", partner.name)
    request_globals.pending_nonce = (partner.id, parts.nonce)
    if not _store().joins_transaction:
        claim_nonce()
    return partner


def _partner(req: Request, request_globals: Any, name: str) -> PartnerInfo | None:
    """The calling partner; for a single lookup, read together with everything the lookup needs."""
    open_id = (req.view_args or {}).get("open_id")
    if req.endpoint != "partner_api.score" or not isinstance(open_id, str):
        return partner_by_name(db(), name)
    connection = db()
    if connection.dialect.name == "postgresql" and TRANSACTION_HEADER not in req.headers:
        connection.execution_options(isolation_level="AUTOCOMMIT")  # reset when the pool takes it back
    partner, request_globals.lookup = read_lookup(connection, partner=name, open_id=open_id,
                                                  purpose=req.args.get("purpose", ""))
    return partner


def prefetched_lookup(request_globals: Any, open_id: str, purpose: str) -> Lookup | None:
    """What authentication already read for this open id and purpose, if it did (``request_globals``: g)."""
    lookup: Lookup | None = request_globals.get("lookup")
    if lookup is None or (lookup.open_id, lookup.purpose) != (open_id, purpose):
        return None
    return lookup


def _auth() -> PartnerAuth:
    auth: PartnerAuth = current_app.extensions[EXTENSION]
    return auth


def _store() -> NonceStore:
    return _auth().nonces


def claim_nonce(connection: Connection | None = None) -> None:
    """Spend this request's nonce (in ``connection``'s transaction when given), or refuse with 401."""
    pending = g.pop("pending_nonce", None)
    if pending is None:
        return
    if connection is not None:
        g.nonce_in_transaction = pending  # to spend again if that transaction is rolled back
    if not _store().claim(*pending, connection=connection):
        refuse("the nonce was used before")


def take_pending_nonce(request_globals: Any) -> tuple[int, str] | None:
    """This request's unspent nonce, for a writer that spends it in its own commit (and refuses a replay).

    ``request_globals`` is ``flask.g``, which the caller holds already.
    """
    pending: tuple[int, str] | None = request_globals.pop("pending_nonce", None)
    return pending


def reclaim_nonce() -> None:
    """Spend the nonce again on its own: the transaction it was spent in was rolled back."""
    g.pending_nonce = g.pop("nonce_in_transaction", None)
    claim_nonce()


def settle(response: Response) -> Response:
    """After a /v1 request: spend a nonce the request has not spent; a reused one becomes 401."""
    if g.get("pending_nonce") is not None:
        connection = db()
        connection.rollback()  # end any read transaction; the nonce gets its own
        try:
            with write_lock(connection):
                claim_nonce(connection)
                connection.commit()
        except Problem as refused:
            connection.rollback()
            response = problem_response(refused)
    return response


def forget_expired_nonces() -> None:
    _store().purge_expired()


def refuse(reason: str) -> NoReturn:
    logger.info("signed request refused: %s", reason,
                extra={"path": request.path, "partner": request.headers.get("X-Partner", "")[:64]})
    raise Problem("unauthorized", REFUSAL)
