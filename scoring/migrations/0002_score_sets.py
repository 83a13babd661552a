"""Score sets and score history: published scores with their explanations.

Revision ID: scoring_0002
Revises: scoring_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "scoring_0002"
down_revision = "scoring_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "score_sets",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("model_version", sa.String(), nullable=False),
        sa.Column("snapshot_id", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("n_scored", sa.Integer(), nullable=False),
        sa.Column("n_unscored", sa.Integer(), nullable=False),
    )
    op.create_index("ix_score_sets_as_of_status", "score_sets", ["as_of", "status"])
    op.create_table(
        "score_history",
        sa.Column("set_id", sa.Integer(), sa.ForeignKey("score_sets.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("user_id", sa.String(), primary_key=True),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("score_unclipped", sa.Float(), nullable=True),
        sa.Column("band_code", sa.String(), nullable=True),
        sa.Column("base_points", sa.Float(), nullable=True),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("dimensions", sa.JSON(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("tips", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=True),
    )
    op.create_index("ix_score_history_user_id_as_of", "score_history", ["user_id", "as_of"])


def downgrade() -> None:
    op.drop_index("ix_score_history_user_id_as_of", table_name="score_history")
    op.drop_table("score_history")
    op.drop_index("ix_score_sets_as_of_status", table_name="score_sets")
    op.drop_table("score_sets")
