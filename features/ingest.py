"""The ingestion service: batches of records (the API) and event files (the CLI) into the lake.

Both paths are all-or-nothing and idempotent by ``(source, event_id)``: a
refused input stores nothing, and sending what is already stored stores
nothing new. The answers are :class:`IngestResult` or an
:class:`~features.ingest_errors.IngestError` whose ``status`` (400, 409, 413)
and ``problems`` the HTTP layer turns into a problem document.

Records are validated one by one with the pydantic taxonomy
(:mod:`features.records`); files are validated column-wise with Polars
(:mod:`features.validate`), a chunk of ``ingest_chunk_rows`` rows at a time,
so a ten-million-row file never sits in memory at once. Every file given to
one call is stored in one commit, or not at all.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NoReturn

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from config.settings import Settings
from features.events import DISPUTE_PREFIX, INPUT_SCHEMA, RESERVED_ID_COLUMNS, RESERVED_ID_REASON
from features.ingest_errors import (
    BatchTooLarge,
    EventConflict,
    InvalidEvents,
    InvalidFile,
    RowProblem,
)
from features.lake_writer import AddResult, LakeWriter
from features.records import parse_records
from features.validate import Staged, stage_table

logger = logging.getLogger(__name__)

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv",
           ".jsonl": "jsonl", ".ndjson": "jsonl"}
"""File name suffix -> format read by :func:`ingest_files`."""

Progress = Callable[[Path, int, int | None], None]
"""Called after each chunk with the file, rows done in it, and its row count when known."""


@dataclass(frozen=True)
class IngestResult:
    """The outcome of one accepted batch or set of files.

    ``received`` and ``accepted`` are the same for a first send and any resend;
    ``stored`` counts rows new to the lake and ``duplicates`` the rows that were
    already there (or repeated in the input), so ``stored + duplicates == accepted``.
    """

    received: int
    accepted: int
    stored: int
    duplicates: int
    watermark: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ingest_records(settings: Settings, records: Sequence[Any], *,
                   source_override: str | None = None) -> IngestResult:
    """Validate and store one furnisher's batch of records, all or nothing.

    ``source_override`` is the furnisher the caller authenticated (the partner API
    passes the partner's name): a record without ``source`` gets it, a record naming
    another source is refused. Ids under the platform's reserved prefix
    (:data:`~features.events.DISPUTE_PREFIX`) are refused: only
    :func:`ingest_platform_records` writes them.
    """
    _check_batch(settings, records)
    records, problems = _apply_source(records, source_override)
    return _store_batch(settings, records, problems + _reserved_problems(records))


def ingest_platform_records(settings: Settings, records: Sequence[Any]) -> IngestResult:
    """Store the platform's own corrections (a dispute's void or restore), all or nothing.

    Validated and stored exactly as a furnisher's batch, except that their event ids
    may (and do) use the reserved prefix that :func:`ingest_records` refuses.
    """
    _check_batch(settings, records)
    return _store_batch(settings, list(records), [])


def _check_batch(settings: Settings, records: Sequence[Any]) -> None:
    if not isinstance(records, list | tuple):
        raise InvalidEvents("a batch must be a list of event records")
    if len(records) > settings.ingest_max_batch:
        raise BatchTooLarge(f"a batch holds at most {settings.ingest_max_batch} events, "
                            f"got {len(records)}")


def _store_batch(settings: Settings, records: list[Any], problems: list[RowProblem]) -> IngestResult:
    staged, invalid = parse_records(records)
    problems = sorted(problems + invalid, key=lambda p: p.index)
    if problems:
        bad = len({p.index for p in problems})
        raise InvalidEvents(f"{bad} of {len(records)} records are invalid; nothing was stored",
                            problems)
    if not records:
        return IngestResult(0, 0, 0, 0, None)
    with LakeWriter(settings) as writer:
        added = writer.add(staged, first_index=0)
        manifest = writer.commit()
    return IngestResult(len(records), len(records), added.stored, added.duplicates,
                        manifest.watermark)


def _reserved_problems(records: Sequence[Any]) -> list[RowProblem]:
    """A furnisher's record may not use the platform's reserved id prefix (it would forge a dispute)."""
    return [RowProblem(index, name, RESERVED_ID_REASON)
            for index, record in enumerate(records) if isinstance(record, dict)
            for name in RESERVED_ID_COLUMNS
            if isinstance(record.get(name), str) and record[name].startswith(DISPUTE_PREFIX)]


def _apply_source(records: Sequence[Any],
                  source: str | None) -> tuple[list[Any], list[RowProblem]]:
    if source is None:
        return list(records), []
    out: list[Any] = []
    problems = []
    for index, record in enumerate(records):
        if isinstance(record, dict) and record.get("source", source) != source:
            problems.append(RowProblem(index, "source", f"must be {source}, the authenticated "
                                                        "furnisher"))
        out.append({**record, "source": source} if isinstance(record, dict) else record)
    return out, problems


def ingest_files(settings: Settings, paths: Sequence[Path | str], *,
                 progress: Progress | None = None) -> IngestResult:
    """Validate and store event files (Parquet, CSV, JSON Lines) in one commit.

    A bad file is refused with its first bad rows (1-based row numbers, column,
    reason) and nothing of any file is stored.
    """
    files = [Path(path) for path in paths]
    if not files:
        raise InvalidEvents("no files given")
    for path in files:
        _check_file(path)
    received = stored = duplicates = 0
    with LakeWriter(settings) as writer:
        for path in files:
            done = 0
            total = _row_count(path)
            chunks = _chunks(path, settings.ingest_chunk_rows)
            for chunk in chunks:
                staged = stage_table(chunk, first_row=done + 1,
                                     max_problems=settings.ingest_max_problems)
                if staged.table is None:
                    _refuse(path, staged.problems, chunks, done + chunk.num_rows, settings)
                added = _add(writer, path, staged, done)
                done += chunk.num_rows
                stored, duplicates = stored + added.stored, duplicates + added.duplicates
                if progress is not None:
                    progress(path, done, total)
            received += done
        manifest = writer.commit()
    logger.info("ingested %d files: %d rows, %d stored, %d duplicates", len(files), received,
                stored, duplicates)
    return IngestResult(received, received, stored, duplicates, manifest.watermark)


def _add(writer: LakeWriter, path: Path, staged: Staged, done: int) -> AddResult:
    assert staged.table is not None
    try:
        return writer.add(staged.table, first_index=done + 1, frame=staged.frame)
    except EventConflict as exc:
        raise EventConflict(f"{path}: {exc.message}; nothing was stored", exc.problems) from None


def _refuse(path: Path, problems: list[RowProblem], rest: Iterator[pa.Table], done: int,
            settings: Settings) -> NoReturn:
    """Name the file's first bad rows: keep validating what follows, up to the limit."""
    limit = settings.ingest_max_problems
    if any(p.index == 0 for p in problems):
        raise InvalidFile(str(path), "refused for its columns; nothing was stored", problems)
    for chunk in rest:
        if len({p.index for p in problems}) >= limit:
            break
        more = stage_table(chunk, first_row=done + 1, max_problems=limit).problems
        problems = problems + more
        done += chunk.num_rows
    rows = sorted({p.index for p in problems})[:limit]
    shown = [p for p in problems if p.index in set(rows)]
    raise InvalidFile(str(path), f"refused ({len(rows)} bad rows shown); nothing was stored",
                      shown)


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise InvalidFile(str(path), "no such file")
    if path.suffix.lower() not in FORMATS:
        raise InvalidFile(str(path), "unsupported file type; use .parquet, .csv, .jsonl or "
                                     ".ndjson")


