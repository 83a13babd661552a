"""The online feature store: the latest feature vector of every user, for serving.

One row per user in the application database, the vector stored as one JSON
object (feature name -> value, missing values as null). JSON rather than a
wide table keeps the schema independent of the definitions: adding a feature
needs no migration, and the row says which definitions (hash) and which
snapshot (as-of date, knowledge time) its values come from.

Publishing replaces every row in one transaction (SQLite and PostgreSQL alike),
so a reader sees the whole previous set or the whole new one, never a mix.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlmodel import Field, SQLModel, delete, insert, select

from config.database import get_engine, session_scope, upgrade
from config.settings import Settings
from features.store import SnapshotManifest, latest_snapshot, load_snapshot

logger = logging.getLogger(__name__)

INSERT_CHUNK = 20_000


class FeatureVector(SQLModel, table=True):
    __tablename__ = "feature_vectors"

    user_id: str = Field(primary_key=True, max_length=128)
    as_of: date
    as_known_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    definitions_hash: str = Field(max_length=64)
    vector: str = Field(sa_type=sa.Text)
    updated_at: datetime = Field(sa_type=sa.DateTime(timezone=True))


def publish_online(settings: Settings, manifest: SnapshotManifest) -> int:
    """Replace the online store by this snapshot's vectors, atomically; returns the row count."""
    frame = load_snapshot(settings, manifest.as_of, manifest.as_known_at)
    names = [name for name in frame.columns if name != "user_id"]
    encoded = frame.select(
        pl.col("user_id"), pl.struct(names).struct.json_encode().alias("vector"))
    common = {"as_of": manifest.as_of, "as_known_at": manifest.as_known_at,
              "definitions_hash": manifest.definitions_hash, "updated_at": datetime.now(UTC)}
    engine = get_engine(settings)
    upgrade(engine)
    with session_scope(engine) as session:
        session.execute(delete(FeatureVector))
        for chunk in encoded.iter_slices(INSERT_CHUNK):
            rows = [{**common, "user_id": user, "vector": vector}
                    for user, vector in chunk.iter_rows()]
            session.execute(insert(FeatureVector), rows)
    logger.info("online store: %d vectors as of %s", encoded.height, manifest.as_of)
    return encoded.height


def online_vector(settings: Settings, user_id: str) -> dict[str, Any] | None:
    """The user's latest published vector (feature name -> value), or None if unknown."""
    entry = online_entry(settings, user_id)
    return None if entry is None else json.loads(entry.vector)


def online_entry(settings: Settings, user_id: str) -> FeatureVector | None:
    """The user's row in the online store, with the snapshot it came from."""
    engine = get_engine(settings)
    upgrade(engine)
    with session_scope(engine) as session:
        return session.exec(select(FeatureVector).where(FeatureVector.user_id == user_id)).first()


def publish_if_latest(settings: Settings, manifest: SnapshotManifest) -> int | None:
    """Publish this snapshot online when it is the newest in the offline store; else None.

    Serving follows the newest knowledge: rebuilding a past date for a backtest
    must not roll the online vectors back.
    """
    latest = latest_snapshot(settings)
    if latest is None or (latest.as_of, latest.as_known_at) != (manifest.as_of, manifest.as_known_at):
        return None
    return publish_online(settings, manifest)
