"""The offline feature store: one immutable snapshot per (as-of date D, knowledge time T).

A snapshot is a folder under ``<home>/features/snapshots`` holding
``features.parquet`` (one row per user known in the lake by T, one Float64
column per feature) and ``manifest.json`` (definitions hash, row count, the
ingest watermark W it read up to, D, T, build time, engine). It is written in a
temporary folder beside its final place and renamed into place, so a reader
sees a whole snapshot or none.

Point in time: the snapshot reads the lake as known at T (``known_at <= T``) up
to the watermark W taken when the build starts, and only events with
``event_time < D``. Once written, a snapshot is never rebuilt for the same
definitions: asking again for (D, T) returns it unchanged, whatever arrived or
was corrected since. It is replaced only when the feature definitions change
(the old values would not mean what the catalogue says).
"""

from __future__ import annotations

import gc
import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
import polars as pl
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict

from config.feature_definitions import FeatureSet, load_feature_definitions
from config.settings import Settings
from features import lake
from features.dense_reduce import warm_up
from features.engine_polars import (
    BASE_COLUMNS,
    as_of_instant,
    enum_casts,
    feature_frame,
    input_columns,
    stream_features,
)
from features.event_parts import KIND, KindRuns, Layout, category_enums
from features.feature_stream import FeatureStream
from features.lake_clusters import Run, kind_runs
from features.lake_users import LakeUsers
from features.plan import Plan, compile_plan
from features.user_numbers import GivenNumbers

logger = logging.getLogger(__name__)

SNAPSHOTS = ("features", "snapshots")
DATA_FILE = "features.parquet"
MANIFEST_FILE = "manifest.json"
STAGES = ("read", "compute", "write")
RESOLVE_COLUMNS = ("source", "corrects", "known_at", "ingested_at", "voided")
TOUCHED = "_touched"
KNOWN = "_known"
RANK = "_rank"
SNAPSHOT_COMPRESSION = "lz4"
"""Fast to write and to read back (training and scoring read every snapshot whole)."""
READ_THREADS = 2
"""Lake pieces read at once (see :func:`_resolved_pieces`)."""
S = TypeVar("S")
T = TypeVar("T")
Engine = Literal["polars", "spark"]
Progress = Callable[[str], None]


class FeatureStoreError(ValueError):
    """A request the store cannot answer (no such snapshot, an empty lake, bad times)."""


class SnapshotManifest(BaseModel):
    model_config = ConfigDict(frozen=True)

    as_of: date
    as_known_at: datetime
    event_watermark: datetime | None
    definitions_hash: str
    row_count: int
    features: list[str]
    engine: str
    built_at: datetime
    build_seconds: float
    path: str


def build_snapshot(settings: Settings, *, as_of: date, as_known_at: datetime | None = None,
                   engine: Engine | None = None, progress: Progress | None = None,
                   definitions: FeatureSet | None = None) -> SnapshotManifest:
    """The snapshot as of D as known at T (default D), built once and then kept as it is."""
    definitions = definitions or load_feature_definitions()
    known_at = _known_at(as_of, as_known_at)
    engine = engine or settings.features_default_engine
    if engine not in ("polars", "spark"):
        raise FeatureStoreError(f"unknown engine {engine!r} (polars or spark)")
    target = snapshot_dir(settings, as_of, known_at)
    existing = _read_manifest(target)
    if existing is not None and existing.definitions_hash == definitions.hash:
        logger.info("snapshot %s exists; kept as built", target.name)
        return existing
    mark = lake.watermark(settings)
    if mark is None:
        raise FeatureStoreError("the event lake is empty: ingest events before building features")
    started = time.perf_counter()
    with _collector_paused():
        frame = _compute(settings, engine, as_of=as_of, as_known_at=known_at, watermark=mark,
                         definitions=definitions, progress=progress)
        _stage(progress, "write")

        def manifest_of(rows: int) -> SnapshotManifest:
            return SnapshotManifest(
                as_of=as_of, as_known_at=known_at, event_watermark=mark,
                definitions_hash=definitions.hash, row_count=rows, features=definitions.names,
                engine=engine, built_at=datetime.now(UTC),
                build_seconds=round(time.perf_counter() - started, 3), path=str(target),
            )

        return _write_snapshot(target, frame, manifest_of, replacing=existing is not None)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector off while the lake is reduced and the features written:
    a build allocates millions of short-lived objects (expressions, frames, futures) but
    no cycles worth collecting, and each collection walks every live object (measured:
    about 2% of a build's CPU time)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def compute_features(events: pl.LazyFrame, *, as_of: date,
                     definitions: FeatureSet | None = None) -> pl.DataFrame:
    """Features as of D from resolved events (the embedded engine, no files involved)."""
    return feature_frame(events, as_of=as_of, plan=compile_plan(definitions))