def _row_count(path: Path) -> int | None:
    if FORMATS[path.suffix.lower()] != "parquet":
        return None
    try:
        return int(pq.ParquetFile(path).metadata.num_rows)
    except (pa.ArrowException, OSError) as exc:
        raise InvalidFile(str(path), f"not a readable Parquet file ({exc})") from None


def _chunks(path: Path, rows: int) -> Iterator[pa.Table]:
    """The file's rows as tables of about ``rows`` rows; a read error refuses the file."""
    reader = {"parquet": _parquet_batches, "csv": _csv_batches, "jsonl": _jsonl_batches}
    try:
        pending: list[pa.RecordBatch] = []
        size = 0
        for batch in reader[FORMATS[path.suffix.lower()]](path, rows):
            pending.append(batch)
            size += batch.num_rows
            if size >= rows:
                yield pa.Table.from_batches(pending)
                pending, size = [], 0
        if pending:
            yield pa.Table.from_batches(pending)
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        raise InvalidFile(str(path), f"cannot be read ({_first_line(exc)})") from None


def _parquet_batches(path: Path, rows: int) -> Iterator[pa.RecordBatch]:
    yield from pq.ParquetFile(path).iter_batches(batch_size=rows)


def _csv_batches(path: Path, rows: int) -> Iterator[pa.RecordBatch]:
    """CSV is text: every column is read as a string and converted by the validator."""
    convert = pa_csv.ConvertOptions(column_types={name: pa.string() for name in _csv_header(path)},
                                    strings_can_be_null=True, null_values=[""])
    yield from pa_csv.open_csv(path, convert_options=convert,
                               read_options=pa_csv.ReadOptions(block_size=1 << 24))


def _csv_header(path: Path) -> list[str]:
    with open(path, encoding="utf-8", newline="") as handle:
        first = handle.readline()
    return next(csv.reader([first]), [])


def _jsonl_batches(path: Path, rows: int) -> Iterator[pa.RecordBatch]:
    """JSON Lines: times and dates are read as text (no guessing of naive timestamps)."""
    pinned = pa.schema([pa.field(f.name, pa.string()) for f in INPUT_SCHEMA
                        if pa.types.is_timestamp(f.type) or pa.types.is_date32(f.type)])
    options = pa_json.ParseOptions(explicit_schema=pinned, unexpected_field_behavior="infer")
    if path.stat().st_size == 0:
        return
    yield from pa_json.read_json(path, parse_options=options).to_batches(max_chunksize=rows)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
