"""The consent page: a signed-in user sees who asks, why, for what and how long, and decides.

``GET /authorize?partner=P&purpose=PURPOSE&scope=SCOPE&redirect_uri=URI&state=S``.
The request is checked before anything is shown, and a bad one is answered on
this site, never redirected: the redirect URI must be exactly the one the
partner registered, so the page cannot be used to send a user (or an open id)
anywhere else. Approving grants the consent and redirects with ``open_id`` and
``state``; declining redirects with ``error=access_denied`` and ``state``.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

from flask import Blueprint, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from config.purposes import SCOPE_CODES, load_purposes
from web.accounts import require_csrf, signed_in_user
from web.consent import grant_consent
from web.partners import PartnerInfo, find_partner, is_partner_name
from web.state import current_state

bp = Blueprint("authorize", __name__)
_MAX_STATE = 500


@dataclass(frozen=True)
class AuthorizationRequest:
    partner: PartnerInfo
    purpose: str
    scope: str
    redirect_uri: str
    state: str


class BadAuthorization(ValueError):
    """The authorisation request cannot be shown; ``str()`` is the catalogue key of why, for the user."""


def parse_request(values: dict[str, str]) -> AuthorizationRequest:
    """Check every parameter; the partner must exist, be enabled and own the redirect URI."""
    name = values.get("partner", "")
    partner = find_partner(current_state().engine, name) if is_partner_name(name) else None
    if partner is None or partner.disabled:
        raise BadAuthorization("authorize.error.partner")
    purposes = load_purposes()
    purpose, scope = values.get("purpose", ""), values.get("scope", "")
    if purpose not in purposes.codes:
        raise BadAuthorization("authorize.error.purpose")
    if scope not in SCOPE_CODES:
        raise BadAuthorization("authorize.error.scope")
    redirect_uri = values.get("redirect_uri", "")
    if not partner.redirect_uri or redirect_uri != partner.redirect_uri:
        raise BadAuthorization("authorize.error.redirect_uri")
    state = values.get("state", "")
    if len(state) > _MAX_STATE:
        raise BadAuthorization("authorize.error.state")
    return AuthorizationRequest(partner, purpose, scope, redirect_uri, state)


def _back_to_partner(target: str, params: dict[str, str]) -> Response:
    parts = urlsplit(target)
    query = "&".join(filter(None, [parts.query, urlencode(params)]))
    return redirect(urlunsplit((parts.scheme, parts.netloc, parts.path, query, "")), code=303)


@bp.get("/authorize")
def authorize_page() -> Response | str | tuple[str, int]:
    try:
        asked = parse_request(request.args.to_dict())
    except BadAuthorization as problem:
        return render_template("authorize_error.html", message=str(problem)), 400
    if signed_in_user() is None:
        return redirect(url_for("accounts.signin_form", next=request.full_path.rstrip("?")))
    purposes = load_purposes()
    return render_template(
        "authorize.html", asked=asked, purpose=purposes.purpose(asked.purpose),
        scope=purposes.scope(asked.scope), days=current_state().settings.consent_default_days)


@bp.post("/authorize")
def authorize_decision() -> Response | tuple[str, int]:
    require_csrf()
    user_id = signed_in_user()
    try:
        asked = parse_request(request.form.to_dict())
    except BadAuthorization as problem:
        return render_template("authorize_error.html", message=str(problem)), 400
    if user_id is None:
        return redirect(url_for("accounts.signin_form"))
    if request.form.get("decision") != "approve":
        return _back_to_partner(asked.redirect_uri, {"error": "access_denied", "state": asked.state})
    state = current_state()
    consent = grant_consent(state.engine, user_id=user_id, partner=asked.partner, purpose=asked.purpose,
                            scope=asked.scope, days=state.settings.consent_default_days)
    return _back_to_partner(asked.redirect_uri, {"open_id": consent.open_id, "state": asked.state})
