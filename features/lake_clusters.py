"""Lake files store their rows kind by kind, each kind in row groups of its own.

Why: an event's columns are mostly null for its kind (a repayment has no
balance, a balance no due date), and a feature pass reads the rows of one or two
kinds and a handful of their columns. When a file's rows come kind by kind, in
row groups that each hold one kind, a reader takes each kind's columns from that
kind's row groups only, instead of decoding every column any kind needs for
every row.

Within a kind, rows are ordered by user (the leading bytes of the user id:
:func:`features.id_order.leading_keys`, id order but for ids alike in those
bytes), and each user's rows keep the order they arrived in (the sort is
stable). Why: a feature build numbers users in id order and adds each row into
its user's slots; rows in user order touch those slots one after another instead
of all over a few hundred megabytes (measured: the reduction loops took half the
time, a feature build a sixth less). A user's rows of a kind come in the same
order whatever the layout, and the engines take a pass's rows kind by kind, so
what they compute does not depend on it.

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
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.events import LAKE_SCHEMA, empty_lake_table
from features.id_order import leading_keys

KIND = "kind"
USER = "user_id"
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
    """The table's rows kind by kind (kinds in name order; within a kind, by user, each
    user's rows in table order)."""
    return _by_kind(table)[0]


def _by_kind(table: pa.Table) -> tuple[list[pa.Table], list[np.ndarray]]:
    """:func:`by_kind`, and the table's rows each run holds."""
    if table.num_rows == 0:
        return [], []
    rows = stored_order(table)
    ordered = _take(table, pa.array(rows))
    counts = pc.value_counts(ordered.column(KIND))  # in order of appearance: sorted
    runs, positions, start = [], [], 0
    for length in counts.field("counts").to_pylist():
        runs.append(ordered.slice(start, length))
        positions.append(rows[start:start + length])
        start += length
    return runs, positions


def stored_order(table: pa.Table) -> np.ndarray:
    """The order a file stores the table's rows in: by kind (name order), then by the
    leading bytes of the user id, then as they came.

    Two stable sorts of integers: by user key (Polars), then by kind code (numpy's radix
    sort of small integers). Sorting by the kinds and ids themselves (Arrow) took three times as
    long, on one core."""
    kinds = pc.dictionary_encode(table.column(KIND).combine_chunks())
    names = kinds.dictionary.to_pylist()
    places = np.argsort(np.argsort(names)).astype(np.uint16)  # each code's place, by name
    users = pl.from_arrow(table.column(USER))
    assert isinstance(users, pl.Series)
    keys = pl.DataFrame({USER: leading_keys(users)})
    by_user = keys.select(pl.arg_sort_by(USER, maintain_order=True)).to_series().to_numpy()
    by_user = by_user.astype(np.int64, copy=False)
    return by_user[np.argsort(places[kinds.indices.to_numpy()][by_user], kind="stable")]


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

    The rows of all tables are ordered together (:func:`stored_order`: a user's rows
    of a kind lie together, in the tables' order) and each kind's go into row groups
    of their own; the tables are held in memory together (a lake file is bounded in
    rows). Fewer than ``MIN_ROWS`` rows are written in the tables' order.
    """
    tables = list(tables)
    rows = pa.concat_tables(tables) if tables else empty_lake_table()
    if rows.num_rows < MIN_ROWS:
        with pq.ParquetWriter(path, LAKE_SCHEMA, compression=compression) as out:
            out.write_table(rows)
        return np.arange(rows.num_rows)
    runs, positions = _by_kind(rows)
    with pq.ParquetWriter(path, LAKE_SCHEMA, compression=compression) as out:
        for run in runs:
            out.write_table(run)
    return np.concatenate(positions)


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
