"""The event lake: append-only Parquet files under ``<home>/lake``, and how to read them.

Layout::

    lake/manifest.json        the committed state: files, ingest watermark, next file number
    lake/events/seg-*.parquet  events, one row each, in :data:`features.events.LAKE_SCHEMA`
    lake/keys/seg-*.keys.npy   per events file: key fingerprints and content hashes
    lake/keys/seg-*.users.npz  per events file: each row's user number
    lake/users/users-*.arrow   the user registry: the user id of each number
    lake/tmp/                  files being written (never read; emptied by the next writer)
    lake/.lock                 writers (ingestion, compaction) hold it with fcntl.flock

Only files named in the manifest count. A writer writes each file in
``tmp/`` and renames it into place, fsyncs the files, their folder and the new
manifest (``lake_fsync``), then replaces the manifest, so a reader (who reads
the manifest first) never sees a half-written file and a crash at any point
leaves either the old state or the new one; files a crashed writer left
behind are removed by the next writer. Compaction replaces many small files by one and keeps the replaced
files for ``lake_retire_seconds`` so that readers holding an older manifest
can finish.

Writing lives in :mod:`features.lake_writer`; this module reads, and applies
the point-in-time resolution rule (:func:`resolve`).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from config.settings import Settings
from features.events import LAKE_SCHEMA, empty_lake_table

MANIFEST = "manifest.json"
EVENTS = "events"
KEYS = "keys"
USERS = "users"
TMP = "tmp"
LOCK = ".lock"


@dataclass(frozen=True)
class Segment:
    """One committed events file: its name, rows, and ingest time span (ISO 8601, UTC)."""

    name: str
    rows: int
    min_ingested_at: str
    max_ingested_at: str


@dataclass
class Manifest:
    """The committed state of the lake; replaced atomically by every commit."""

    segments: list[Segment] = field(default_factory=list)
    watermark: str | None = None
    next_segment: int = 1
    hash_id: str = ""
    retired: list[dict[str, Any]] = field(default_factory=list)
    users: int = 0
    """Users numbered by this commit (:mod:`features.lake_users`): the registry's first
    ``users`` ids; a registry holding fewer is stale and is not trusted."""
    users_id: str = ""
    """Names the registry's numbering; a rebuilt registry gets a new one."""

    @property
    def rows(self) -> int:
        return sum(segment.rows for segment in self.segments)

    def to_json(self) -> str:
        document = {**self.__dict__, "segments": [s.__dict__ for s in self.segments]}
        return json.dumps(document, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        data["segments"] = [Segment(**segment) for segment in data.get("segments", [])]
        return cls(**data)


def lake_dir(settings: Settings) -> Path:
    """The lake's folder in the data home (created on demand)."""
    path = settings.path("lake", MANIFEST).parent
    for sub in (EVENTS, KEYS, USERS, TMP):
        (path / sub).mkdir(parents=True, exist_ok=True)
    return path


def read_manifest(root: Path) -> Manifest:
    """The committed state; an empty lake when nothing was ever committed."""
    path = root / MANIFEST
    if not path.exists():
        return Manifest()
    return Manifest.from_json(path.read_text(encoding="utf-8"))


def write_atomic(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write beside, rename into place: all or nothing; ``durable`` also fsyncs file and folder.

    Derived files that can be rebuilt (key files) skip the fsyncs.
    """
    temp = temp_path(path.parent.parent if path.parent.name in (EVENTS, KEYS) else path.parent,
                     path.name)
    with open(temp, "wb") as handle:
        handle.write(data)
        if durable:
            handle.flush()
            os.fsync(handle.fileno())
    os.replace(temp, path)
    if durable:
        fsync_dir(path.parent)


def temp_path(root: Path, name: str) -> Path:
    """Where a file of the lake rooted at ``root`` is written before it is renamed."""
    return root / TMP / f"{os.getpid()}-{uuid.uuid4().hex}-{name}"


def fsync_dir(folder: Path) -> None:
    """fsync a folder (or a file) by path."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def lake_files(settings: Settings, *, watermark: datetime | None = None) -> list[Path]:
    """The committed events files, oldest first (what Spark or any other reader should read).

    With ``watermark``, only the files holding rows ingested by then (a file straddling
    it still has rows after it: readers filter ``ingested_at <= watermark`` themselves).
    """
    root = lake_dir(settings)
    return [root / EVENTS / segment.name
            for segment in segments_by(read_manifest(root), watermark=watermark)]


def segments_by(manifest: Manifest, *, watermark: datetime | None = None) -> list[Segment]:
    """The manifest's files holding rows ingested by ``watermark`` (all without one)."""
    if watermark is None:
        return manifest.segments
    _check_aware("watermark", watermark)
    return [s for s in manifest.segments if datetime.fromisoformat(s.min_ingested_at) <= watermark]


def watermark(settings: Settings) -> datetime | None:
    """The ingest watermark: the latest ``ingested_at`` committed; None for an empty lake.

    Every event committed later has a strictly later ``ingested_at``, so reading with
    ``watermark=W`` gives the same rows whatever is ingested afterwards.
    """
    mark = read_manifest(lake_dir(settings)).watermark
    return datetime.fromisoformat(mark) if mark else None


def empty_events() -> pl.LazyFrame:
    """A lazy frame with the lake's columns and no rows."""
    frame = pl.from_arrow(empty_lake_table())
    assert isinstance(frame, pl.DataFrame)
    return frame.lazy()


def scan_stored(settings: Settings, *, watermark: datetime | None = None) -> pl.LazyFrame:
    """Every stored row as it was written: originals, corrections and voids alike.

    With ``watermark``, files ingested entirely after it are not even opened (the
    rows of a file straddling it are filtered by :func:`resolve`).
    """
    files = lake_files(settings, watermark=watermark)
    if not files:
        return empty_events()
    return pl.scan_parquet([str(path) for path in files])


def scan_events(settings: Settings, *, as_known_at: datetime | None = None,
                watermark: datetime | None = None) -> pl.LazyFrame:
    """The events as known at ``as_known_at``, reading up to ingest ``watermark``.

    Applies :func:`resolve` to the stored rows; a feature snapshot as of D adds
    ``event_time < D`` itself. Both times must be timezone-aware.
    """
    return resolve(scan_stored(settings, watermark=watermark), as_known_at=as_known_at,
                   watermark=watermark)


def resolve(events: pl.LazyFrame, *, as_known_at: datetime | None = None,
            watermark: datetime | None = None, carry: Sequence[str] = ()) -> pl.LazyFrame:
    """The point-in-time rule: one row per event as known at T with watermark W.

    Keep rows with ``known_at <= T`` and ``ingested_at <= W``; of the rows of one
    event (same ``source`` and ``coalesce(corrects, event_id)``) keep the one with
    the latest ``known_at``, ties broken by the latest ``ingested_at``, then by a
    correction over the original, then by the larger ``event_id``; drop it if it is
    a void. The surviving row may be a correction: its ``event_id`` is the
    correction's and ``corrects`` names the original. ``carry``: columns of the rows,
    beyond the lake's, that the surviving rows keep.
    """
    _check_aware("as_known_at", as_known_at)
    _check_aware("watermark", watermark)
    if watermark is not None:
        events = events.filter(pl.col("ingested_at") <= watermark)
    if as_known_at is not None:
        events = events.filter(pl.col("known_at") <= as_known_at)
    target = pl.coalesce("corrects", "event_id").alias("__target")
    marked = events.with_columns(target).with_columns(
        pl.len().over("source", "__target").alias("__versions"))
    single = marked.filter(pl.col("__versions") == 1)
    order = [pl.col("known_at"), pl.col("ingested_at"), pl.col("corrects").is_not_null(),
             pl.col("event_id")]
    latest = (marked.filter(pl.col("__versions") > 1)  # one sort, not one per column and event
              .sort("source", "__target", *order)
              .unique(["source", "__target"], keep="last", maintain_order=True))
    columns = [*LAKE_SCHEMA.names, *carry, "__target", "__versions"]
    both = pl.concat([single.select(columns), latest.select(columns)])
    return both.filter(~pl.col("voided").fill_null(False)).select(*LAKE_SCHEMA.names, *carry)


def _check_aware(name: str, value: datetime | None) -> None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
