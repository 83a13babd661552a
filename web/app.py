"""The application factory, after the Flask tutorial's ``create_app``.

``create_app(settings)`` builds a complete app from the settings it is given
and touches nothing global, so tests (and several apps in one process) each
get their own database, data home and configuration.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from typing import Any

from apiflask import APIFlask
from flask import Response, g, request

import config
from config.database import get_engine
from config.settings import Settings, load_settings
from web import (
    accounts,
    api_docs,
    authorize,
    consumer,
    i18n,
    metrics,
    ops,
    partner_api,
    partner_auth,
    problems,
    rate_limits,
)
from web.logs import configure_logging
from web.state import AppState

logger = logging.getLogger("altcredit.access")

REQUEST_ID_HEADER = "X-Request-Id"
# A caller's request id is kept only if it is short and plain, so it is safe in logs and headers.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class AltcreditApp(APIFlask):
    """APIFlask, remembering which hooks and views are coroutines.

    Flask asks ``inspect.iscoroutinefunction`` of every before-, after- and
    teardown-hook and view on every request (``ensure_sync``), about ten times
    for a partner lookup; a function's answer never changes, so it is asked once.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sync: dict[Callable[..., Any], Callable[..., Any]] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        try:
            return self._sync[func]
        except KeyError:
            made = self._sync[func] = super().ensure_sync(func)
            return made
        except TypeError:  # an unhashable callable: asked every time, as Flask does
            return super().ensure_sync(func)


def create_app(settings: Settings | None = None) -> APIFlask:
    """Build the web app: blueprints, error handling, request ids and readiness checks."""
    settings = settings or load_settings()
    configure_logging(settings)
    app = AltcreditApp(
        "web",
        title="altcredit",
        version=config.version(),
        spec_path="/openapi.json",
        docs_path=None,
    )
    app.config.update(
        SECRET_KEY=settings.session_secret(),
        OPENAPI_VERSION="3.1.0",
        JSON_SORT_KEYS=False,
        MAX_CONTENT_LENGTH=32 * 1024 * 1024,
        VALIDATION_ERROR_STATUS_CODE=400,  # bad input is 400 bad-request, with `errors`
    )
    state = AppState(settings=settings, engine=get_engine(settings))
    state.add_readiness_check("database", ops.database_ready)
    state.add_readiness_check("drift", ops.drift_ready)
    app.extensions["altcredit"] = state

    problems.init_app(app)
    _install_request_ids(app)
    metrics.init_app(app)
    app.register_blueprint(ops.bp)
    rate_limits.init_app(app)
    partner_auth.init_app(app)
    accounts.init_app(app)
    i18n.init_app(app)
    consumer.init_app(app)
    app.register_blueprint(partner_api.bp)
    app.register_blueprint(authorize.bp)
    api_docs.init_app(app)
    return app


def _install_request_ids(app: APIFlask) -> None:
    """Give every request an id (the caller's, when plain, else a new one) and log it."""

    @app.before_request
    def _assign_request_id() -> None:
        given = request.headers.get(REQUEST_ID_HEADER, "")
        request_globals = g._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup, not two
        request_globals.request_id = given if _REQUEST_ID.match(given) else os.urandom(16).hex()
        request_globals.started = time.perf_counter()

    @app.after_request
    def _echo_request_id(response: Response) -> Response:
        request_id = g.get("request_id") or os.urandom(16).hex()
        response.headers[REQUEST_ID_HEADER] = request_id
        if logger.isEnabledFor(logging.INFO):  # the access line is built only when it is written
            started = g.get("started")
            elapsed_ms = round((time.perf_counter() - started) * 1000, 2) if started else None
            method, path = request.method, request.path
            logger.info("%s %s %s", method, path, response.status_code,
                        extra={"method": method, "path": path, "status": response.status_code,
                               "duration_ms": elapsed_ms})
        return response
