"""The model registry's tables: versions, champion/challenger roles, promotions.

A version row is written once and never updated (its artefacts are immutable
files under the data home, pinned by the row's checksum); roles and the
promotion log are what change.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

CHAMPION = "champion"
CHALLENGER = "challenger"


class ModelVersion(SQLModel, table=True):
    __tablename__ = "model_versions"

    id: str = Field(primary_key=True, max_length=64)
    created_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    data_watermark: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    definitions_hash: str = Field(max_length=64)
    engine: str = Field(max_length=16)
    params: str = Field(sa_type=sa.Text)
    calibration_a: float
    calibration_b: float
    oot_auc: float | None = None
    checksum: str = Field(max_length=64)
    path: str = Field(sa_type=sa.Text)


class ModelRole(SQLModel, table=True):
    __tablename__ = "model_roles"

    role: str = Field(primary_key=True, max_length=16)
    version_id: str = Field(foreign_key="model_versions.id", max_length=64)
    updated_at: datetime = Field(sa_type=sa.DateTime(timezone=True))


class ModelPromotion(SQLModel, table=True):
    __tablename__ = "model_promotions"

    id: int | None = Field(default=None, primary_key=True)
    version_id: str = Field(foreign_key="model_versions.id", max_length=64)
    previous_id: str | None = Field(default=None, max_length=64)
    promoted_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    forced: bool = False
    auc_drop: float | None = None
    psi: float | None = None
    note: str = Field(default="", sa_type=sa.Text)
