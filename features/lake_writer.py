"""Writing the event lake: deduplicated, atomic appends, and compaction.

A :class:`LakeWriter` holds the lake's lock (``fcntl.flock`` on ``lake/.lock``)
from open to close, so two ingest processes never both store a key: the
second waits, then sees the first one's keys. Everything added is written to
files beside their final names and becomes visible only at :meth:`commit`,
in one manifest replacement; closing without committing stores nothing. All
rows committed together share one ``ingested_at``, strictly later than the
previous watermark.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from config.settings import Settings
from features.events import LAKE_SCHEMA, UTC_TIMESTAMP
from features.ingest_errors import EventConflict, RowProblem
from features.lake import (
    EVENTS,
    KEYS,
    LOCK,
    MANIFEST,
    TMP,
    Manifest,
    Segment,
    fsync_dir,
    lake_dir,
    read_manifest,
    temp_path,
    write_atomic,
)
from features.lake_clusters import write_clustered
from features.lake_keys import (
    CONTENT_COLUMNS,
    HASH_ID,
    Fingerprints,
    KeyIndex,
    fingerprint,
    forget_known_keys,
    key_path,
    known_keys,
    load_key_file,
)
from features.lake_users import (
    UserRegistry,
    merge_registry,
    numbers_path,
    registry_of,
    remove_uncommitted_users,
    save_numbers,
)

logger = logging.getLogger(__name__)



@dataclass
class _Pending:
    name: str
    temp: Path
    rows: int
    prints: Fingerprints
    users: np.ndarray


@dataclass
class AddResult:
    """What one :meth:`LakeWriter.add` did: rows new to the lake, and duplicates skipped."""

    stored: int
    duplicates: int


@dataclass
class LakeWriter:
    """Appends staged tables to the lake under its lock; nothing counts before :meth:`commit`."""

    settings: Settings
    root: Path = field(init=False)
    ingested_at: datetime = field(init=False)
    _pending: list[_Pending] = field(default_factory=list, init=False)
    _pending_keys: KeyIndex = field(default_factory=KeyIndex, init=False)
    _manifest: Manifest = field(default_factory=Manifest, init=False)
    _index: KeyIndex = field(default_factory=KeyIndex, init=False)
    _users: UserRegistry | None = field(default=None, init=False)
    _lock_fd: int = field(default=-1, init=False)

    def __enter__(self) -> LakeWriter:
        self.root = lake_dir(self.settings)
        self._lock_fd = os.open(self.root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            self._manifest = read_manifest(self.root)
            remove_orphans(self.root, self._manifest)
            self._index = known_keys(self.root, self._manifest)
            self._users, self._manifest = registry_of(self.root, self._manifest)
            self.ingested_at = _next_ingest_time(self._manifest.watermark)
        except BaseException:
            self._unlock()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        for pending in self._pending:
            pending.temp.unlink(missing_ok=True)
        self._unlock()

    def add(self, staged: pa.Table, *, first_index: int = 0,
            frame: pl.DataFrame | None = None) -> AddResult:
        """Stage rows new to the lake; duplicates are skipped, a changed event is a conflict.

        ``first_index`` is the position of the table's first row in the caller's input,
        so a conflict names the caller's row; ``frame``, when given, is the same rows
        in Polars (saves a conversion for hashing).
        """
        prints = fingerprint(staged if frame is None else frame, CONTENT_COLUMNS)
        order = np.argsort(prints.h1, kind="stable")
        ordered = prints.take(order)
        keep = _first_of_each_key(prints, ordered, first_index, staged)
        found, stored_content = self._index.lookup(ordered)
        found_pending, pending_content = self._pending_keys.lookup(ordered)
        stored_content = np.where(found, stored_content, pending_content)
        found |= found_pending
        changed = np.flatnonzero(found & (stored_content != ordered.content))
        if len(changed):
            raise _conflict(staged, np.sort(order[changed]), first_index,
                            "already stored with different content")
        new_sorted = keep[order] & ~found
        new_rows = np.sort(order[new_sorted])
        if len(new_rows) == staged.num_rows:
            self._write(staged, ordered)
        elif len(new_rows):
            self._write(staged.take(pa.array(new_rows)), ordered.take(np.flatnonzero(new_sorted)))
        return AddResult(stored=len(new_rows), duplicates=staged.num_rows - len(new_rows))

    def commit(self) -> Manifest:
        """Make every added row visible at once; returns the new manifest.

        Files are renamed into place, then the new files, their folder and the new
        manifest are fsynced together (in parallel: the disk can serve them in one
        journal commit), and only then does the manifest replace the old one.
        """
        if not self._pending:
            return self._manifest
        for pending in self._pending:
            pending.prints.save(key_path(self.root, pending.name))
            save_numbers(self.root, pending.name, pending.users, pending.temp,
                         self.users.numbering)
            os.replace(pending.temp, self.root / EVENTS / pending.name)
        self.users.save(self.root)  # before the manifest that needs it
        stamp = self.ingested_at.isoformat()
        segments = [Segment(p.name, p.rows, stamp, stamp) for p in self._pending]
        manifest = replace(self._manifest, segments=[*self._manifest.segments, *segments],
                           watermark=stamp, hash_id=HASH_ID, users=self.users.count,
                           users_id=self.users.numbering)
        temp = temp_path(self.root, MANIFEST)
        temp.write_bytes(manifest.to_json().encode())
        if self.settings.lake_fsync:
            fsync_all([*(self.root / EVENTS / p.name for p in self._pending),
                       self.root / EVENTS, temp])
        os.replace(temp, self.root / MANIFEST)
        if self.settings.lake_fsync:
            fsync_dir(self.root)
        for pending in self._pending:
            self._index.add(pending.name, pending.prints, presorted=True)
        logger.info("lake commit: %d files, %d rows, watermark %s", len(segments),
                    sum(s.rows for s in segments), stamp)
        self._manifest, self._pending = manifest, []
        return manifest

    def _write(self, rows: pa.Table, prints: Fingerprints) -> None:
        name = segment_name(self._manifest.next_segment)
        self._manifest = replace(self._manifest, next_segment=self._manifest.next_segment + 1)
        temp = temp_path(self.root, name)
        order = write_parquet(with_platform_columns(rows, self.ingested_at), temp, self.settings)
        users = self.users.number(pl.from_arrow(rows.column("user_id")))[order]  # file order
        self._pending.append(_Pending(name, temp, rows.num_rows, prints, users))
        self._pending_keys.add(name, prints, presorted=True)

    @property
    def users(self) -> UserRegistry:
        """The lake's user registry (numbers for every user stored)."""
        assert self._users is not None, "the writer is not open"
        return self._users

    def _unlock(self) -> None:
        if self._lock_fd >= 0:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = -1


