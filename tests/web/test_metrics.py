"""Prometheus metrics: per-request instruments and ledger-derived job figures."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine

from jobs.ledger import Ledger
from tests.conftest import LiveServer


def _samples(text: str) -> dict[str, float]:
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def test_requests_are_counted_by_endpoint_and_status(live_server: LiveServer) -> None:
    for _ in range(3):
        live_server.get("/healthz")
    live_server.get("/missing")
    response = live_server.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = _samples(response.text)
    assert samples['altcredit_http_requests_total{endpoint="/healthz",method="GET",status="200"}'] == 3
    assert samples['altcredit_http_requests_total{endpoint="unmatched",method="GET",status="404"}'] == 1
    assert samples['altcredit_http_request_duration_seconds_count{endpoint="/healthz",method="GET"}'] == 3


def test_job_runs_and_last_recompute_come_from_the_ledger(live_server: LiveServer, db: Engine) -> None:
    ledger = Ledger(db)
    done = ledger.start("recompute_scores", as_of=date(2026, 11, 1), trigger="manual")
    finished = ledger.finish(done.id, rows={"scored": 10})
    failed = ledger.start("build_features", as_of=date(2026, 11, 1), trigger="manual")
    ledger.fail(failed.id, "boom")
    samples = _samples(live_server.get("/metrics").text)
    assert samples['altcredit_job_runs{job="recompute_scores",status="succeeded"}'] == 1
    assert samples['altcredit_job_runs{job="build_features",status="failed"}'] == 1
    stamp = samples["altcredit_last_successful_recompute_timestamp_seconds"]
    assert abs(stamp - finished.finished_at.timestamp()) < 1


def test_disclosing_lookups_are_counted_as_scores_served(live_server: LiveServer, acme, scored: str) -> None:
    assert acme.score(scored).status_code == 200
    transaction = {"X-Transaction-Id": "tx-1"}
    assert acme.score(scored, headers=transaction).status_code == 200
    assert acme.score(scored, headers=transaction).status_code == 200  # a replay discloses nothing new
    samples = _samples(live_server.get("/metrics").text)
    assert samples['altcredit_scores_served_total{scope="score"}'] == 2
