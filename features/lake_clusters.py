"""Lake files store their rows kind by kind, each kind in row groups of its own.

Why: an event's columns are mostly null for its kind (a repayment has no
balance, a balance no due date), and a feature pass reads the rows of one or two
kinds and a handful of their columns. When a file's rows come kind by kind, in
row groups that each hold one kind, a reader takes each kind's columns from that
kind's row groups only, instead of decoding every column any kind needs for
every row. Rows are ordered by kind with a stable sort, so within a kind they
keep the order they arrived in; the engines concatenate a pass's rows kind by
kind anyway, so what they compute does not depend on the layout.

Files of fewer than ``MIN_ROWS`` rows (an API batch) are written as they came:
split by kind, their row groups would be too small to pay for their overhead, and
compaction, which merges such files, stores the merged rows kind by kind once they
are that many.

A file is recognised as clustered from its row groups' statistics (each row
group's ``kind`` minimum equals its maximum); files written before, whose row
groups mix kinds, are read whole as they always were.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.events import LAKE_SCHEMA

KIND = "kind"
MIN_ROWS = 10_000
"""Files with fewer rows are not split by kind (see above)."""
TAKE_THREADS = 2


@dataclass(frozen=True)
class Run:
    """Rows ``start`` to ``stop`` (exclusive) of a file, all of one kind."""

    kind: str
    start: int
    stop: int


def by_kind(table: pa.Table) -> list[pa.Table]:
    """The table's rows kind by kind (kinds in name order; within a kind, in table order)."""
    return _by_kind(table)[0]


def _by_kind(table: pa.Table) -> tuple[list[pa.Table], list[np.ndarray]]:
    """:func:`by_kind`, and the table's rows each run holds."""
    if table.num_rows == 0:
        return [], []
    order = pc.sort_indices(table.column(KIND))  # Arrow's sort is stable
    ordered = _take(table, order)
    counts = pc.value_counts(ordered.column(KIND))  # in order of appearance: sorted
    rows = order.to_numpy()
    runs, positions, start = [], [], 0
    for length in counts.field("counts").to_pylist():
        runs.append(ordered.slice(start, length))
        positions.append(rows[start:start + length])
        start += length
    return runs, positions


def _take(table: pa.Table, rows: pa.Array) -> pa.Table:
    """``table.take(rows)``, a column per thread (Arrow's take runs on one core and
    releases the GIL)."""
    with ThreadPoolExecutor(max_workers=TAKE_THREADS) as pool:
        columns = list(pool.map(lambda column: column.take(rows), table.columns))
    return pa.Table.from_arrays(columns, schema=table.schema)


def write_clustered(tables: Iterable[pa.Table], path: Path, *,
                    compression: str | None) -> np.ndarray:
    """Write the rows of ``tables`` to one Parquet file, kind by kind; returns, for each
    row of the file, its position in the tables one after the other.

    Every kind's rows, from all tables in their order, go into row groups of their
    own; the tables are held in memory together (a lake file is bounded in rows).
    Fewer than ``MIN_ROWS`` rows are written in the tables' order.
    """
    tables = list(tables)
    total = sum(table.num_rows for table in tables)
    if total < MIN_ROWS:
        with pq.ParquetWriter(path, LAKE_SCHEMA, compression=compression) as out:
            out.write_table(pa.concat_tables(tables) if tables else LAKE_SCHEMA.empty_table())
        return np.arange(total)
    runs: dict[str, list[tuple[pa.Table, np.ndarray]]] = {}
    offset = 0
    for table in tables:
        for run, rows in zip(*_by_kind(table), strict=True):
            runs.setdefault(run.column(KIND)[0].as_py(), []).append((run, offset + rows))
        offset += table.num_rows
    with pq.ParquetWriter(path, LAKE_SCHEMA, compression=compression) as out:
        for kind in sorted(runs):
            out.write_table(pa.concat_tables([run for run, _ in runs[kind]]))
    return np.concatenate([rows for kind in sorted(runs) for _, rows in runs[kind]])


def kind_runs(path: Path | str) -> list[Run] | None:
    """The file's runs of one kind (adjacent row groups of the same kind merged), or None
    when a row group holds several kinds or lacks statistics, or a kind comes in two
    runs: the file is not stored kind by kind and is read whole."""
    metadata = pq.ParquetFile(path).metadata
    column = metadata.schema.names.index(KIND)
    runs: list[Run] = []
    start = 0
    for number in range(metadata.num_row_groups):
        group = metadata.row_group(number)
        stats = group.column(column).statistics
        if group.num_rows == 0:
            continue
        if stats is None or not stats.has_min_max or stats.min != stats.max:
            return None
        stop = start + group.num_rows
        if runs and runs[-1].kind == stats.min:
            runs[-1] = Run(stats.min, runs[-1].start, stop)
        else:
            runs.append(Run(stats.min, start, stop))
        start = stop
    return runs if len({run.kind for run in runs}) == len(runs) else None
