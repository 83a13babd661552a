"""Fingerprints of event keys and contents, and the in-memory index the lake deduplicates with.

Why this design: deduplication by ``(source, event_id)`` must be exact and
fast at ten million events, for one-off file loads and for a long-running API
worker alike. Each lake file gets a sidecar *key file* holding, per row, a
128-bit fingerprint of its key (two independently seeded 64-bit hashes) and a
64-bit hash of its content. A writer loads the key files once, keeps them in
memory as a few sorted runs (an LSM-style log of runs, merged when a run is
no bigger than twice the next, so lookups cost O(log n) binary searches over
O(log n) runs) and afterwards reads only the key files of lake files it has
not seen. The lake's Parquet files stay the source of truth: a key file is
derived data, rebuilt from its lake file when missing or when the hash
function changes (the hash id, which names the Polars version, is kept in the
manifest). With 128-bit key fingerprints the chance that two different keys
collide is below 1e-18 even for 10^10 events; a content-hash collision could
only make a conflicting resend look like a duplicate (probability 2^-64 per
pair).

A table in the application database was the alternative: exact, shared, but
inserting ten million keys through SQLite costs more than the whole ingest is
allowed to take, and it would split one commit across two stores.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from features.lake import EVENTS, KEYS, Manifest, Segment
from features.records import STAGED_SCHEMA

logger = logging.getLogger(__name__)

CONTENT_COLUMNS = STAGED_SCHEMA.names
"""What makes two rows of one key "the same event": every column the furnisher sent."""

KEY_SEEDS = (0x5EED_0001, 0x5EED_0002)
CONTENT_SEED = 0x5EED_0003
HASH_ID = f"polars-{pl.__version__}/hash_rows/1"
"""Names the hash function; key files made with another one are rebuilt."""



@dataclass(frozen=True)
class Fingerprints:
    """Per row: key fingerprint (h1, h2) and content hash, as numpy uint64 arrays."""

    h1: np.ndarray
    h2: np.ndarray
    content: np.ndarray

    def __len__(self) -> int:
        return len(self.h1)

    def take(self, rows: np.ndarray) -> Fingerprints:
        return Fingerprints(self.h1[rows], self.h2[rows], self.content[rows])

    def save(self, path: Path) -> None:
        """Write as one .npy array (3 x rows); derived data, so neither renamed nor fsynced."""
        with open(path, "wb") as handle:
            np.save(handle, np.stack([self.h1, self.h2, self.content]))

    @classmethod
    def load(cls, path: Path, rows: int) -> Fingerprints:
        """Read a key file; ValueError when it is damaged or not of ``rows`` rows."""
        array = np.load(path, allow_pickle=False)
        if array.dtype != np.uint64 or array.shape != (3, rows):
            raise ValueError(f"key file has shape {array.shape}, expected (3, {rows})")
        return cls(array[0], array[1], array[2])

    @classmethod
    def concat(cls, parts: list[Fingerprints]) -> Fingerprints:
        if not parts:
            empty = np.empty(0, np.uint64)
            return cls(empty, empty, empty)
        return cls(*(np.concatenate([getattr(p, name) for p in parts])
                     for name in ("h1", "h2", "content")))


def fingerprint(rows: pa.Table | pl.DataFrame, content_columns: list[str]) -> Fingerprints:
    """Key fingerprints and content hashes of every row, computed column-wise by Polars.

    The content hash depends on the Polars dtypes, so callers pass rows typed as the
    staged schema (an Arrow table in it, or a frame converted from one).
    """
    frame = pl.from_arrow(rows.select(content_columns)) if isinstance(rows, pa.Table) \
        else rows.select(content_columns)
    assert isinstance(frame, pl.DataFrame)
    keys = frame.select("source", "event_id")
    return Fingerprints(
        keys.hash_rows(seed=KEY_SEEDS[0]).to_numpy(),
        keys.hash_rows(seed=KEY_SEEDS[1]).to_numpy(),
        frame.hash_rows(seed=CONTENT_SEED).to_numpy(),
    )


class KeyIndex:
    """The keys already stored: lookups by fingerprint, appends by run."""

    def __init__(self) -> None:
        self.files: set[str] = set()
        self._runs: list[Fingerprints] = []

    def __len__(self) -> int:
        return sum(len(run) for run in self._runs)

    def add(self, name: str, prints: Fingerprints, *, presorted: bool = False) -> None:
        """Add the keys of one lake file (named so a refresh can tell what is known).

        ``presorted`` says the prints are already ordered by ``h1`` (saves a sort).
        """
        self.files.add(name)
        if len(prints):
            self._runs.append(prints if presorted else prints.take(np.argsort(prints.h1)))
        while len(self._runs) >= 2 and len(self._runs[-2]) <= 2 * len(self._runs[-1]):
            last = self._runs.pop()
            merged = Fingerprints.concat([self._runs.pop(), last])
            # two sorted runs: numpy's stable sort (timsort) merges them in linear time
            self._runs.append(merged.take(np.argsort(merged.h1, kind="stable")))

    def lookup(self, queries: Fingerprints) -> tuple[np.ndarray, np.ndarray]:
        """For each query (ordered by ``h1``): whether its key is stored, and its content hash.

        Queries must be sorted by ``h1``: binary searches for increasing keys reuse the
        previous position, which makes a million lookups cache-friendly.
        """
        found = np.zeros(len(queries), dtype=bool)
        content = np.zeros(len(queries), dtype=np.uint64)
        for run in self._runs:
            low = np.searchsorted(run.h1, queries.h1, side="left")
            at = np.minimum(low, len(run) - 1)
            same_h1 = run.h1[at] == queries.h1
            hit = same_h1 & (run.h2[at] == queries.h2)
            found |= hit
            content[hit] = run.content[at[hit]]
            after = np.minimum(at + 1, len(run) - 1)
            crowded = same_h1 & ~hit & (after != at) & (run.h1[after] == queries.h1)
            for row in np.flatnonzero(crowded):  # equal h1 of different keys: ~never
                position = int(at[row]) + 1
                while position < len(run) and run.h1[position] == queries.h1[row]:
                    if run.h2[position] == queries.h2[row]:
                        found[row] = True
                        content[row] = run.content[position]
                        break
                    position += 1
        return found, content


# -- key files and this process's index -----------------------------------------

_indexes: dict[Path, KeyIndex] = {}


def forget_known_keys(root: Path | None = None) -> None:
    """Drop this process's index of one lake (or of all): the next writer reloads it."""
    if root is None:
        _indexes.clear()
    else:
        _indexes.pop(root, None)