def _compute(settings: Settings, engine: Engine, *, as_of: date, as_known_at: datetime,
             watermark: datetime, definitions: FeatureSet, progress: Progress | None,
             ) -> pl.LazyFrame | pl.DataFrame:
    plan = compile_plan(definitions)
    _stage(progress, "read")
    if engine == "spark":
        from features.engine_spark import spark_features

        _stage(progress, "compute")
        return spark_features(settings, as_of=as_of, as_known_at=as_known_at,
                              watermark=watermark, plan=plan)
    warming = threading.Thread(target=warm_up, name="warm-up", daemon=True)
    warming.start()
    root = lake.lake_dir(settings)
    lake_users = LakeUsers.read(root, lake.read_manifest(root))

    def feed(stream: FeatureStream) -> None:
        ranked = lake_users if isinstance(stream.users, GivenNumbers) else None
        stream.add_all(_resolved_pieces(
            settings, as_known_at=as_known_at, watermark=watermark, plan=plan,
            then=stream.prepare, workers=READ_THREADS, by_kind=True, users=ranked),
            first=warming.join)
        _stage(progress, "compute")

    return stream_features(plan, as_of, feed, lake_users=lake_users)


def _in_order(work: Callable[[S], T], items: Iterable[S], workers: int) -> Iterator[T]:
    """``work`` of each item, in the items' order, done on up to ``workers`` threads at once
    (at most that many results wait, which bounds the memory of pieces read ahead)."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque[Future[T]] = deque()
        for item in items:
            pending.append(pool.submit(work, item))
            if len(pending) >= workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def read_events(settings: Settings, *, as_known_at: datetime, watermark: datetime,
                plan: Plan) -> pl.DataFrame:
    """The lake as known at T (watermark W), only the columns the plan reads, in memory.

    The same rows as :func:`features.lake.scan_events`, categories as Enums (the
    feature build itself hands the same pieces to the engine without gathering them).
    """
    pieces = [piece if keep is None else piece.filter(keep)
              for piece, keep in _resolved_pieces(settings, as_known_at=as_known_at, then=_pair,
                                                  watermark=watermark, plan=plan)]
    if not pieces:
        empty = lake.empty_events()
        return empty.select(input_columns(empty, plan)).collect()
    columns = pieces[0].columns
    return pl.concat([piece.select(columns).with_columns(enum_casts(columns))
                      for piece in pieces], how="vertical")


def _pair(piece: pl.DataFrame | KindRuns, keep: pl.Series | None,
          ranks: np.ndarray | None) -> tuple[pl.DataFrame, pl.Series | None]:
    assert isinstance(piece, pl.DataFrame)  # read whole: not by kind
    return piece, keep


def _resolved_pieces(settings: Settings, *, as_known_at: datetime, watermark: datetime,
                     plan: Plan, then: Callable[[pl.DataFrame | KindRuns, pl.Series | None,
                                                 np.ndarray | None], T],
                     workers: int = 1, by_kind: bool = False,
                     users: LakeUsers | None = None) -> Iterator[T]:
    """The lake as known at T (watermark W), piece by piece: ``then(rows, keep, ranks)``
    of each, ``ranks`` the rank of each row's user among ``users`` (None without).

    Only the events that share an id with a correction known by T go through
    :func:`features.lake.resolve` (the one definition of the rule; they come last,
    resolved, with ``keep`` None); every other event is the only version of itself,
    which the rule keeps as it is (unless it is a void). Each file is read once, the
    columns the plan reads plus those the rule needs (``features_chunk_rows`` rows at a
    time, which bounds the memory of the columns read), with the mask of its rows that
    stand alone. Pieces are read, and handed to ``then``, on ``workers`` threads (Polars
    releases the GIL), and come out in the lake's order. With ``by_kind``, a piece of a
    file stored kind by kind comes as :class:`KindRuns` (each kind's own columns read
    from its row groups only).
    """
    root = lake.lake_dir(settings)
    segments = {str(root / lake.EVENTS / segment.name): segment  # one manifest for both
                for segment in lake.segments_by(lake.read_manifest(root), watermark=watermark)}
    files = list(segments)
    if not files:
        return
    reading = _LakeReading.of(files, as_known_at=as_known_at, watermark=watermark, plan=plan,
                              by_kind=by_kind, numbered=users is not None)
    chunk_rows = settings.features_chunk_rows

    def work(where: tuple[str, int]) -> tuple[T, pl.DataFrame | None]:
        path, offset = where

        def ranks_of(rows: pl.LazyFrame, height: int) -> np.ndarray:
            assert users is not None
            found = users.file_ranks(root, segments[path], offset, height)
            if found is None:  # a file's numbers missing or stale: its users looked up
                found = users.ranks_of(rows.select("user_id").collect().to_series())
            return found

        piece, keep, touched, ranks = reading.read(
            path, offset, rows=chunk_rows, ranks_of=None if users is None else ranks_of)
        return then(piece, keep, ranks), touched

    versions = []
    for result, touched in _in_order(work, _slices(files, chunk_rows), workers):
        if touched is not None:
            versions.append(touched)
        yield result
    if versions:
        resolved = reading.resolve(versions, as_known_at=as_known_at, watermark=watermark)
        ranks = None
        if users is not None:
            ranks = resolved.get_column(RANK).to_numpy()
            resolved = resolved.drop(RANK)
        yield then(resolved, None, ranks)


@dataclass(frozen=True)
class _LakeReading:
    """How pieces of the lake are read: the columns, and which rows stand alone.

    With ``own`` (the columns only one kind's aggregates read, per kind), a file stored
    kind by kind is read as :class:`KindRuns`: the other columns for every row, each
    kind's own columns from its row groups only; other files are read whole.
    """

    columns: list[str]
    keys: list[str]
    known: pl.Expr
    touched: pl.Expr
    own: dict[str, list[str]]
    runs: dict[str, list[Run] | None]

    numbered: bool = False

    @classmethod
    def of(cls, files: Sequence[str], *, as_known_at: datetime, watermark: datetime,
           plan: Plan, by_kind: bool, numbered: bool = False) -> _LakeReading:
        columns = input_columns(pl.scan_parquet(files[0]), plan)
        known = (pl.col("ingested_at") <= watermark) & (pl.col("known_at") <= as_known_at)
        corrected = (pl.scan_parquet(files).filter(known & pl.col("corrects").is_not_null())
                     .select(pl.col("corrects").unique()).collect().to_series())
        touched = pl.col("event_id").is_in(corrected.implode()) | pl.col("corrects").is_not_null()
        keys = [key for key in RESOLVE_COLUMNS if key not in columns]
        own = _own_columns(plan, columns, keys, numbered=numbered) if by_kind else {}
        return cls(columns=columns, keys=keys, known=known, touched=touched, own=own,
                   runs={path: kind_runs(path) if own else None for path in files},
                   numbered=numbered)

    def read(self, path: str, offset: int, *, rows: int,
             ranks_of: Callable[[pl.LazyFrame, int], np.ndarray] | None = None,
             ) -> tuple[pl.DataFrame | KindRuns, pl.Series, pl.DataFrame | None,
                        np.ndarray | None]:
        """A piece's columns, the mask of its rows that stand alone, its known rows that a
        correction touches (None when there are none), and its rows' user ranks when
        ``ranks_of`` (given the file's scan and the piece's first row and row count)
        tells them: the touched rows then carry them, as ``RANK``."""
        runs = self.runs.get(path)
        claimed = {name for names in self.own.values() for name in names} if runs else set()
        if runs:
            claimed.add(KIND)  # told by the runs: not read, nor cast from strings
        scan = pl.scan_parquet(path)
        frame = scan.slice(offset, rows).select(
            *(_read_as(name) for name in self.columns if name not in claimed), *self.keys,
            self.known.alias(KNOWN), self.touched.alias(TOUCHED),
        ).collect()
        ranks = None
        if ranks_of is not None:
            ranks = ranks_of(scan.slice(offset, rows), frame.height)
            frame = frame.with_columns(pl.Series(RANK, ranks))
        piece: pl.DataFrame | KindRuns = frame
        if runs:
            piece = self._kind_runs(scan, frame, runs, offset)
        is_known = frame.get_column(KNOWN)
        touched_rows = frame.get_column(TOUCHED) & is_known
        touched = None
        if touched_rows.any():
            touched = (piece.gather(touched_rows, self._schema()) if isinstance(piece, KindRuns)
                       else frame.filter(touched_rows).drop(TOUCHED, KNOWN))
        alone = is_known & ~touched_rows & ~frame.get_column("voided").fill_null(False)
        if isinstance(piece, KindRuns):
            kept = [name for name in piece.base.columns if name in self.columns]
            return replace(piece, base=piece.base.select(kept)), alone, touched, ranks
        return frame.select(self.columns), alone, touched, ranks

    def _kind_runs(self, scan: pl.LazyFrame, base: pl.DataFrame, runs: list[Run],
                   offset: int) -> KindRuns:
        """Each kind's range within the piece, its own columns read over that range, and
        the kind of every row (from the ranges)."""
        ranges = {}
        for run in runs:
            start, stop = max(run.start, offset), min(run.stop, offset + base.height)
            if start < stop:
                ranges[run.kind] = (start - offset, stop - offset)
        if KIND in self.columns:
            base = base.with_columns(_kind_column(ranges, base.height))
        own = {}
        for kind, names in self.own.items():
            start, stop = ranges.get(kind, (0, 0))
            own[kind] = (scan.slice(offset + start, stop - start)
                         .select(_read_as(name) for name in names).collect())
        return KindRuns(base, ranges, own)

    def _schema(self) -> pl.Schema:
        schema = _lake_schema()
        found = {name: category_enums().get(name, schema[name])
                 for name in (*self.columns, *self.keys)}
        return pl.Schema(found | ({RANK: pl.Int32} if self.numbered else {}))

    def resolve(self, versions: list[pl.DataFrame], *, as_known_at: datetime,
                watermark: datetime) -> pl.DataFrame:
        """The touched rows resolved by :func:`features.lake.resolve` (padded to the lake's
        full shape for it: only these few rows are)."""
        padding = [pl.lit(None, dtype=dtype).alias(name) for name, dtype in _lake_schema().items()
                   if name not in (*self.columns, *self.keys)]
        rows = pl.concat(versions, how="vertical").with_columns(padding).lazy()
        carried = [RANK] if self.numbered else []
        resolved = lake.resolve(rows, as_known_at=as_known_at, watermark=watermark,
                                carry=carried)
        return resolved.select(*self.columns, *carried).collect()


def _kind_column(ranges: dict[str, tuple[int, int]], height: int) -> pl.Series:
    """The kind of each row of a piece stored kind by kind, from its kinds' ranges."""
    enum = category_enums()[KIND]
    parts = [pl.select(pl.repeat(pl.lit(kind, enum), stop - start)).to_series()
             for kind, (start, stop) in sorted(ranges.items(), key=lambda item: item[1])]
    assert sum(len(part) for part in parts) == height, "a clustered piece's runs miss rows"
    return pl.concat(parts).alias(KIND) if parts else pl.Series(KIND, [], enum)


def _read_as(name: str) -> pl.Expr:
    """A lake column as the build reads it: categories cast to Enums as they are read
    (from the file's dictionary pages: half what casting them afterwards costs)."""
    enum = category_enums().get(name)
    return pl.col(name) if enum is None else pl.col(name).cast(enum)


def _own_columns(plan: Plan, columns: list[str], keys: list[str], *,
                 numbered: bool) -> dict[str, list[str]]:
    """For each kind, the lake columns only that kind's part reads: every column the spine,
    the rules or the base need stays with all rows. With users ``numbered`` by the lake,
    ``user_id`` is read only with the kinds that read it (contacts)."""
    layout = Layout.of(plan)
    shared = {*BASE_COLUMNS, *layout.spine, *keys, *RESOLVE_COLUMNS} - (
        {"user_id"} if numbered else set())
    return {kind: [name for name in columns if name in wanted and name not in shared]
            for kind, wanted in layout.kinds.items()}


def _slices(files: Sequence[str], rows: int) -> Iterator[tuple[str, int]]:
    """(file, first row) of each slice of at most ``rows`` rows."""
    for path in files:
        height = pl.scan_parquet(path).select(pl.len()).collect().item()
        for offset in range(0, max(height, 1), rows):
            yield path, offset


@cache
def _lake_schema() -> pl.Schema:
    return lake.empty_events().collect_schema()


def load_snapshot(settings: Settings, as_of: date,
                  as_known_at: datetime | None = None) -> pl.DataFrame:
    """The snapshot's features (user_id and one column per feature)."""
    target = snapshot_dir(settings, as_of, _known_at(as_of, as_known_at))
    if _read_manifest(target) is None:
        raise FeatureStoreError(f"no feature snapshot as of {as_of.isoformat()}"
                                + ("" if as_known_at is None else f" known at {as_known_at}")
                                + ": run `altcredit features build` first")
    return pl.read_parquet(target / DATA_FILE)


def list_snapshots(settings: Settings) -> list[SnapshotManifest]:
    """Every snapshot, oldest as-of date first (then by knowledge time)."""
    root = settings.path(*SNAPSHOTS)
    if not root.is_dir():
        return []
    manifests = [_read_manifest(folder) for folder in root.iterdir() if folder.is_dir()]
    found = [manifest for manifest in manifests if manifest is not None]
    return sorted(found, key=lambda manifest: (manifest.as_of, manifest.as_known_at))


def latest_snapshot(settings: Settings) -> SnapshotManifest | None:
    """The snapshot with the latest as-of date, known as of that date (the default knowledge)."""
    defaults = [m for m in list_snapshots(settings) if m.as_known_at == as_of_instant(m.as_of)]
    return defaults[-1] if defaults else None


def snapshot_dir(settings: Settings, as_of: date, as_known_at: datetime) -> Path:
    moment = as_known_at.astimezone(UTC)
    stamp = moment.strftime("%Y%m%dT%H%M%S") + (f".{moment:%f}" if moment.microsecond else "") + "Z"
    return settings.path(*SNAPSHOTS, f"asof-{as_of.isoformat()}_known-{stamp}")


def training_frame(settings: Settings, as_of_dates: Sequence[date],
                   labels: pl.DataFrame) -> pl.DataFrame:
    """Features as of each date joined with the labels (user_id, as_of, bad, ...).

    Each as-of date uses its own snapshot, known at that date (built when
    missing), so no row sees anything reported after its as-of date; labels
    for dates not asked for are ignored, and users without a label are left out.
    """
    missing = {"user_id", "as_of", "bad"} - set(labels.columns)
    if missing:
        raise FeatureStoreError(f"labels lack column(s): {', '.join(sorted(missing))}")
    if labels.schema["as_of"] != pl.Date:
        raise FeatureStoreError(f"labels.as_of must be a date, got {labels.schema['as_of']}")
    if not as_of_dates:
        raise FeatureStoreError("as_of_dates is empty")
    frames = []
    for as_of in sorted(set(as_of_dates)):
        build_snapshot(settings, as_of=as_of)
        frames.append(load_snapshot(settings, as_of).with_columns(pl.lit(as_of).alias("as_of")))
    features = pl.concat(frames, how="vertical")
    joined = features.join(labels, on=["user_id", "as_of"], how="inner")
    first = ["user_id", "as_of"]
    return joined.select(*first, pl.exclude(first)).sort("as_of", "user_id")


# -- files -------------------------------------------------------------------------


def _known_at(as_of: date, as_known_at: datetime | None) -> datetime:
    if as_known_at is None:
        return as_of_instant(as_of)
    if as_known_at.tzinfo is None or as_known_at.utcoffset() is None:
        raise FeatureStoreError(f"as_known_at must carry a time zone, got {as_known_at.isoformat()}")
    return as_known_at.astimezone(UTC)


def _stage(progress: Progress | None, name: str) -> None:
    logger.debug("feature build stage %s", name)
    if progress is not None:
        progress(name)


def _read_manifest(folder: Path) -> SnapshotManifest | None:
    path = folder / MANIFEST_FILE
    if not path.is_file():
        return None
    return SnapshotManifest.model_validate_json(path.read_text(encoding="utf-8"))


def _write_snapshot(target: Path, frame: pl.LazyFrame | pl.DataFrame,
                    manifest_of: Callable[[int], SnapshotManifest], *,
                    replacing: bool) -> SnapshotManifest:
    """Write beside, fsync, rename into place; a replaced snapshot is moved aside first.

    A lazy frame is streamed into the file (its features computed a slice of users at a
    time); the manifest, made once the data is written, counts the rows written.
    """
    scratch = target.with_name(f".tmp-{target.name}-{uuid.uuid4().hex[:8]}")
    scratch.mkdir(parents=True)
    try:
        data = scratch / DATA_FILE
        if isinstance(frame, pl.LazyFrame):
            frame.sink_parquet(data, compression=SNAPSHOT_COMPRESSION, statistics=True)
        else:
            frame.write_parquet(data, compression=SNAPSHOT_COMPRESSION, statistics=True)
        manifest = manifest_of(pq.read_metadata(data).num_rows)
        (scratch / MANIFEST_FILE).write_text(
            json.dumps(manifest.model_dump(mode="json"), indent=2, ensure_ascii=False),
            encoding="utf-8")
        for name in (DATA_FILE, MANIFEST_FILE):
            _fsync(scratch / name)
        if replacing:
            retired = target.with_name(f".old-{target.name}-{uuid.uuid4().hex[:8]}")
            os.replace(target, retired)
            logger.warning("feature definitions changed: replacing snapshot %s", target.name)
            os.replace(scratch, target)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            _move_into_place(scratch, target)
        _fsync(target.parent)
        return manifest
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)


def _move_into_place(scratch: Path, target: Path) -> None:
    try:
        os.replace(scratch, target)
    except OSError:
        if not (target / MANIFEST_FILE).is_file():
            raise
        logger.info("snapshot %s was built concurrently; keeping that one", target.name)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
