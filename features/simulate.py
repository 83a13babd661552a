"""The population simulator: a realistic synthetic population, streamed to Parquet files.

``simulate(users=..., months=..., seed=..., out_dir=...)`` writes

- ``events-00000.parquet``, ... : the events, with exactly the input-file
  columns of :data:`features.events.INPUT_SCHEMA`, ready for ``altcredit ingest``;
- ``truth.parquet``: the ground truth per user and month (never ingest it);
- ``manifest.json``: what was simulated, counts by kind, the realised bad rate.

Users are generated in blocks of :data:`BLOCK_USERS`, each from its own random
stream seeded by ``(seed, block number)`` and sharing nothing with other
blocks (communities and contacts stay inside a block), so memory is bounded by
one block and the rows are the same whatever ``chunk_users`` is: a chunk only
decides how many blocks go into one events file. The same seed gives
byte-identical files.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from config.settings import load_settings
from features.events import INPUT_SCHEMA
from features.simulate_frame import USER_WIDTH, Ids, digits, to_table
from features.simulate_life import emit_life
from features.simulate_money import emit_money
from features.simulate_obligations import emit_obligations
from features.simulate_reporting import report
from features.simulate_truth import TRUTH_SCHEMA, truth_table
from features.simulate_world import SOURCES, Context, Timeline, draw_block, onset_intercept

logger = logging.getLogger(__name__)

BLOCK_USERS = 1000
MAX_MONTHS = 120
EVENTS_PATTERN = "events-*.parquet"
ID_COLUMNS = ("event_id", "user_id", "account_id", "counterparty", "contact_user_id", "corrects")
TRUTH_FILE = "truth.parquet"
MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class SimulationSummary:
    """What a simulation wrote, and the figures that tell whether it looks real."""

    users: int
    months: int
    seed: int
    start: date
    end: date
    bad_rate: float               # the knob
    realised_bad_rate: float      # share of users with a bad event in the first 12 months
    thin_file_share: float
    events: int
    by_kind: dict[str, int]
    event_files: list[Path]
    truth_file: Path
    manifest_file: Path
    seconds: float = field(compare=False, default=0.0)


def simulate(*, users: int, months: int, seed: int, out_dir: Path | str,
             end: date | None = None, bad_rate: float | None = None,
             chunk_users: int | None = None,
             progress: Callable[[int], None] | None = None) -> SimulationSummary:
    """Simulate ``users`` over the ``months`` months ending at ``end`` (default today, UTC).

    ``bad_rate`` (default: setting ``simulate_bad_rate``) is the share of users
    that go bad within a year; ``chunk_users`` (default: setting
    ``simulate_chunk_users``, rounded up to whole blocks) is how many users one
    events file holds. ``progress`` is called with the number of users done
    after each block. Files replace earlier simulation files in ``out_dir``
    only once all are written.
    """
    settings = load_settings() if bad_rate is None or chunk_users is None else None
    bad_rate = settings.simulate_bad_rate if settings and bad_rate is None else bad_rate
    chunk_users = settings.simulate_chunk_users if settings and chunk_users is None else chunk_users
    end = end or datetime.now(UTC).date()
    _check(users=users, months=months, seed=seed, bad_rate=bad_rate, chunk_users=chunk_users,
           end=end)
    target = Path(out_dir)
    target.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    timeline = Timeline.ending(end, months)
    intercept = onset_intercept(float(bad_rate))
    blocks_per_file = -(-chunk_users // BLOCK_USERS)
    with tempfile.TemporaryDirectory(prefix=".simulate-", dir=target) as scratch:
        tally = _Tally(timeline)
        written = _write_all(Path(scratch), users=users, seed=seed, timeline=timeline,
                             intercept=intercept, blocks_per_file=blocks_per_file,
                             tally=tally, progress=progress)
        manifest = tally.manifest(users=users, months=months, seed=seed, end=end,
                                  bad_rate=float(bad_rate), chunk_users=chunk_users,
                                  files=[path.name for path in written])
        _write_json(Path(scratch) / MANIFEST_FILE, manifest)
        _publish(Path(scratch), target, [*written, Path(scratch) / TRUTH_FILE])
    seconds = (datetime.now(UTC) - started).total_seconds()
    logger.info("simulated %d users x %d months: %d events in %.1f s", users, months,
                manifest["events"], seconds)
    return SimulationSummary(
        users=users, months=months, seed=seed, start=date.fromisoformat(manifest["start"]),
        end=end, bad_rate=float(bad_rate), realised_bad_rate=manifest["realised_bad_rate"],
        thin_file_share=manifest["thin_file_share"], events=manifest["events"],
        by_kind=manifest["by_kind"], event_files=[target / path.name for path in written],
        truth_file=target / TRUTH_FILE, manifest_file=target / MANIFEST_FILE, seconds=seconds,
    )


def simulate_block(index: int, *, users: int, seed: int, timeline: Timeline,
                   intercept: float) -> tuple[pa.Table, pa.Table, np.ndarray]:
    """One block's events, its truth, and each user's bad day (-1: none)."""
    rng = np.random.default_rng([seed, index])
    first_user = index * BLOCK_USERS
    block = draw_block(rng, index=index, first_user=first_user, users=users,
                       latent_months=timeline.latent_months, intercept=intercept)
    ctx = Context(rng=rng, block=block, timeline=timeline)
    user_ids = Ids("u", block.user_index, USER_WIDTH)
    obligations, path = emit_obligations(ctx, f"a{index}-")
    distress = path.distress(ctx)
    parts = [*obligations, *emit_money(ctx, distress, "p"), *emit_life(ctx, distress, user_ids)]
    parts, _rows = report(ctx, parts)
    user_strings = digits("u", block.user_index, USER_WIDTH)
    tables = [to_table(part, users=user_strings, event_prefix=f"e{index}-", sources=SOURCES)
              for part in parts]
    events = pa.concat_tables(tables) if tables else INPUT_SCHEMA.empty_table()
    truth = truth_table(block, path, timeline, intercept, user_ids)
    return events, truth, path.bad_day


class _Tally:
    """Counts gathered block by block for the manifest."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.by_kind: Counter[str] = Counter()
        self.by_source: Counter[str] = Counter()
        self.bad_within_year = 0
        self.thin_file = 0

    def add(self, events: pa.Table, truth: pa.Table, bad_day: np.ndarray) -> None:
        for column, counter in (("kind", self.by_kind), ("source", self.by_source)):
            for item in pc.value_counts(events[column]).to_pylist():
                counter[item["values"]] += item["counts"]
        start = self.timeline.start_day
        horizon = min(start + 365, self.timeline.end_day)
        self.bad_within_year += int(((bad_day >= start) & (bad_day < horizon)).sum())
        months = self.timeline.months
        self.thin_file += int(pc.sum(truth["thin_file"]).as_py() or 0) // months

    def manifest(self, *, users: int, months: int, seed: int, end: date, bad_rate: float,
                 chunk_users: int, files: list[str]) -> dict[str, object]:
        start = date.fromordinal(date(1970, 1, 1).toordinal() + self.timeline.start_day)
        return {
            "users": users, "months": months, "seed": seed, "start": start.isoformat(),
            "end": end.isoformat(), "bad_rate": bad_rate,
            "realised_bad_rate": self.bad_within_year / users,
            "realised_bad_rate_days": min(365, self.timeline.end_day - self.timeline.start_day),
            "thin_file_share": self.thin_file / users,
            "events": sum(self.by_kind.values()),
            "by_kind": dict(sorted(self.by_kind.items())),
            "by_source": dict(sorted(self.by_source.items())),
            "block_users": BLOCK_USERS, "chunk_users": chunk_users,
            "event_files": files, "truth_file": TRUTH_FILE,
        }


