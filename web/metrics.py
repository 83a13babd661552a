"""Prometheus metrics at ``/metrics``.

Per-request figures (counts, latencies, scores served) are counted in the
process that served the request; under gunicorn every worker writes them to
``PROMETHEUS_MULTIPROC_DIR`` (set by ``altcredit serve``) and ``/metrics``
adds them up, so any worker answers for all. Figures that live in the
database (job runs, the last successful recompute) are read from the ledger
at scrape time, so they are the same whichever process answers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

from apiflask import APIBlueprint
from flask import Flask, Response, g, request
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from jobs.ledger import JobRun, Ledger, as_utc
from web.state import current_state

bp = APIBlueprint("metrics", __name__, tag="Operations")

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


class AppMetrics:
    """The per-process instruments of one app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("altcredit_http_requests_total", "HTTP requests answered.",
                                ["method", "endpoint", "status"], registry=self.registry)
        self.latency = Histogram("altcredit_http_request_duration_seconds", "Time to answer a request.",
                                 ["method", "endpoint"], registry=self.registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
        self.scores_served = Counter("altcredit_scores_served_total", "Scores disclosed to partners.",
                                     ["scope"], registry=self.registry)
        # (method, endpoint, status) -> its request counter and latency histogram, looked up once
        self.by_request: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._served_by_scope: dict[str, Counter] = {}

    def instruments(self, method: str, endpoint: str, status: int) -> tuple[Counter, Histogram]:
        """The labelled request counter and latency histogram of one kind of request."""
        return (self.requests.labels(method, endpoint, str(status)),
                self.latency.labels(method, endpoint))

    def served(self, scope: str) -> Counter:
        """The scores-served counter of one scope, looked up once (``labels`` takes a lock each time)."""
        counter = self._served_by_scope.get(scope)
        if counter is None:
            counter = self._served_by_scope[scope] = self.scores_served.labels(scope)
        return counter


class LedgerCollector(Collector):
    """Job runs by job and status, last durations and the last successful recompute."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        runs = GaugeMetricFamily("altcredit_job_runs", "Job runs in the ledger.", labels=["job", "status"])
        duration = GaugeMetricFamily("altcredit_job_last_duration_seconds",
                                     "Duration of each job's last finished run.", labels=["job"])
        recompute = GaugeMetricFamily("altcredit_last_successful_recompute_timestamp_seconds",
                                      "When the last score recompute succeeded (unix time).")
        ledger = Ledger(self.engine)
        with Session(self.engine) as session:
            counts = session.exec(select(JobRun.job_name, JobRun.status, func.count())
                                  .group_by(JobRun.job_name, JobRun.status)).all()
        for job, status, count in counts:
            runs.add_metric([job, status], count)
        for job in sorted({job for job, _, _ in counts}):
            last = ledger.last_finished(job)
            if last is not None and last.duration_seconds is not None:
                duration.add_metric([job], last.duration_seconds)
        success = Ledger(self.engine).last_success("recompute_scores")
        if success is not None and success.finished_at is not None:
            recompute.add_metric([], as_utc(success.finished_at).timestamp())
        yield from (runs, duration, recompute)


def init_app(app: Flask) -> None:
    """Instrument every request of ``app`` and serve ``/metrics``."""
    metrics = AppMetrics()
    app.extensions["altcredit_metrics"] = metrics

    @app.before_request
    def _start_timer() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        req = request._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup, not two
        rule = req.url_rule
        key = (req.method, rule.rule if rule else "unmatched", response.status_code)
        instruments = metrics.by_request.get(key)
        if instruments is None:
            instruments = metrics.by_request[key] = metrics.instruments(*key)
        instruments[0].inc()
        started = g.get("metrics_started")
        if started is not None:
            instruments[1].observe(time.perf_counter() - started)
        return response

    app.register_blueprint(bp)


def app_metrics(app: Flask) -> AppMetrics:
    metrics: AppMetrics = app.extensions["altcredit_metrics"]
    return metrics


@bp.get("/metrics")
@bp.doc(summary="Prometheus metrics (text exposition format)")
def metrics_endpoint() -> Response:
    from flask import current_app

    state = current_state()
    if os.environ.get(MULTIPROCESS_ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = app_metrics(current_app).registry
    scrape = CollectorRegistry()
    scrape.register(LedgerCollector(state.engine))
    body = generate_latest(registry) + generate_latest(scrape)
    return Response(body, mimetype=CONTENT_TYPE_LATEST)