def with_platform_columns(staged: pa.Table, ingested_at: datetime) -> pa.Table:
    """Add ``ingested_at``, ``known_at`` (report time, never after ingestion) and ``days_late``."""
    ingested = pa.array(np.full(staged.num_rows, _micros(ingested_at), dtype="int64")).cast(
        UTC_TIMESTAMP)
    reported = staged.column("reported_at")
    known = pc.if_else(pc.fill_null(pc.less_equal(reported, ingested), False), reported, ingested)
    late = pc.days_between(staged.column("due_date"), staged.column("paid_date"))
    days_late = pc.max_element_wise(late, pa.scalar(0, late.type), skip_nulls=False)
    days_late = days_late.cast(pa.int32())
    added = {"ingested_at": ingested, "known_at": known, "days_late": days_late}
    columns = [added[f.name] if f.name in added else staged.column(f.name) for f in LAKE_SCHEMA]
    return pa.Table.from_arrays(columns, schema=LAKE_SCHEMA)


def write_parquet(table: pa.Table, path: Path, settings: Settings) -> np.ndarray:
    """Write one lake file, kind by kind (the commit fsyncs it after renaming it into
    place); returns the table's row that each row of the file is."""
    return write_clustered([table], path, compression=lake_compression(settings))


def lake_compression(settings: Settings) -> str | None:
    """The Parquet codec of lake files (None: uncompressed)."""
    return None if settings.lake_compression == "none" else settings.lake_compression


