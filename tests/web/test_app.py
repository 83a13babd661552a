"""The app skeleton over real HTTP: health, readiness, request ids, problem documents."""

from __future__ import annotations

import json
import logging

import pytest
from flask import Flask

from config.database import downgrade_all, expected_heads
from tests.conftest import LiveServer
from web.state import current_state


def test_healthz_answers_json(live_server: LiveServer) -> None:
    response = live_server.get("/healthz")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["status"] == "ok"


def test_readyz_reports_a_migrated_database(live_server: LiveServer) -> None:
    response = live_server.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"]["ok"] is True


def test_readyz_refuses_when_migrations_are_pending(live_server: LiveServer) -> None:
    if not expected_heads():
        pytest.skip("no package has migrations yet")
    with live_server.app.app_context():
        downgrade_all(current_state().engine)
    response = live_server.get("/readyz")
    assert response.status_code == 503
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["checks"]["database"] == {"ok": False, "detail": "migrations pending"}


def test_a_failing_readiness_check_is_named(live_server: LiveServer) -> None:
    with live_server.app.app_context():
        current_state().add_readiness_check("model", lambda _state: (False, "no champion"))
    response = live_server.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["type"] == "/problems/not-ready"
    assert "model" in body["detail"]
    assert body["checks"]["model"] == {"ok": False, "detail": "no champion"}


def test_request_id_is_echoed_when_given(live_server: LiveServer) -> None:
    response = live_server.get("/healthz", headers={"X-Request-Id": "partner-req.42"})
    assert response.headers["X-Request-Id"] == "partner-req.42"


def test_request_id_is_generated_when_missing_or_unsafe(live_server: LiveServer) -> None:
    plain = live_server.get("/healthz").headers["X-Request-Id"]
    unsafe = live_server.get("/healthz", headers={"X-Request-Id": "x" * 300}).headers["X-Request-Id"]
    assert len(plain) == 32 and len(unsafe) == 32
    assert plain != unsafe


def test_unknown_path_is_a_404_problem(live_server: LiveServer) -> None:
    response = live_server.get("/no/such/thing", headers={"X-Request-Id": "r-404"})
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "/problems/not-found"
    assert body["status"] == 404
    assert body["request_id"] == "r-404"


def test_wrong_method_is_a_405_problem_with_allow(live_server: LiveServer) -> None:
    response = live_server.request("DELETE", "/healthz")
    assert response.status_code == 405
    assert response.headers["Content-Type"] == "application/problem+json"
    assert "GET" in response.headers["Allow"]
    assert response.json()["type"] == "/problems/method-not-allowed"


def test_unexpected_error_is_a_500_problem_that_leaks_nothing(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    def explode() -> str:
        raise RuntimeError("secret connection string postgres://admin:hunter2@db")

    app.add_url_rule("/explode", view_func=explode)
    with caplog.at_level(logging.ERROR):
        response = app.test_client().get("/explode", headers={"X-Request-Id": "r-500"})
    assert response.status_code == 500
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body == {"type": "/problems/internal-error", "title": "Internal error",
                    "status": 500, "request_id": "r-500"}
    assert "hunter2" not in response.get_data(as_text=True)
    logged = [record for record in caplog.records if record.exc_info]
    assert logged and logged[0].request_id == "r-500"
    assert "hunter2" in str(logged[0].exc_info[1])


def test_problem_types_resolve_to_a_page(live_server: LiveServer) -> None:
    response = live_server.get("/problems/not-found")
    assert response.status_code == 200
    assert "Not found" in response.text
    assert live_server.get("/problems/no-such-type").status_code == 404


def test_logs_are_json_lines_with_the_request_id(app: Flask, capfd: pytest.CaptureFixture[str]) -> None:
    from config.settings import load_settings
    from web.logs import configure_logging

    configure_logging(load_settings(log_format="json"))
    app.test_client().get("/healthz", headers={"X-Request-Id": "log-me"})
    lines = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")]
    access = [line for line in lines if line["logger"] == "altcredit.access"]
    assert access[-1]["request_id"] == "log-me"
    assert access[-1]["status"] == 200
    assert access[-1]["path"] == "/healthz"


def test_openapi_document_is_generated(live_server: LiveServer) -> None:
    document = live_server.get("/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    assert "/healthz" in document["paths"]


def test_readyz_refuses_while_a_drift_alarm_stands(live_server: LiveServer) -> None:
    from datetime import date

    import numpy as np

    from scoring.drift import build_profile, compare, save_report

    rng = np.random.default_rng(0)
    profile = build_profile("v1", {"score": rng.normal(600, 50, 2000)})
    shifted = compare(profile, {"score": rng.normal(700, 50, 2000)}, as_of=date(2026, 11, 1),
                      warn=0.1, alarm=0.25)
    with live_server.app.app_context():
        save_report(current_state().settings, shifted)
    response = live_server.get("/readyz")
    assert response.status_code == 503
    assert "drift alarm" in response.json()["checks"]["drift"]["detail"]


def test_hooks_are_checked_for_coroutines_once_and_still_run(app: Flask) -> None:
    calls: list[str] = []

    @app.before_request
    def _count() -> None:
        calls.append("before")

    first = app.ensure_sync(_count)
    assert app.ensure_sync(_count) is first
    client = app.test_client()
    for _ in range(3):
        client.get("/healthz")
    assert calls == ["before"] * 3
