"""UTC time for the web tables: one ``now`` and one way to read stored timestamps back.

SQLite returns the naive UTC datetimes it was given, PostgreSQL returns aware
ones; every comparison in ``web`` goes through :func:`as_utc` so both agree.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Now, timezone-aware in UTC."""
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """A stored timestamp as an aware UTC datetime (naive values are UTC by convention)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