def _write_all(scratch: Path, *, users: int, seed: int, timeline: Timeline, intercept: float,
               blocks_per_file: int, tally: _Tally,
               progress: Callable[[int], None] | None) -> list[Path]:
    """Generate block after block while a second thread writes the previous one.

    At most one block waits to be written, so memory stays bounded by two
    blocks; Parquet encoding releases the GIL, so writing overlaps generation.
    """
    blocks = -(-users // BLOCK_USERS)
    sink = _Sink(scratch, blocks_per_file)
    pending: Future[None] | None = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="simulate-writer") as writer:
        try:
            for index in range(blocks):
                size = min(BLOCK_USERS, users - index * BLOCK_USERS)
                events, truth, bad_day = simulate_block(index, users=size, seed=seed,
                                                        timeline=timeline, intercept=intercept)
                tally.add(events, truth, bad_day)
                if pending is not None:
                    pending.result()
                pending = writer.submit(sink.write, index, events, truth)
                if progress is not None:
                    progress(index * BLOCK_USERS + size)
            if pending is not None:
                pending.result()
        finally:
            writer.submit(sink.close).result()
    return sink.files


class _Sink:
    """The open Parquet writers: one events file per chunk of blocks, one truth file."""

    def __init__(self, scratch: Path, blocks_per_file: int) -> None:
        self.scratch = scratch
        self.blocks_per_file = blocks_per_file
        self.files: list[Path] = []
        self.events: pq.ParquetWriter | None = None
        self.truth = pq.ParquetWriter(scratch / TRUTH_FILE, TRUTH_SCHEMA)

    def write(self, index: int, events: pa.Table, truth: pa.Table) -> None:
        if index % self.blocks_per_file == 0:
            if self.events is not None:
                self.events.close()
            self.files.append(self.scratch / f"events-{len(self.files):05d}.parquet")
            self.events = _events_writer(self.files[-1])
        assert self.events is not None
        self.events.write_table(events)
        self.truth.write_table(truth)

    def close(self) -> None:
        if self.events is not None:
            self.events.close()
        self.truth.close()


