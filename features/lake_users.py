"""Every user of the lake numbered once, for good: the registry and each file's numbers.

Why: a feature build reduces every row into its user's slots. Numbering the users
as the build meets them costs a hash-table probe per row, and sorting the results
into user order afterwards a gather per aggregate: together a third of a build.
Instead the writer numbers each user the first time it stores one of their events
(0, 1, ... in that order, never renumbered) and keeps, beside each events file, the
number of each row's user. A build reads the numbers, maps them once to ranks in
user-id order, and reduces straight into slots in the order the snapshot is written.

Layout::

    lake/users/users-<numbering>-<N>.arrow
                                the user ids numbered N, N + 1, ... (a chunk per commit
                                that brought new users; compaction merges them)
    lake/keys/seg-*.users.npz   per events file: each row's user number (int32), the
                                numbering, and the size and time of the events file

Both are derived data, like the key files. A commit writes its new users' chunk
(beside, then renamed) before the manifest, which records how many users are committed
and under which numbering; so a crash can only leave numbers no committed file uses
(the next writer deletes that chunk). A writer rebuilds a missing, damaged or stale
registry from the committed files under a new numbering, every file's numbers with it,
and commits it at once. A reader that finds a file's numbers missing, of another
numbering or made for another version of the file looks its users up by id
(:meth:`LakeUsers.ranks_of`); a user the registry lacks (:class:`UnknownUser`) sends
the build back to numbering users itself.

Users are found by two independently seeded 64-bit hashes of the id together (a
128-bit fingerprint, as for event keys): two ids would have to agree on both to
share a number, a chance below 1e-25 for a million users.
"""

from __future__ import annotations

import logging
import os
import uuid
import zipfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl

from features.dense_reduce import Index
from features.id_order import id_order
from features.lake import (
    EVENTS,
    KEYS,
    MANIFEST,
    USERS,
    Manifest,
    Segment,
    temp_path,
    write_atomic,
)
from features.lake_keys import Fingerprints, KeyIndex

logger = logging.getLogger(__name__)

CHUNK_PREFIX = "users-"
CHUNK_SUFFIX = ".arrow"
SEEDS = (0x05E2_0001, 0x05E2_0002)


class UnknownUser(LookupError):
    """A row's user is not in the registry (the registry is stale or damaged)."""


def numbers_path(root: Path, name: str) -> Path:
    """The user numbers of the events file ``name``."""
    return root / KEYS / name.replace(".parquet", ".users.npz")


class UserRegistry:
    """The writer's registry: a number for every user id, new ids numbered on.

    Ids are looked up by fingerprint in a :class:`~features.lake_keys.KeyIndex` (sorted
    runs searched by bisection, the number kept where an event key keeps its content
    hash): about a millisecond for a batch of a thousand events, a few sorts for a
    file of millions, and nothing to compile.
    """

    def __init__(self, names: pl.Series, numbering: str) -> None:
        self.numbering = numbering
        self._index = KeyIndex()
        self.count = 0
        self._saved = 0
        self._names: list[pl.Series] = []
        self.number(names)
        if self.count != len(names):
            raise ValueError("the registry holds an id twice")
        self._saved, self._names = self.count, []

    def number(self, user_ids: pl.Series) -> Index:
        """Each id's number; ids never seen are numbered from :attr:`count` on, in order."""
        h1, h2 = _fingerprint(user_ids)
        order = np.argsort(h1, kind="stable")
        found, stored = self._index.lookup(Fingerprints(h1[order], h2[order], h1[order]))
        numbers = np.empty(len(h1), np.int64)
        numbers[order] = stored.astype(np.int64)
        missing = np.sort(order[~found])  # rows of new ids, in row order
        if len(missing):
            groups = (pl.DataFrame({"h1": h1[missing], "h2": h2[missing]}).with_row_index("at")
                      .group_by("h1", "h2", maintain_order=True)  # in order of first rows
                      .agg(pl.col("at")).with_row_index("new"))
            rows = groups.select("new", "at").explode("at")
            numbers[missing[rows["at"].to_numpy()]] = self.count + rows["new"].to_numpy()
            first = missing[groups["at"].list.first().to_numpy()]
            added = self.count + np.arange(len(first), dtype=np.uint64)
            self._index.add(f"{self.count}", Fingerprints(h1[first], h2[first], added))
            self._names.append(user_ids.gather(first).alias("user_id"))
            self.count += len(first)
        return numbers.astype(np.int32)

    def number_file(self, path: Path) -> Index:
        """The numbers of the users of an events file, row by row (new users numbered)."""
        return self.number(pl.read_parquet(path, columns=["user_id"]).to_series())

    def catch_up(self, root: Path, users: int) -> None:
        """Add the users other processes committed since, up to ``users``: the chunks
        numbered from :attr:`count` on (found by name, not by listing the folder)."""
        while self.count < users:
            path = root / USERS / chunk_name(self.numbering, self.count)
            names = pl.read_ipc(path, columns=["user_id"]).to_series()
            first = self.count
            numbers = self.number(names)
            if not np.array_equal(numbers, np.arange(first, first + len(names))):
                raise ValueError(f"registry chunk {path.name} holds users already numbered")
            self._saved, self._names = self.count, []

    @property
    def unsaved(self) -> bool:
        return self.count > self._saved

    def save(self, root: Path) -> None:
        """Write the users numbered since the last save as a chunk of the registry
        (beside, then renamed): a commit writes only its new users."""
        if not self.unsaved:
            return
        _write_chunk(root, self.numbering, self._saved, pl.concat(self._names, rechunk=True))
        self._saved, self._names = self.count, []


