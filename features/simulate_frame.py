"""Columnar parts of simulated events, and their conversion to the input-file Arrow schema.

An emitter produces a :class:`Part`: rows of one kind as numpy columns, the
payload columns it fills and nothing else. Categorical columns stay small
integer codes (:class:`Codes`) and identifiers stay integers with a prefix
(:class:`Ids`) until :func:`to_table` turns them into Arrow strings in C++;
money stays float until it becomes exact ``decimal128`` cents. No step loops
over rows in Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from features.events import CORRECTION, INPUT_SCHEMA, MONEY

INT_NULL = np.iinfo(np.int32).min  # an int column's null marker
EVENT_ROW_WIDTH = 7     # digits of an event's number within its block
USER_WIDTH = 8          # digits of a user's number: u00000042
ACCOUNT_WIDTH = 6       # digits of an account's number within its block
COUNTERPARTY_WIDTH = 13
COMMUNITY_WIDTH = 4


@dataclass(frozen=True)
class Codes:
    """A categorical column: codes into ``categories`` (-1 is null)."""

    values: np.ndarray
    categories: tuple[str, ...]

    @classmethod
    def of(cls, values: np.ndarray, enum: type[StrEnum]) -> Codes:
        return cls(np.asarray(values, dtype=np.int16), tuple(member.value for member in enum))

    @classmethod
    def constant(cls, value: str, n: int) -> Codes:
        return cls(np.zeros(n, dtype=np.int16), (value,))

    def take(self, rows: np.ndarray) -> Codes:
        return Codes(self.values[rows], self.categories)


@dataclass(frozen=True)
class Ids:
    """An identifier column: ``prefix`` then the integer in exactly ``width`` digits.

    The width is fixed per kind of identifier so that the same number always
    spells the same id, whichever part it appears in.
    """

    prefix: str
    values: np.ndarray
    width: int

    def take(self, rows: np.ndarray) -> Ids:
        return Ids(self.prefix, self.values[rows], self.width)


Column = np.ndarray | Codes | Ids


@dataclass
class Part:
    """Rows of one kind: common columns plus the payload columns the kind fills.

    ``user`` is the user's position in the block; ``row`` numbers the event
    within the block (its event id); ``source`` are codes into the simulator's
    source list. Times are microseconds since the epoch (UTC); dates are day
    numbers; money is float CNY.
    """

    kind: str
    user: np.ndarray
    source: np.ndarray
    event_time: np.ndarray
    payload: dict[str, Column]
    row: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    reported_at: np.ndarray | None = None
    corrects: np.ndarray | None = None  # row of the event a correction replaces
    corrected_kind: str | None = None
    void: bool = False

    def __len__(self) -> int:
        return len(self.user)

    def take(self, rows: np.ndarray) -> Part:
        """The part restricted to ``rows`` (a boolean mask or positions)."""
        def pick(value: np.ndarray | None) -> np.ndarray | None:
            return None if value is None else value[rows]

        return replace(
            self, user=self.user[rows], source=self.source[rows],
            event_time=self.event_time[rows], row=self.row[rows] if len(self.row) else self.row,
            payload={name: column[rows] if isinstance(column, np.ndarray) else column.take(rows)
                     for name, column in self.payload.items()},
            reported_at=pick(self.reported_at), corrects=pick(self.corrects),
        )


def to_table(part: Part, *, users: pa.Array, event_prefix: str,
             sources: tuple[str, ...]) -> pa.Table:
    """The part as a table of exactly :data:`INPUT_SCHEMA` (absent columns all null).

    ``users`` holds the id of each user of the block, by position; event ids
    are ``event_prefix`` and the part's row numbers.
    """
    n = len(part)
    columns: dict[str, pa.Array] = {
        "source": _strings(Codes(part.source, sources)),
        "event_id": _strings(Ids(event_prefix, part.row, EVENT_ROW_WIDTH)),
        "user_id": pc.take(users, pa.array(part.user.astype(np.int64))),
        "kind": _strings(Codes.constant(CORRECTION if part.corrects is not None else part.kind,
                                        n)),
        "event_time": _timestamps(part.event_time),
    }
    if part.reported_at is not None:
        columns["reported_at"] = _timestamps(part.reported_at)
    if part.corrects is not None:
        columns["corrects"] = _strings(Ids(event_prefix, part.corrects, EVENT_ROW_WIDTH))
        columns["corrected_kind"] = _strings(Codes.constant(part.kind, n))
        columns["void"] = pa.array(np.full(n, part.void))
    for name, values in part.payload.items():
        columns[name] = _convert(values, INPUT_SCHEMA.field(name).type)
    arrays = [columns[f.name] if f.name in columns else _nulls(n, f.type) for f in INPUT_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=INPUT_SCHEMA)


def digits(prefix: str, values: np.ndarray, width: int) -> pa.Array:
    """Strings ``prefix`` + zero-padded ``values``, written as bytes by numpy (no Python loop)."""
    values = np.asarray(values, dtype=np.int64)
    n = len(values)
    if n and (values.min() < 0 or values.max() >= 10**width):
        raise ValueError(f"identifier numbers must fit in {width} digits")
    head = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    size = len(head) + width
    data = np.empty((n, size), dtype=np.uint8)
    data[:, :len(head)] = head
    groups = -(-width // 4)  # four digits at a time, looked up in a table
    padded = np.empty((n, 4 * groups), dtype=np.uint8)
    rest = values
    for group in range(groups - 1, -1, -1):
        rest, low = np.divmod(rest, 10_000)
        padded[:, 4 * group:4 * group + 4] = _FOUR_DIGITS[low]
    data[:, len(head):] = padded[:, 4 * groups - width:]
    offsets = np.arange(0, (n + 1) * size, size, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets),
                                                  pa.py_buffer(data)])


def _convert(values: Column, target: pa.DataType) -> pa.Array:
    if isinstance(values, Codes | Ids):
        return _strings(values)
    if target == MONEY:
        return _money(values)
    if pa.types.is_timestamp(target):
        return _timestamps(values)
    if pa.types.is_date32(target):
        return pa.array(values.astype(np.int32)).view(pa.date32())
    if pa.types.is_int32(target):
        ints = values.astype(np.int32)
        return pa.array(ints, mask=ints == INT_NULL)
    if pa.types.is_boolean(target):
        return pa.array(values.astype(bool))
    raise TypeError(f"no conversion of simulated values to {target}")


def _strings(values: Codes | Ids) -> pa.Array:
    if isinstance(values, Codes):
        codes = values.values.astype(np.int32)
        categories = pa.array(values.categories, pa.string())
        return pc.take(categories, pa.array(codes, mask=codes < 0 if (codes < 0).any() else None))
    return digits(values.prefix, values.values, values.width)


_FOUR_DIGITS = np.array([list(f"{i:04d}".encode()) for i in range(10_000)], dtype=np.uint8)
_ZEROS = {"buffer": pa.py_buffer(np.zeros(0, dtype=np.uint8))}


def _nulls(n: int, kind: pa.DataType) -> pa.Array:
    """An all-null column whose buffers are views of one shared zeroed buffer (no allocation)."""
    need = 16 * (n + 1)
    if _ZEROS["buffer"].size < need:
        _ZEROS["buffer"] = pa.py_buffer(np.zeros(max(need, 1 << 20), dtype=np.uint8))
    zeros = _ZEROS["buffer"]
    validity = zeros.slice(0, (n + 7) // 8)
    if pa.types.is_string(kind):
        return pa.Array.from_buffers(kind, n, [validity, zeros.slice(0, 4 * (n + 1)),
                                               zeros.slice(0, 0)], null_count=n)
    width = 1 if pa.types.is_boolean(kind) else kind.bit_width // 8
    size = (n + 7) // 8 if width == 1 and pa.types.is_boolean(kind) else width * n
    return pa.Array.from_buffers(kind, n, [validity, zeros.slice(0, size)], null_count=n)


def _timestamps(micros: np.ndarray) -> pa.Array:
    return pa.array(micros.astype(np.int64)).view(pa.timestamp("us", tz="UTC"))


def _money(amounts: np.ndarray) -> pa.Array:
    """Exact decimal128(18, 2) from float CNY: cents as 128-bit two's complement (NaN is null)."""
    missing = np.isnan(amounts)
    cents = np.round(np.where(missing, 0.0, amounts) * 100).astype(np.int64)
    words = np.empty((len(cents), 2), dtype=np.int64)
    words[:, 0] = cents
    words[:, 1] = cents >> 63
    validity = pa.array(~missing).buffers()[1] if missing.any() else None
    return pa.Array.from_buffers(MONEY, len(cents), [validity, pa.py_buffer(words.tobytes())],
                                 null_count=int(missing.sum()))
