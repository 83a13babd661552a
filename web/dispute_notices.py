"""Which partners to tell about an upheld dispute: those who received the user's score while
the disputed event counted.

A partner that looked the user up after the event became known and before
the dispute was upheld saw a score that the event may have moved, so the
operator should tell it. The inquiry log (web/inquiries.py) says who looked
and when; this list lives in web/ because the scoring package knows nothing
of partners (data flows one way).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from scoring.dispute_tables import UPHELD
from scoring.disputes import DisputeView
from web.inquiries import list_inquiries

MAX_INQUIRIES = 100_000


def partners_to_notify(engine: Engine, dispute: DisputeView) -> list[dict[str, Any]]:
    """Per partner, the lookups of an upheld dispute's user in [event known, upheld]; [] otherwise.

    Each entry: ``partner``, ``lookups`` (how many), ``first`` and ``last`` (ISO 8601)
    and the ``purposes`` they gave, partners in order of their first lookup.
    """
    if dispute.status != UPHELD or dispute.resolved_at is None:
        return []
    start, end = dispute.event_known_at, dispute.resolved_at
    partners: dict[str, dict[str, Any]] = {}
    for inquiry in reversed(list_inquiries(engine, user_id=dispute.user_id, limit=MAX_INQUIRIES)):
        moment = datetime.fromisoformat(inquiry["time"])
        if not start <= moment <= end:
            continue
        entry = partners.setdefault(inquiry["partner"], {
            "partner": inquiry["partner"], "lookups": 0, "first": inquiry["time"],
            "last": inquiry["time"], "purposes": []})
        entry["lookups"] += 1
        entry["last"] = inquiry["time"]
        if inquiry["purpose"] not in entry["purposes"]:
            entry["purposes"].append(inquiry["purpose"])
    return list(partners.values())
