"""The tables of published scores: score sets and the score history (see scoring/publish.py).

Written by scoring/migrations/0002_score_sets.py; the models here must declare
exactly the same columns (tests/config/test_migrations.py checks).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

BUILDING = "building"
PUBLISHED = "published"
SUPERSEDED = "superseded"


class ScoreSet(SQLModel, table=True):
    """One recompute of one as-of date; readers see only ``published`` sets."""

    __tablename__ = "score_sets"
    __table_args__ = (sa.Index("ix_score_sets_as_of_status", "as_of", "status"),)

    id: int | None = Field(default=None, primary_key=True)
    as_of: date
    model_version: str
    snapshot_id: str
    status: str
    created_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    published_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    n_scored: int
    n_unscored: int


class ScoreHistory(SQLModel, table=True):
    """One user's published score of one as-of date, with its full explanation."""

    __tablename__ = "score_history"
    __table_args__ = (sa.Index("ix_score_history_user_id_as_of", "user_id", "as_of"),)

    set_id: int = Field(sa_column=sa.Column(
        sa.Integer, sa.ForeignKey("score_sets.id", ondelete="CASCADE"), primary_key=True))
    user_id: str = Field(primary_key=True)
    as_of: date
    score: int | None = None
    score_unclipped: float | None = None
    band_code: str | None = None
    base_points: float | None = None
    features: Any = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    dimensions: Any = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    reasons: Any = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    tips: Any = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    status: str
    reason: str | None = None


HISTORY_COLUMNS: tuple[str, ...] = (
    "set_id", "user_id", "as_of", "score", "score_unclipped", "band_code", "base_points",
    "features", "dimensions", "reasons", "tips", "status", "reason",
)
