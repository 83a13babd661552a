"""The tables of disputes and of one-user rescores (see scoring/disputes.py, scoring/rescore.py).

Written by scoring/migrations/0003_disputes.py; the models here must declare
exactly the same columns (tests/config/test_database.py checks).
"""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

OPEN = "open"
UPHELD = "upheld"
REJECTED = "rejected"
STATUSES = (OPEN, UPHELD, REJECTED)


class Dispute(SQLModel, table=True):
    """A person's dispute of one event, from filing to an operator's decision.

    ``open_key`` names the event while the dispute is open and is NULL once it is
    resolved: its unique constraint allows at most one open dispute per event,
    whatever races (NULLs never collide, on SQLite and PostgreSQL alike).
    """

    __tablename__ = "disputes"
    __table_args__ = (
        sa.Index("ix_disputes_user_id", "user_id"),
        sa.Index("ix_disputes_status_deadline", "status", "deadline"),
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: str
    source: str
    event_id: str
    kind: str
    event_time: datetime = Field(sa_type=sa.DateTime(timezone=True))
    event_known_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    reason: str = Field(sa_type=sa.Text)
    status: str
    open_key: str | None = Field(default=None, sa_column=sa.Column(sa.Text, unique=True))
    filed_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    deadline: datetime = Field(sa_type=sa.DateTime(timezone=True))
    overdue_since: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    resolved_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    note: str | None = Field(default=None, sa_type=sa.Text)
    as_of: date | None = None
    score_before: int | None = None
    score_after: int | None = None
    score_resolved: int | None = None


class ScoreRescore(SQLModel, table=True):
    """One published row replaced by a one-user recompute, and how to reproduce it.

    The row's features were computed as of ``as_of`` as known at ``as_known_at``
    reading the lake up to ``event_watermark``; ``snapshot_id`` names that
    (the published set's own snapshot id stays the population's).
    """

    __tablename__ = "score_rescores"
    __table_args__ = (sa.Index("ix_score_rescores_user_id_as_of", "user_id", "as_of"),)

    id: int | None = Field(default=None, primary_key=True)
    set_id: int
    user_id: str
    as_of: date
    dispute_id: int | None = None
    cause: str
    model_version: str
    snapshot_id: str
    as_known_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    event_watermark: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    score_before: int | None = None
    score_after: int | None = None
    created_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
