"""One function per scheduled job; the work itself lives in features/ and scoring/.

Each task turns its operation's summary into row counts and details for the
ledger, and nothing more: a task is the seam between "when" (the worker) and
"what" (the operations), so that an operator's ``altcredit jobs run NAME``
does exactly what the schedule does.
"""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from typing import Any

from jobs.runner import JobContext, JobResult, Task


def compact_lake(context: JobContext) -> JobResult:
    from features.lake_writer import compact

    summary = compact(context.settings)
    return JobResult(rows=_counts(summary), details=_plain(summary))


def build_features(context: JobContext) -> JobResult:
    from features.online import publish_if_latest
    from features.store import build_snapshot

    manifest = build_snapshot(context.settings, as_of=context.as_of,
                              progress=lambda stage: context.progress(stage, 0, 1))
    online = publish_if_latest(context.settings, manifest)
    return JobResult(rows={"users": manifest.row_count, "online": online or 0},
                     details=_plain(manifest))


def recompute_scores(context: JobContext) -> JobResult:
    from scoring.recompute import recompute

    summary = recompute(context.settings, as_of=context.as_of, progress=context.progress)
    return JobResult(rows=_counts(summary), details=_plain(summary))


def retrain(context: JobContext) -> JobResult:
    from scoring.retrain import retrain_and_propose

    outcome = retrain_and_propose(context.settings, as_of=context.as_of)
    return JobResult(rows=_counts(outcome), details=_plain(outcome))


def drift_monitor(context: JobContext) -> JobResult:
    from scoring.drift import details
    from scoring.drift_monitor import monitor_drift

    report = monitor_drift(context.settings, as_of=context.as_of)
    return JobResult(rows={"features": len(report.features)}, details=details(report))


def dispute_deadlines(context: JobContext) -> JobResult:
    """Flag open disputes past their deadline, on the real clock (a deadline is a moment)."""
    from datetime import UTC, datetime

    from scoring.disputes import flag_overdue, list_disputes

    now = datetime.now(UTC)
    overdue = flag_overdue(context.settings, now=now)
    ids = [dispute.id for dispute in list_disputes(context.settings, overdue=True, now=now)]
    return JobResult(rows={"overdue": overdue}, details={"now": now.isoformat(), "overdue_ids": ids})


TASKS: dict[str, Task] = {
    "compact_lake": compact_lake,
    "build_features": build_features,
    "recompute_scores": recompute_scores,
    "retrain": retrain,
    "drift_monitor": drift_monitor,
    "dispute_deadlines": dispute_deadlines,
}


def _plain(value: Any) -> dict[str, Any]:
    """A JSON-ready dict of an operation's summary (dataclass, pydantic model or dict)."""
    if is_dataclass(value) and not isinstance(value, type):
        data = asdict(value)
    elif hasattr(value, "model_dump"):
        data = value.model_dump(mode="json")
    elif isinstance(value, dict):
        data = dict(value)
    else:
        data = {"result": str(value)}
    return {key: _jsonable(item) for key, item in data.items()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _counts(summary: Any) -> dict[str, int]:
    """The integer fields of a summary: what the ledger shows as row counts."""
    return {key: value for key, value in _plain(summary).items()
            if isinstance(value, int) and not isinstance(value, bool)}
