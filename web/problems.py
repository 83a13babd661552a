"""The one error path: every failure becomes an RFC 9457 problem document here.

Routes raise :class:`Problem` (or let Flask raise an HTTP error); nothing else
builds error JSON. Each problem type has a stable slug, and its ``type`` URI
(``/problems/<slug>``) resolves to a page that explains it, so a partner can
switch on ``type`` and a person can read what it means.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, g, json
from werkzeug.exceptions import HTTPException

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"


@dataclass(frozen=True)
class ProblemType:
    slug: str
    status: int
    title: str
    description: str

    @property
    def uri(self) -> str:
        return f"/problems/{self.slug}"


_TYPES = [
    ProblemType("bad-request", 400, "Bad request", "The request is malformed or a value is invalid; "
                "`errors` lists each problem."),
    ProblemType("unauthorized", 401, "Unauthorized", "The request is not signed, or its signature, "
                "timestamp, nonce or partner is not accepted."),
    ProblemType("forbidden", 403, "Forbidden", "The caller may not do this: no consent, an expired "
                "or revoked consent, or a purpose the consent does not cover."),
    ProblemType("not-found", 404, "Not found", "No such resource, or none that the caller may see."),
    ProblemType("method-not-allowed", 405, "Method not allowed", "The resource exists but does not "
                "answer this HTTP method; the Allow header lists those it does."),
    ProblemType("conflict", 409, "Conflict", "The request conflicts with stored state, such as an "
                "event id already stored with different content."),
    ProblemType("payload-too-large", 413, "Payload too large", "The body or the batch is larger "
                "than the limit."),
    ProblemType("unsupported-media-type", 415, "Unsupported media type", "The body must be "
                "application/json."),
    ProblemType("rate-limited", 429, "Too many requests", "The caller's rate limit is exhausted; "
                "retry after the number of seconds in Retry-After."),
    ProblemType("internal-error", 500, "Internal error", "The server failed unexpectedly. The "
                "request id identifies the failure in the server's logs."),
    ProblemType("not-ready", 503, "Not ready", "The service is up but cannot serve yet; `checks` "
                "says which readiness check failed."),
    ProblemType("unavailable", 503, "Service unavailable", "A dependency the request needs is "
                "unavailable; nothing was disclosed or changed. Retry later."),
]
PROBLEM_TYPES: dict[str, ProblemType] = {problem.slug: problem for problem in _TYPES}
_BY_STATUS: dict[int, ProblemType] = {}
for _problem in _TYPES:
    _BY_STATUS.setdefault(_problem.status, _problem)


class Problem(Exception):
    """An error answered as a problem document; ``extra`` adds extension members."""

    def __init__(self, slug: str, detail: str | None = None, *,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        if slug not in PROBLEM_TYPES:
            raise ValueError(f"unknown problem type {slug!r}")
        self.type = PROBLEM_TYPES[slug]
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra
        super().__init__(detail or self.type.title)


def problem_document(problem: Problem) -> dict[str, Any]:
    """The problem as a JSON-ready document (also used inside a batch answer, per item)."""
    body: dict[str, Any] = {
        "type": problem.type.uri,
        "title": problem.type.title,
        "status": problem.type.status,
    }
    if problem.detail:
        body["detail"] = problem.detail
    request_id = g.get("request_id")
    if request_id:
        body["request_id"] = request_id
    body.update(problem.extra)
    return body


def problem_response(problem: Problem) -> Response:
    """Render a problem as ``application/problem+json`` with its status and headers."""
    body = problem_document(problem)
    response = Response(json.dumps(body), status=problem.type.status, mimetype=PROBLEM_MEDIA_TYPE)
    response.headers.update(problem.headers)
    return response


def from_http_exception(error: HTTPException) -> Problem:
    """The problem for a werkzeug HTTP error (404 and 405 included)."""
    status = error.code or 500
    kind = _BY_STATUS.get(status)
    headers: dict[str, str] = {}
    if status == 405:
        allowed = getattr(error, "valid_methods", None) or []
        headers["Allow"] = ", ".join(sorted(allowed))
    if status == 429 and error.response is not None and "Retry-After" in error.response.headers:
        headers["Retry-After"] = error.response.headers["Retry-After"]
    if kind is None:
        kind = PROBLEM_TYPES["bad-request"] if status < 500 else PROBLEM_TYPES["internal-error"]
    return Problem(kind.slug, _public_detail(error, kind), headers=headers)


def _public_detail(error: HTTPException, kind: ProblemType) -> str | None:
    description = error.description
    if kind.status >= 500 or not description:
        return None
    return str(description)


def init_app(app: Flask) -> None:
    """Route every error of the app through the problem renderer."""

    @app.errorhandler(Problem)
    def _problem(error: Problem) -> Response:
        return problem_response(error)

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> Response:
        return problem_response(from_http_exception(error))

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        logger.exception("unhandled error", exc_info=error)
        return problem_response(Problem("internal-error"))

    error_processor = getattr(app, "error_processor", None)
    if error_processor is not None:  # APIFlask's validation and abort() errors
        error_processor(_apiflask_error)


def _apiflask_error(error: Any) -> Response:
    status = int(getattr(error, "status_code", 500))
    kind = _BY_STATUS.get(status, PROBLEM_TYPES["bad-request" if status < 500 else "internal-error"])
    extra: dict[str, Any] = {}
    detail_payload = getattr(error, "detail", None)
    if detail_payload and status == 400:
        extra["errors"] = _validation_errors(detail_payload)
    message = getattr(error, "message", None) if status < 500 else None
    headers = dict(getattr(error, "headers", None) or {})
    return problem_response(Problem(kind.slug, message, headers=headers, **extra))


def _validation_errors(detail: Any) -> list[dict[str, Any]]:
    """Flatten APIFlask's {location: {field: [messages]}} into a list of field errors."""
    errors: list[dict[str, Any]] = []
    if not isinstance(detail, dict):
        return [{"reason": str(detail)}]
    for location, fields in detail.items():
        if not isinstance(fields, dict):
            errors.append({"location": location, "reason": str(fields)})
            continue
        for field, messages in fields.items():
            reasons = messages if isinstance(messages, list) else [messages]
            errors.extend({"location": location, "field": field, "reason": str(reason)}
                          for reason in reasons)
    return errors