def known_keys(root: Path, manifest: Manifest) -> KeyIndex:
    """This process's index of the committed keys, refreshed with files it has not seen."""
    committed = {segment.name for segment in manifest.segments}
    index = _indexes.get(root)
    if index is None or not index.files <= committed or manifest.hash_id not in ("", HASH_ID):
        index = _indexes[root] = KeyIndex()
    for segment in manifest.segments:
        if segment.name not in index.files:
            index.add(segment.name, load_key_file(root, segment, manifest.hash_id))
    return index


def key_path(root: Path, name: str) -> Path:
    """The key file of the events file ``name``."""
    return root / KEYS / name.replace(".parquet", ".keys.npy")


def load_key_file(root: Path, segment: Segment, hash_id: str) -> Fingerprints:
    """The fingerprints of one committed file, rebuilt from it when the key file is
    missing, damaged or made with another hash function."""
    path = key_path(root, segment.name)
    if path.exists() and hash_id == HASH_ID:
        try:
            return Fingerprints.load(path, segment.rows)
        except (ValueError, OSError, EOFError) as exc:  # not fsynced: may be lost in a crash
            logger.warning("key file of %s unreadable (%s); rebuilding it", segment.name, exc)
    logger.info("rebuilding the key file of %s", segment.name)
    events = pq.read_table(root / EVENTS / segment.name, columns=CONTENT_COLUMNS)
    prints = fingerprint(events, CONTENT_COLUMNS)
    prints.save(path)
    return prints
