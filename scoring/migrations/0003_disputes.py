"""Disputes, and the log of published rows replaced by one-user rescores.

Revision ID: scoring_0003
Revises: scoring_0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "scoring_0003"
down_revision = "scoring_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "disputes",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.String(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_known_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("open_key", sa.Text(), nullable=True, unique=True),
        sa.Column("filed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("overdue_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("as_of", sa.Date(), nullable=True),
        sa.Column("score_before", sa.Integer(), nullable=True),
        sa.Column("score_after", sa.Integer(), nullable=True),
        sa.Column("score_resolved", sa.Integer(), nullable=True),
    )
    op.create_index("ix_disputes_user_id", "disputes", ["user_id"])
    op.create_index("ix_disputes_status_deadline", "disputes", ["status", "deadline"])
    op.create_table(
        "score_rescores",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("set_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("dispute_id", sa.Integer(), nullable=True),
        sa.Column("cause", sa.String(), nullable=False),
        sa.Column("model_version", sa.String(), nullable=False),
        sa.Column("snapshot_id", sa.String(), nullable=False),
        sa.Column("as_known_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_watermark", sa.DateTime(timezone=True), nullable=True),
        sa.Column("score_before", sa.Integer(), nullable=True),
        sa.Column("score_after", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_score_rescores_user_id_as_of", "score_rescores", ["user_id", "as_of"])


def downgrade() -> None:
    op.drop_index("ix_score_rescores_user_id_as_of", table_name="score_rescores")
    op.drop_table("score_rescores")
    op.drop_index("ix_disputes_status_deadline", table_name="disputes")
    op.drop_index("ix_disputes_user_id", table_name="disputes")
    op.drop_table("disputes")