def fsync_all(paths: list[Path]) -> None:
    """fsync files and folders concurrently (fsync releases the GIL); all must succeed."""
    with ThreadPoolExecutor(max_workers=min(8, len(paths))) as pool:
        list(pool.map(fsync_dir, paths))


def remove_orphans(root: Path, manifest: Manifest, *, thorough: bool = False) -> None:
    """Delete what a crashed writer left, without listing the (large) events folder.

    Called only under the lock, so no writer is in flight: every file in ``tmp/`` is
    unfinished, and a crashed writer's renamed files are numbered from the manifest's
    ``next_segment`` on. ``thorough`` (compaction) also lists every folder and deletes
    any file the manifest does not name, retired files still in their grace period aside.
    """
    for path in (root / TMP).iterdir():
        path.unlink(missing_ok=True)
    remove_uncommitted_users(root, manifest, thorough=thorough)
    number = manifest.next_segment
    while any(path.exists() for path in _files_of(root, segment_name(number))):
        logger.warning("removing uncommitted lake file %s", segment_name(number))
        for path in _files_of(root, segment_name(number)):
            path.unlink(missing_ok=True)
        number += 1
    if not thorough:
        return
    live = {segment.name for segment in manifest.segments}
    live |= {entry["name"] for entry in manifest.retired}
    live = {path.name for name in live for path in _files_of(root, name)}
    for folder in (root / EVENTS, root / KEYS):
        for path in folder.iterdir():
            if path.name not in live:
                logger.warning("removing stray lake file %s", path.name)
                path.unlink(missing_ok=True)


def _files_of(root: Path, name: str) -> tuple[Path, Path, Path]:
    """An events file and the files derived from it (its keys, its users' numbers)."""
    return root / EVENTS / name, key_path(root, name), numbers_path(root, name)


def segment_name(number: int) -> str:
    return f"seg-{number:012d}.parquet"


def _first_of_each_key(prints: Fingerprints, ordered: Fingerprints, first_index: int,
                       staged: pa.Table) -> np.ndarray:
    """Mask of rows to keep: the first of each key; a key repeated with other content conflicts.

    ``ordered`` is ``prints`` sorted by ``h1``: when no two neighbours share it (the usual
    case) every key is there once and no further work is needed.
    """
    if not (ordered.h1[1:] == ordered.h1[:-1]).any():
        return np.ones(len(prints), dtype=bool)
    order = np.lexsort((prints.content, prints.h2, prints.h1))
    h1, h2, content = prints.h1[order], prints.h2[order], prints.content[order]
    new_key = np.ones(len(order), dtype=bool)
    new_key[1:] = (h1[1:] != h1[:-1]) | (h2[1:] != h2[:-1])
    starts = np.maximum.accumulate(np.where(new_key, np.arange(len(order)), 0))
    differs = content != content[starts]
    if differs.any():
        raise _conflict(staged, np.sort(order[differs]), first_index,
                        "repeated in this input with different content")
    keep = np.zeros(len(order), dtype=bool)
    keep[order[new_key]] = True
    return keep


def _conflict(staged: pa.Table, rows: np.ndarray, first_index: int, reason: str) -> EventConflict:
    sample = rows[:20]
    ids = staged.column("event_id").take(pa.array(sample)).to_pylist()
    sources = staged.column("source").take(pa.array(sample)).to_pylist()
    problems = [RowProblem(int(row) + first_index, "event_id", f"{src}/{eid} {reason}")
                for row, src, eid in zip(sample, sources, ids, strict=True)]
    return EventConflict(f"{len(rows)} event(s) conflict with what is stored", problems)


