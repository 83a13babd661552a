"""Users numbered 0, 1, ... as they first appear in the pieces of a build.

Users are keyed by a 64-bit hash of ``user_id`` (``KEY``): a hash-table probe per
row costs a fraction of grouping on the string. A second, independent hash
(``CHECK``) sits beside each key in the table; a key seen with two checks (about
one chance in 10^7 for a million users) raises :class:`KeyCollision`, and the
caller redoes the build with the ids themselves as keys (``hashed=False``), so a
collision can never merge two people.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from features.dense_reduce import Index, Mask, Rows, UserTable
from features.event_parts import CHECK, KEY
from features.lake_users import LakeUsers

NUMBER = "_number"


class KeyCollision(RuntimeError):
    """Two user ids share a key hash: the computation is redone with the ids as keys."""


class UserNumbers:
    """Each row's user number, and each number's user id and key, piece after piece."""

    in_order = False
    """Numbers follow first appearance: the results are sorted into user order at the end."""
    present: np.ndarray | None = None

    def __init__(self, *, hashed: bool) -> None:
        self.hashed = hashed
        self.count = 0
        self._table = UserTable()
        self._known = pl.DataFrame(schema={"user_id": pl.String, NUMBER: pl.Int32})
        self._names: list[pl.Series] = []
        self._keys: list[pl.Series] = []

    def number(self, rows: pl.DataFrame, keep: Mask | None) -> Index:
        """The user number of each row in ``keep`` (all by default; -1 elsewhere): rows
        hold ``user_id`` and ``KEY`` (and ``CHECK`` when hashed)."""
        at = None if keep is None else np.flatnonzero(keep)
        found = self._by_key(rows, at) if self.hashed else self._by_name(rows, at)
        if at is None:
            return found
        idx = np.full(rows.height, -1, np.int32)
        idx[at] = found
        return idx

    def names(self) -> pl.Series:
        """Each number's user id, in number order."""
        return _joined(self._names, pl.String).alias("user_id")

    def keys(self) -> pl.Series:
        """Each number's key, in number order."""
        return _joined(self._keys, pl.UInt64 if self.hashed else pl.String).alias(KEY)

    def _by_key(self, rows: pl.DataFrame, at: Rows | None) -> Index:
        keys, checks = rows.get_column(KEY).to_numpy(), rows.get_column(CHECK).to_numpy()
        if at is not None:
            keys, checks = keys[at], checks[at]
        found, first, collided = self._table.number(keys, checks)
        if collided:
            raise KeyCollision("two user ids share a key hash")
        self.count = self._table.count
        names = rows.get_column("user_id").gather(first if at is None else at[first])
        self._new(names, pl.Series(keys[first]))
        return found

    def _by_name(self, rows: pl.DataFrame, at: Rows | None) -> Index:
        names = rows.select("user_id")
        if at is not None:
            names = names[at]
        new = (names.unique(maintain_order=True)
               .join(self._known, on="user_id", how="anti", maintain_order="left")
               .with_columns(pl.int_range(self.count, self.count + pl.len(), dtype=pl.Int32)
                             .alias(NUMBER)))
        self._known = pl.concat([self._known, new], how="vertical")
        self._new(new.get_column("user_id"), new.get_column("user_id"))
        self.count += new.height
        numbered = names.join(self._known, on="user_id", how="left", maintain_order="left")
        return numbered.get_column(NUMBER).to_numpy()

    def _new(self, names: pl.Series, keys: pl.Series) -> None:
        if len(names):
            self._names.append(names)
            self._keys.append(keys)


def _joined(pieces: list[pl.Series], dtype: pl.DataType) -> pl.Series:
    return pl.concat(pieces, rechunk=True) if pieces else pl.Series([], dtype=dtype)


class GivenNumbers:
    """Users numbered by the lake (:mod:`features.lake_users`): each row's ``KEY`` is its
    user's rank in user-id order among every user the registry holds, so the slots are
    already in the order the snapshot is written. The registry also holds users with
    nothing that counts as of D: :attr:`present` tells the users some kept row named."""

    in_order = True
    hashed = False

    def __init__(self, users: LakeUsers) -> None:
        self._users = users
        self.count = users.count
        self.present = np.zeros(self.count, np.bool_)

    def number(self, rows: pl.DataFrame, keep: Mask | None) -> Index:
        idx = rows.get_column(KEY).to_numpy()
        self.present[idx if keep is None else idx[keep]] = True
        return idx

    def names(self) -> pl.Series:
        return self._users.names.alias("user_id")

    def keys(self) -> pl.Series:
        return pl.Series(KEY, np.arange(self.count, dtype=np.int32))
