"""The consumer pages: my score, why, what changed, how to improve, who looked, consent, my data.

Every route here serves the signed-in user and reads only that user's rows:
the user id comes from the session, never from the URL or a form, so another
person's data cannot be asked for. A signed-out visit is sent to sign-in and
back. Forms carry the session's CSRF token. The work lives in
:mod:`web.consumer_views` (and in scoring and features); a route parses,
authorises, calls and renders.
"""

from __future__ import annotations

from apiflask import APIBlueprint
from flask import Flask, abort, flash, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from config.scorecard import load_scorecard
from scoring.disputes import DisputeError, file_dispute
from web import consumer_views as views
from web.accounts import require_csrf, signed_in_user
from web.consent import revoke_consent_by_id
from web.state import current_state

# HTML pages, not part of the partner API's OpenAPI document.
bp = APIBlueprint("consumer", __name__, enable_openapi=False)

# The pages in the navigation, in order: (endpoint, catalogue key of its name).
NAV = (("consumer.score", "nav.score"), ("consumer.why", "nav.why"), ("consumer.history", "nav.history"),
       ("consumer.tips", "nav.tips"), ("consumer.inquiries", "nav.inquiries"),
       ("consumer.consents", "nav.consents"), ("consumer.data", "nav.data"))
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data:; form-action 'self'; "
                           "frame-ancestors 'none'; base-uri 'none'")


def init_app(app: Flask) -> None:
    """Register the pages and the template helpers their layout needs."""
    app.jinja_env.globals.update(signed_in_user=signed_in_user, consumer_nav=NAV, minutes=views.minutes,
                                 band_of=lambda code: load_scorecard().band(code))
    app.register_blueprint(bp)


def _user() -> str:
    user_id = signed_in_user()
    if user_id is None:  # the before_request hook makes this unreachable
        abort(401)
    return user_id


@bp.before_request
def _require_sign_in() -> Response | None:
    """Every page here needs a signed-in user; a visitor goes to sign-in and comes back."""
    if signed_in_user() is None:
        return redirect(url_for("accounts.signin_form", next=request.full_path.rstrip("?")))
    return None


@bp.after_request
def _same_site_only(response: Response) -> Response:
    """Nothing from elsewhere (no CDN, fonts or trackers), and no framing (no click-jacked revoke)."""
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    return response


@bp.errorhandler(HTTPException)
def _error_page(error: HTTPException) -> tuple[str, int]:
    """Errors on these pages are pages in the user's language, not problem documents."""
    status = error.code or 500
    key = {400: "error.bad_request", 404: "error.not_found"}.get(status, "error.other")
    return render_template("consumer/error.html", message_key=key), status


@bp.get("/")
def home() -> Response:
    return redirect(url_for("consumer.score"))


@bp.get("/me")
def score() -> str:
    page = views.score_page(current_state().engine, _user())
    return render_template("consumer/score.html", page=page, rule=views.min_data_rule())


@bp.get("/me/why")
def why() -> str:
    page = views.score_page(current_state().engine, _user())
    score = page.score
    if score is None or score.score is None:
        return render_template("consumer/why.html", score=None)
    cost, earned = views.factors(score)
    rows = views.dimension_rows(score)
    return render_template("consumer/why.html", score=score, cost=cost, earned=earned, rows=rows,
                           bars=views.dimension_bars(rows))


@bp.get("/me/history")
def history() -> str:
    return render_template("consumer/history.html", page=views.history_page(current_state().engine, _user()))


@bp.get("/me/tips")
def tips() -> str:
    page = views.score_page(current_state().engine, _user())
    return render_template("consumer/tips.html", score=page.score)


@bp.get("/me/inquiries")
def inquiries() -> str:
    return render_template("consumer/inquiries.html",
                           rows=views.inquiry_rows(current_state().engine, _user()))


@bp.get("/me/consents")
def consents() -> str:
    return render_template("consumer/consents.html",
                           groups=views.consent_groups(current_state().engine, _user()))


@bp.post("/me/consents/<int:consent_id>/revoke")
def revoke(consent_id: int) -> Response:
    require_csrf()
    if not revoke_consent_by_id(current_state().engine, user_id=_user(), consent_id=consent_id):
        abort(404)  # not this user's, or no longer active: nothing changed
    flash("consents.revoked_notice")
    return redirect(url_for("consumer.consents"), code=303)


@bp.get("/me/data")
def data() -> str:
    page = views.data_page(current_state().settings, _user(), family=request.args.get("family"),
                           page=request.args.get("page", 1, type=int) or 0)
    if page is None:
        abort(404)
    return render_template("consumer/data.html", page=page)


@bp.post("/me/disputes")
def dispute() -> Response:
    """File a dispute on one of the user's events; the backend checks the event is theirs."""
    require_csrf()
    back = {"family": request.form.get("family", ""), "page": request.form.get("page", "1")}
    try:
        file_dispute(current_state().settings, user_id=_user(), source=request.form.get("source", ""),
                     event_id=request.form.get("event_id", ""), reason=request.form.get("reason", ""))
    except DisputeError as refused:
        flash(str(refused), "refused")
        return redirect(url_for("consumer.data", **back), code=303)
    flash("data.dispute_filed")
    return redirect(url_for("consumer.data", **back), code=303)
