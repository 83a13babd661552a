"""Minimal consumer accounts: sign-in, sign-out, and the session the consent page needs.

Passwords are hashed with Argon2id. A failed sign-in says the same thing
whether the email is unknown or the password wrong, and costs the same time
(an unknown email is checked against a dummy hash), so the form cannot be used
to find out who has an account; attempts are throttled per client address.
Sessions are Flask's signed cookies, HttpOnly and SameSite=Lax, Secure unless
``accounts_cookie_secure`` is off; every form carries a CSRF token tied to the
session.
"""

from __future__ import annotations

import hmac
import re
import secrets
from datetime import datetime
from urllib.parse import urlsplit

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Blueprint, Flask, abort, redirect, render_template, request, session, url_for
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel
from werkzeug.wrappers import Response

from web import rate_limits
from web.clock import utcnow
from web.consent import ConsentError, check_user_id
from web.state import current_state

bp = Blueprint("accounts", __name__)
_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{2,}$")
SESSION_USER = "account_user_id"
SESSION_CSRF = "csrf_token"


class AccountError(ValueError):
    """An account cannot be created as asked; ``str()`` is one line."""


class Account(SQLModel, table=True):
    __tablename__ = "users"

    user_id: str = Field(primary_key=True, max_length=128)
    email: str = Field(max_length=254, sa_column_kwargs={"unique": True})
    password_hash: str = Field(max_length=255)
    created_at: datetime = Field(sa_type=sa.DateTime(timezone=True))


def create_account(engine: Engine, *, user_id: str, email: str, password: str) -> None:
    """Create a consumer account for a platform user id; refuses duplicates and weak input."""
    try:
        check_user_id(user_id)
    except ConsentError as exc:
        raise AccountError(str(exc)) from None
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise AccountError(f"{email!r} is not an email address")
    if len(password) < 10:
        raise AccountError("the password must have at least 10 characters")
    try:
        with engine.begin() as connection:
            connection.execute(sa.insert(Account).values(
                user_id=user_id, email=email, password_hash=_hasher.hash(password), created_at=utcnow()))
    except IntegrityError:
        raise AccountError("an account with this user id or email already exists") from None


def check_password(engine: Engine, email: str, password: str) -> str | None:
    """The user id when email and password match, else None (in the same time either way)."""
    email = email.strip().lower()
    row = None
    if _EMAIL.match(email) and "\x00" not in email:  # nothing else reaches the database
        with engine.connect() as connection:
            row = connection.execute(sa.select(Account.user_id, Account.password_hash)
                                     .where(Account.email == email)).first()
    stored = row.password_hash if row is not None else _DUMMY_HASH
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    return row.user_id if row is not None else None


# -- sessions and CSRF ------------------------------------------------------------


def init_app(app: Flask) -> None:
    """Session cookie flags and the sign-in routes."""
    settings = app.extensions["altcredit"].settings
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_SECURE=settings.accounts_cookie_secure)
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.register_blueprint(bp)


def csrf_token() -> str:
    """This session's CSRF token, created on first use."""
    token = session.get(SESSION_CSRF)
    if not token:
        token = secrets.token_urlsafe(32)
        session[SESSION_CSRF] = token
    return str(token)


def require_csrf() -> None:
    """Abort with 400 unless the form carries this session's token."""
    expected = session.get(SESSION_CSRF, "")
    given = request.form.get("csrf_token", "")
    if not expected or not hmac.compare_digest(str(expected), given):
        abort(400, description="the form is stale or was not sent from this site; reload and retry")


def signed_in_user() -> str | None:
    user_id = session.get(SESSION_USER)
    return str(user_id) if user_id else None


def safe_next(target: str | None) -> str:
    """A local path to return to after sign-in; anything else becomes the home page."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") \
            or "\\" in target:
        return "/"
    return target


@bp.get("/signin")
def signin_form() -> str:
    return render_template("signin.html", next=safe_next(request.args.get("next")), error=None)


@bp.post("/signin")
def signin() -> Response | tuple[str, int]:
    require_csrf()
    rate_limits.hit(current_state().settings.accounts_signin_limit, "signin",
                    request.remote_addr or "unknown")
    target = safe_next(request.form.get("next"))
    user_id = check_password(current_state().engine, request.form.get("email", ""),
                             request.form.get("password", ""))
    if user_id is None:
        return render_template("signin.html", next=target,
                               error="signin.error"), 401
    session.clear()  # a fresh session (and CSRF token) on sign-in: no fixation
    session[SESSION_USER] = user_id
    return redirect(target)


@bp.post("/signout")
def signout() -> Response:
    require_csrf()
    session.clear()
    return redirect(url_for("accounts.signin_form"))