_registries: dict[Path, UserRegistry] = {}


def registry_of(root: Path, manifest: Manifest) -> tuple[UserRegistry, Manifest]:
    """This process's registry of the lake (under the writer's lock), and the manifest
    to go on from: the registry is kept while the manifest names its numbering and
    count, else read again (another process committed users), and rebuilt from the
    committed files when missing, damaged or stale (its numbering then committed at
    once, in a new manifest)."""
    cached = _registries.get(root)
    if cached is not None and not cached.unsaved and cached.count <= manifest.users \
            and cached.numbering == manifest.users_id:
        try:
            cached.catch_up(root, manifest.users)
            return cached, manifest
        except (OSError, ValueError, pl.exceptions.PolarsError):
            pass  # chunks merged since, or damaged: read the registry whole
    if not manifest.segments:  # nothing numbered yet: the first commit names the numbering
        registry = _registries[root] = UserRegistry(read_registry(root, manifest),
                                                    uuid.uuid4().hex)
        return registry, manifest
    try:
        registry = UserRegistry(read_registry(root, manifest), manifest.users_id)
    except (OSError, ValueError, pl.exceptions.PolarsError) as exc:
        logger.warning("user registry unusable (%s); rebuilding it", exc)
        registry, manifest = _rebuilt(root, manifest)
    _registries[root] = registry
    return registry, manifest


def forget_registry(root: Path | None = None) -> None:
    """Drop this process's registry of one lake (or of all): the next writer reloads it."""
    if root is None:
        _registries.clear()
    else:
        _registries.pop(root, None)


def read_registry(root: Path, manifest: Manifest) -> pl.Series:
    """The committed user ids in number order: the manifest's first ``users`` ids of the
    chunks, each starting where the one before ends. ValueError when they do not, or
    hold fewer (left stale by a crash: renaming a chunk into place is not durable)."""
    if manifest.segments and not manifest.users_id:
        raise ValueError("the lake's files predate its user registry")
    parts, count = [], 0
    for path in registry_chunks(root, manifest.users_id):
        if count >= manifest.users:
            break  # a crashed commit's users: not committed
        if _first_of(path) != count:
            raise ValueError(f"registry chunk {path.name} does not follow user {count}")
        parts.append(pl.read_ipc(path, columns=["user_id"]).to_series())
        count += len(parts[-1])
    if count < manifest.users:
        raise ValueError(f"the registry holds {count} users, the manifest {manifest.users}")
    names = pl.concat(parts, rechunk=True) if parts else pl.Series("user_id", [], pl.String)
    return names.head(manifest.users)


def merge_registry(root: Path, manifest: Manifest) -> None:
    """Rewrite the registry as one chunk (compaction: an API lake gains a chunk a batch)."""
    chunks = registry_chunks(root, manifest.users_id)
    if len(chunks) < 2:
        return
    _write_chunk(root, manifest.users_id, 0, read_registry(root, manifest))
    for path in chunks[1:]:
        path.unlink(missing_ok=True)
    forget_registry(root)


def remove_uncommitted_users(root: Path, manifest: Manifest, *, thorough: bool = False) -> None:
    """Delete the chunk a crashed commit may have left (its first number is the
    manifest's count); ``thorough``: every chunk the manifest does not use, those of
    another numbering (before a rebuild) too."""
    if not thorough:
        if manifest.users_id:
            (root / USERS / chunk_name(manifest.users_id, manifest.users)).unlink(missing_ok=True)
        return
    kept = set(registry_chunks(root, manifest.users_id))
    for path in (root / USERS).iterdir():
        if path not in kept or _first_of(path) >= manifest.users:
            logger.warning("removing unused registry chunk %s", path.name)
            path.unlink(missing_ok=True)