def _next_ingest_time(previous: str | None) -> datetime:
    now = datetime.now(UTC)
    if previous is None:
        return now
    return max(now, datetime.fromisoformat(previous) + timedelta(microseconds=1))


def _micros(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


@dataclass(frozen=True)
class CompactResult:
    """What compaction did: files before and after, and retired files deleted."""

    files_before: int
    files_after: int
    rows: int
    deleted: int


def compact(settings: Settings) -> CompactResult:
    """Merge runs of small lake files into files of about ``lake_compact_target_rows`` rows.

    The merged file holds exactly the rows of the files it replaces, so every query
    returns what it returned before; the swap is one manifest replacement. Replaced
    files stay ``lake_retire_seconds`` for readers of the older manifest, then go.
    """
    with LakeWriter(settings) as writer:
        return _compact(writer, settings.lake_compact_target_rows, settings.lake_retire_seconds)


def _compact(writer: LakeWriter, target: int, grace: float) -> CompactResult:
    root, manifest = writer.root, writer._manifest
    remove_orphans(root, manifest, thorough=True)
    due, kept = _retire_due(manifest.retired, grace)
    segments: list[Segment] = []
    retired = list(kept)
    next_segment = manifest.next_segment
    for group in _bins(manifest.segments, target):
        if len(group) == 1:
            segments.append(group[0])
            continue
        name = segment_name(next_segment)
        next_segment += 1
        segments.append(_merge(root, group, name, writer, manifest.hash_id))
        retired.extend({"name": s.name, "at": time.time()} for s in group)
    if grace == 0:
        due += [entry["name"] for entry in retired]
        retired = []
    new = replace(manifest, segments=segments, retired=retired, next_segment=next_segment,
                  hash_id=HASH_ID)
    if new != manifest:
        write_atomic(root / MANIFEST, new.to_json().encode())
    merge_registry(root, new)
    for name in due:
        for path in _files_of(root, name):
            path.unlink(missing_ok=True)
    forget_known_keys(root)
    writer._manifest = new
    logger.info("compacted %d files into %d", len(manifest.segments), len(segments))
    return CompactResult(len(manifest.segments), len(segments), new.rows, len(due))


def _bins(segments: list[Segment], target: int) -> list[list[Segment]]:
    """Consecutive groups of small files whose rows add up to at most ``target``."""
    groups: list[list[Segment]] = []
    current: list[Segment] = []
    for segment in segments:
        if segment.rows >= target // 2:
            groups.extend([current, [segment]] if current else [[segment]])
            current = []
        elif sum(s.rows for s in current) + segment.rows > target:
            groups.append(current)
            current = [segment]
        else:
            current.append(segment)
    if current:
        groups.append(current)
    return [group for group in groups if group]


def _merge(root: Path, group: list[Segment], name: str, writer: LakeWriter,
           hash_id: str) -> Segment:
    temp = temp_path(root, name)
    tables = (pq.read_table(root / EVENTS / segment.name, schema=LAKE_SCHEMA) for segment in group)
    write_clustered(tables, temp, compression=lake_compression(writer.settings))
    fsync_dir(temp)
    Fingerprints.concat([load_key_file(root, s, hash_id) for s in group]).save(key_path(root, name))
    numbers = writer.users.number_file(temp)  # no user is new
    save_numbers(root, name, numbers, temp, writer.users.numbering)
    os.replace(temp, root / EVENTS / name)
    fsync_dir(root / EVENTS)
    return Segment(name, sum(s.rows for s in group), min(s.min_ingested_at for s in group),
                   max(s.max_ingested_at for s in group))


def _retire_due(retired: list[dict[str, Any]],
                grace: float) -> tuple[list[str], list[dict[str, Any]]]:
    now = time.time()
    due = [entry["name"] for entry in retired if now - float(entry["at"]) >= grace]
    kept = [entry for entry in retired if now - float(entry["at"]) < grace]
    return due, kept
