"""The model registry: versions, champion/challenger roles and the promotion log.

Revision ID: scoring_0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "scoring_0001"
down_revision = None
branch_labels = ("scoring",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data_watermark", sa.DateTime(timezone=True), nullable=True),
        sa.Column("definitions_hash", sa.String(length=64), nullable=False),
        sa.Column("engine", sa.String(length=16), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("calibration_a", sa.Float(), nullable=False),
        sa.Column("calibration_b", sa.Float(), nullable=False),
        sa.Column("oot_auc", sa.Float(), nullable=True),
        sa.Column("checksum", sa.String(length=64), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
    )
    op.create_table(
        "model_roles",
        sa.Column("role", sa.String(length=16), primary_key=True),
        sa.Column("version_id", sa.String(length=64), sa.ForeignKey("model_versions.id"),
                  nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "model_promotions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("version_id", sa.String(length=64), sa.ForeignKey("model_versions.id"),
                  nullable=False),
        sa.Column("previous_id", sa.String(length=64), nullable=True),
        sa.Column("promoted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("forced", sa.Boolean(), nullable=False),
        sa.Column("auc_drop", sa.Float(), nullable=True),
        sa.Column("psi", sa.Float(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("model_promotions")
    op.drop_table("model_roles")
    op.drop_table("model_versions")
