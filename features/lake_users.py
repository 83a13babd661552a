"""Every user of the lake numbered once, for good: the registry and each file's numbers.

Why: a feature build reduces every row into its user's slots. Numbering the users
as the build meets them costs a hash-table probe per row, and sorting the results
into user order afterwards a gather per aggregate: together a third of a build.
Instead the writer numbers each user the first time it stores one of their events
(0, 1, ... in that order, never renumbered) and keeps, beside each events file, the
number of each row's user. A build reads the numbers, maps them once to ranks in
user-id order, and reduces straight into slots in the order the snapshot is written.

Layout (next to the key files)::

    lake/keys/users.parquet     user_id of each number, in number order (append-only)
    lake/keys/seg-*.users.npz   per events file: each row's user number (int32), and the
                                size and time of the events file they number

Both are derived data, like the key files. The registry is replaced (written beside,
renamed) before the manifest that needs it, so a crash can only leave numbers no
committed file uses; the next writer rebuilds a missing or damaged registry from the
committed files, and every file's numbers with it. A reader that finds a file's
numbers missing, or naming a user the registry does not hold, looks its users up by
id instead (:func:`numbers_of`).

Users are found by two independently seeded 64-bit hashes of the id together (a
128-bit fingerprint, as for event keys): two ids would have to agree on both to
share a number, a chance below 1e-25 for a million users.
"""

from __future__ import annotations

import logging
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from features.dense_reduce import Index, UserTable
from features.lake import EVENTS, KEYS, Manifest, Segment, temp_path

logger = logging.getLogger(__name__)

REGISTRY = "users.parquet"
SEEDS = (0x05E2_0001, 0x05E2_0002)


class UnknownUser(LookupError):
    """A row's user is not in the registry (the registry is stale or damaged)."""


def registry_path(root: Path) -> Path:
    return root / KEYS / REGISTRY


def numbers_path(root: Path, name: str) -> Path:
    """The user numbers of the events file ``name``."""
    return root / KEYS / name.replace(".parquet", ".users.npz")


class UserRegistry:
    """The writer's registry: a number for every user id, new ids numbered on."""

    def __init__(self, names: pl.Series) -> None:
        self._table = UserTable(pairs=True)
        self._table.number(*_fingerprint(names))
        if self._table.count != len(names):
            raise ValueError("the registry holds an id twice")
        self._saved = names.alias("user_id")
        self._new: list[pl.Series] = []
        self.stamp: tuple[int, int] | None = None

    @property
    def count(self) -> int:
        return self._table.count

    def number(self, user_ids: pl.Series) -> Index:
        """Each id's number; ids never seen are numbered from :attr:`count` on, in order."""
        keys, checks = _fingerprint(user_ids)
        idx, first, _ = self._table.number(keys, checks)
        if len(first):
            self._new.append(user_ids.gather(first).alias("user_id"))
        return idx

    def number_file(self, path: Path) -> Index:
        """The numbers of the users of an events file, row by row (new users numbered)."""
        users = pl.read_parquet(path, columns=["user_id"]).to_series()
        return self.number(users)

    def save(self, root: Path) -> None:
        """Replace the registry file when users were added (beside, then renamed)."""
        if not self._new:
            return
        names = pl.concat([self._saved, *self._new], rechunk=True)
        temp = temp_path(root, REGISTRY)
        names.to_frame().write_parquet(temp, compression="zstd", statistics=False)
        os.replace(temp, registry_path(root))
        self._saved, self._new = names, []
        self.stamp = _stamp(registry_path(root))


_registries: dict[Path, UserRegistry] = {}


def registry_of(root: Path, manifest: Manifest) -> UserRegistry:
    """This process's registry of the lake (under the writer's lock): reloaded when
    another process replaced the file, rebuilt from the committed files when missing
    or damaged."""
    path = registry_path(root)
    cached = _registries.get(root)
    if cached is not None and cached.stamp == _stamp(path):
        return cached
    try:
        registry = UserRegistry(read_registry(root, manifest))
    except (OSError, ValueError, pl.exceptions.PolarsError) as exc:
        if manifest.segments:
            logger.warning("user registry unusable (%s); rebuilding it", exc)
        registry = _rebuilt(root, manifest)
    registry.stamp = _stamp(path)
    _registries[root] = registry
    return registry


