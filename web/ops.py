"""Operations endpoints: liveness, readiness, and the problem-type pages."""

from __future__ import annotations

from apiflask import APIBlueprint
from flask import Response, render_template_string
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

import config
from config.database import is_migrated
from scoring import drift
from web.problems import PROBLEM_TYPES, Problem
from web.state import AppState, current_state

bp = APIBlueprint("ops", __name__, tag="Operations")


@bp.get("/healthz")
@bp.doc(summary="Liveness: the process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok", "version": config.version()}


@bp.get("/readyz")
@bp.doc(summary="Readiness: every dependency needed to serve is in place",
        responses={503: "Not ready; `checks` names the failing check"})
def readyz() -> dict[str, object]:
    state = current_state()
    checks = {name: _run(check, state) for name, check in state.readiness_checks.items()}
    report = {name: {"ok": ok, "detail": detail} for name, (ok, detail) in checks.items()}
    if not all(ok for ok, _ in checks.values()):
        failing = ", ".join(name for name, (ok, _) in checks.items() if not ok)
        raise Problem("not-ready", f"failing checks: {failing}", checks=report)
    return {"status": "ready", "version": config.version(), "checks": report}


def _run(check: object, state: AppState) -> tuple[bool, str]:
    try:
        return check(state)  # type: ignore[operator]
    except Exception as exc:  # a crashing check is a failing check, reported by name
        return False, f"{type(exc).__name__}: {exc}"


def database_ready(state: AppState) -> tuple[bool, str]:
    """The database answers a query and carries every package's latest migration."""
    try:
        with state.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        migrated = is_migrated(state.engine)
    except SQLAlchemyError as exc:
        return False, f"database unreachable: {type(exc).__name__}"
    return (True, "reachable and migrated") if migrated else (False, "migrations pending")


def drift_ready(state: AppState) -> tuple[bool, str]:
    """No drift alarm stands: the population still looks like the one the champion learnt on."""
    return drift.readiness(state.settings)


_PROBLEM_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>{{ p.title }} — altcredit problem</title></head><body>
<h1>{{ p.title }} <small>({{ p.status }})</small></h1><p><code>{{ p.uri }}</code></p>
<p>{{ p.description }}</p></body></html>"""


@bp.get("/problems/<slug>")
@bp.doc(summary="What a problem type means", hide=True)
def problem_page(slug: str) -> Response:
    if slug not in PROBLEM_TYPES:
        raise Problem("not-found", f"no problem type {slug!r}")
    return Response(render_template_string(_PROBLEM_PAGE, p=PROBLEM_TYPES[slug]), mimetype="text/html")
