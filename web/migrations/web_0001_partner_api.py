"""Partner API: partners, pairwise open ids, consents, used nonces, the inquiry log,
idempotent transactions, and consumer accounts.

Revision ID: web_0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "web_0001"
down_revision = None
branch_labels = ("web",)
depends_on = None


def _when(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "partners",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(length=64), nullable=False, unique=True),
        sa.Column("public_key_pem", sa.Text(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("rate_limit", sa.String(length=32), nullable=False),
        sa.Column("pass_thresholds", sa.JSON(), nullable=False),
        sa.Column("redirect_uri", sa.String(length=2000), nullable=True),
        _when("created_at"),
    )
    op.create_table(
        "open_ids",
        sa.Column("open_id", sa.String(length=64), primary_key=True),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("partner_id", sa.Integer(), sa.ForeignKey("partners.id"), nullable=False),
        _when("created_at"),
        sa.UniqueConstraint("user_id", "partner_id", name="uq_open_ids_user_partner"),
    )
    op.create_table(
        "consents",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("partner_id", sa.Integer(), sa.ForeignKey("partners.id"), nullable=False),
        sa.Column("purpose", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        _when("granted_at"),
        _when("expires_at"),
        _when("revoked_at", nullable=True),
    )
    op.create_index("ix_consents_partner_user_purpose", "consents", ["partner_id", "user_id", "purpose"])
    op.create_index("ix_consents_user", "consents", ["user_id"])
    op.create_table(
        "used_nonces",
        sa.Column("partner_id", sa.Integer(), sa.ForeignKey("partners.id"), primary_key=True),
        sa.Column("nonce", sa.String(length=128), primary_key=True),
        _when("seen_at"),
    )
    op.create_index("ix_used_nonces_seen_at", "used_nonces", ["seen_at"])
    op.create_table(
        "inquiries",
        sa.Column("id", sa.Integer(), primary_key=True),
        _when("created_at"),
        sa.Column("partner_id", sa.Integer(), sa.ForeignKey("partners.id"), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("open_id", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("endpoint", sa.String(length=16), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("transaction_id", sa.String(length=64), nullable=True),
    )
    op.create_index("ix_inquiries_user_created", "inquiries", ["user_id", "created_at"])
    op.create_table(
        "partner_transactions",
        sa.Column("partner_id", sa.Integer(), sa.ForeignKey("partners.id"), primary_key=True),
        sa.Column("transaction_id", sa.String(length=64), primary_key=True),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        _when("created_at"),
    )
    op.create_index("ix_partner_transactions_created", "partner_transactions", ["created_at"])
    op.create_table(
        "users",
        sa.Column("user_id", sa.String(length=128), primary_key=True),
        sa.Column("email", sa.String(length=254), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        _when("created_at"),
    )


def downgrade() -> None:
    for table in ("users", "partner_transactions", "inquiries", "used_nonces", "consents", "open_ids",
                  "partners"):
        op.drop_table(table)