def forget_registry(root: Path | None = None) -> None:
    """Drop this process's registry of one lake (or of all): the next writer reloads it."""
    if root is None:
        _registries.clear()
    else:
        _registries.pop(root, None)


def read_registry(root: Path, manifest: Manifest) -> pl.Series:
    """The committed user ids in number order; ValueError when the file holds fewer than
    the manifest counts (left stale by a crash: its renaming is not made durable)."""
    names = pl.read_parquet(registry_path(root), columns=["user_id"]).to_series()
    if len(names) < manifest.users:
        raise ValueError(f"the registry holds {len(names)} users, the manifest {manifest.users}")
    return names


def _rebuilt(root: Path, manifest: Manifest) -> UserRegistry:
    """A registry numbered afresh from the committed files in order, every file's numbers
    written again to match it."""
    registry = UserRegistry(pl.Series("user_id", [], pl.String))
    for segment in manifest.segments:
        path = root / EVENTS / segment.name
        save_numbers(root, segment.name, registry.number_file(path), path)
    registry.save(root)
    return registry


def save_numbers(root: Path, name: str, numbers: Index, events: Path) -> None:
    """Write a file's user numbers (derived data: neither renamed nor fsynced) with the
    size and modification time of the events file they number (``events``, where it is
    now: renaming keeps both), so numbers of a file since rewritten are not trusted."""
    with open(numbers_path(root, name), "wb") as handle:
        np.savez(handle, numbers=numbers.astype(np.int32, copy=False),
                 stamp=np.array(_stamp(events), np.int64))


@dataclass(frozen=True)
class LakeUsers:
    """A reader's view for one build: the registry's users in user-id order, and each
    number's rank in it."""

    names: pl.Series
    ranks: Index

    @classmethod
    def read(cls, root: Path, manifest: Manifest) -> LakeUsers | None:
        """The registry ranked; None when it cannot be read or is stale."""
        try:
            names = read_registry(root, manifest)
        except (OSError, ValueError, pl.exceptions.PolarsError) as exc:
            logger.warning("user registry unreadable (%s): numbering users as they come", exc)
            return None
        order = names.arg_sort().to_numpy()
        ranks = np.empty(len(order), np.int32)
        ranks[order] = np.arange(len(order), dtype=np.int32)
        return cls(names.gather(order), ranks)

    def file_ranks(self, root: Path, segment: Segment, offset: int, rows: int) -> Index | None:
        """The ranks of the users of rows ``offset`` to ``offset + rows`` of a file; None
        when its numbers are missing, damaged, made for another version of the file or
        name users the registry lacks."""
        try:
            with np.load(numbers_path(root, segment.name), allow_pickle=False) as stored:
                numbers, stamp = stored["numbers"], stored["stamp"]
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
            return None
        if (numbers.shape != (segment.rows,) or numbers.dtype != np.int32
                or tuple(stamp.tolist()) != _stamp(root / EVENTS / segment.name)):
            return None
        picked = numbers[offset:offset + rows]
        if len(picked) and (picked.min() < 0 or picked.max() >= len(self.ranks)):
            return None
        return self.ranks[picked]

    def ranks_of(self, user_ids: pl.Series) -> Index:
        """The ranks of these ids, looked up by id; :class:`UnknownUser` for an id the
        registry lacks."""
        ranked = pl.DataFrame({"user_id": self.names,
                               "_rank": np.arange(len(self.names), dtype=np.int32)})
        found = (user_ids.alias("user_id").to_frame()
                 .join(ranked, on="user_id", how="left", maintain_order="left")
                 .get_column("_rank"))
        if found.null_count():
            raise UnknownUser("a user of the lake is not in its registry")
        return found.to_numpy()


def _fingerprint(user_ids: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    return (user_ids.hash(SEEDS[0]).to_numpy(), user_ids.hash(SEEDS[1]).to_numpy())


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_size, found.st_mtime_ns