def _events_writer(path: Path) -> pq.ParquetWriter:
    """Dictionary-encode the categorical columns only, and keep statistics where readers prune.

    Identifiers are nearly unique, so dictionaries and min/max statistics on
    them cost writing time for nothing (about a third of it).
    """
    categorical = [field.name for field in INPUT_SCHEMA
                   if pa.types.is_string(field.type) and field.name not in ID_COLUMNS]
    return pq.ParquetWriter(path, INPUT_SCHEMA, use_dictionary=categorical,
                            write_statistics=["user_id", "kind", "event_time", "reported_at"])


def _publish(scratch: Path, target: Path, files: list[Path]) -> None:
    """Move the new files into place, dropping earlier simulation files; the manifest last."""
    for stale in target.glob(EVENTS_PATTERN):
        if not (scratch / stale.name).exists():
            stale.unlink()
    for path in files:
        os.replace(path, target / path.name)
    os.replace(scratch / MANIFEST_FILE, target / MANIFEST_FILE)


def _write_json(path: Path, document: dict[str, object]) -> None:
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def _check(*, users: int, months: int, seed: int, bad_rate: float | None,
           chunk_users: int | None, end: date) -> None:
    """Refuse bad parameters up front, naming the parameter."""
    if not isinstance(users, int) or users < 1:
        raise ValueError(f"users must be a positive integer, got {users!r}")
    if not isinstance(months, int) or not 1 <= months <= MAX_MONTHS:
        raise ValueError(f"months must be an integer from 1 to {MAX_MONTHS}, got {months!r}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(bad_rate, int | float) or not 0 < bad_rate <= 0.5:
        raise ValueError(f"bad_rate must be in (0, 0.5], got {bad_rate!r}")
    if not isinstance(chunk_users, int) or chunk_users < 1:
        raise ValueError(f"chunk_users must be a positive integer, got {chunk_users!r}")
    if not isinstance(end, date) or isinstance(end, datetime):
        raise ValueError(f"end must be a date, got {end!r}")
    if end.year < 1980:
        raise ValueError(f"end must be a date after 1980, got {end.isoformat()}")