def registry_chunks(root: Path, numbering: str) -> list[Path]:
    """The chunk files of a numbering of the registry, in number order."""
    if not numbering:
        return []
    return sorted((root / USERS).glob(f"{CHUNK_PREFIX}{numbering}-*{CHUNK_SUFFIX}"))


def chunk_name(numbering: str, first: int) -> str:
    """The name of the chunk whose first user has number ``first``."""
    return f"{CHUNK_PREFIX}{numbering}-{first:012d}{CHUNK_SUFFIX}"


def _first_of(chunk: Path) -> int:
    try:
        return int(chunk.name[:-len(CHUNK_SUFFIX)].rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return -1


def _write_chunk(root: Path, numbering: str, first: int, names: pl.Series) -> None:
    temp = temp_path(root, chunk_name(numbering, first))
    names.alias("user_id").to_frame().write_ipc(temp, compression="lz4")
    os.replace(temp, root / USERS / chunk_name(numbering, first))


def _rebuilt(root: Path, manifest: Manifest) -> tuple[UserRegistry, Manifest]:
    """A registry numbered afresh (a numbering of its own) from the committed files in
    order, every file's numbers written again to match it, then committed: the new
    manifest names the numbering, and the chunks of the old one go."""
    registry = UserRegistry(pl.Series("user_id", [], pl.String), uuid.uuid4().hex)
    for segment in manifest.segments:
        path = root / EVENTS / segment.name
        save_numbers(root, segment.name, registry.number_file(path), path, registry.numbering)
    registry.save(root)
    manifest = replace(manifest, users=registry.count, users_id=registry.numbering)
    write_atomic(root / MANIFEST, manifest.to_json().encode())
    remove_uncommitted_users(root, manifest, thorough=True)
    return registry, manifest


def save_numbers(root: Path, name: str, numbers: Index, events: Path, numbering: str) -> None:
    """Write a file's user numbers (derived data: neither renamed nor fsynced) with the
    registry's numbering and the size and modification time of the events file they
    number (``events``, where it is now: renaming keeps both), so numbers of another
    numbering, or of a file since rewritten, are not trusted."""
    with open(numbers_path(root, name), "wb") as handle:
        np.savez(handle, numbers=numbers.astype(np.int32, copy=False),
                 stamp=np.array(_file_stamp(events), np.int64), numbering=np.array(numbering))


class LakeUsers:
    """A reader's view for one build: the registry's users in user-id order, and each
    number's rank in it.

    Ranking a million ids (:func:`features.id_order.id_order`) takes a sixth of a second
    of CPU time: it runs on a thread of its own while the first pieces of the lake are
    read, and whatever needs the ranks waits for them.
    """

    def __init__(self, names: pl.Series, numbering: str) -> None:
        self.count = len(names)
        self.numbering = numbering
        self._ranked: Future[tuple[pl.Series, Index]] = _RANKING.submit(_ranked, names)

    @classmethod
    def read(cls, root: Path, manifest: Manifest) -> LakeUsers | None:
        """The registry, being ranked; None when it cannot be read or is stale."""
        try:
            names = read_registry(root, manifest)
        except (OSError, ValueError, pl.exceptions.PolarsError) as exc:
            logger.warning("user registry unreadable (%s): numbering users as they come", exc)
            return None
        return cls(names, manifest.users_id)

    @property
    def names(self) -> pl.Series:
        """Every user id of the registry, sorted."""
        return self._ranked.result()[0]

    @property
    def ranks(self) -> Index:
        """Each number's rank among :attr:`names`."""
        return self._ranked.result()[1]

    def file_ranks(self, root: Path, segment: Segment, offset: int, rows: int) -> Index | None:
        """The ranks of the users of rows ``offset`` to ``offset + rows`` of a file; None
        when its numbers are missing, damaged, made for another version of the file or
        name users the registry lacks."""
        try:
            with np.load(numbers_path(root, segment.name), allow_pickle=False) as stored:
                numbers, stamp = stored["numbers"], stored["stamp"]
                numbering = str(stored["numbering"])
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
            return None
        if (numbering != self.numbering or numbers.shape != (segment.rows,)
                or numbers.dtype != np.int32
                or tuple(stamp.tolist()) != _file_stamp(root / EVENTS / segment.name)):
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


_RANKING = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rank-users")


def _ranked(names: pl.Series) -> tuple[pl.Series, Index]:
    order = id_order(names)
    ranks = np.empty(len(order), np.int32)
    ranks[order] = np.arange(len(order), dtype=np.int32)
    return names.gather(order), ranks


def _fingerprint(user_ids: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    return (user_ids.hash(SEEDS[0]).to_numpy(), user_ids.hash(SEEDS[1]).to_numpy())


def _file_stamp(path: Path) -> tuple[int, int] | None:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_size, found.st_mtime_ns
