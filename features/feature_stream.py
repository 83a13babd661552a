"""Resolved events reduced piece by piece into each user's aggregates.

Why streaming: a feature pass reads the rows of one or two kinds and a handful of
their columns. Each piece of the lake (a slice of a file, read on a thread) is
*prepared* on the reading thread (each row's user key: its rank in user-id order,
from the numbers the lake keeps (:mod:`features.lake_users`), or a hash of its id;
each row's age from D; which rows count), then *added* in the lake's order: its users
are numbered (:mod:`features.user_numbers`) and every pass reduces the piece's rows of its kinds
into per-user slots (:mod:`features.dense_pass`). Nothing of a piece is kept once
it is added, except its contact rows (the graph pass needs every user's aggregates
first) and the rows a "latest" aggregate compares. A piece of a file stored kind
by kind (:class:`KindRuns`) hands each pass slices of its rows, never a copy; rows
that do not count (after D, not known, touched by a correction) are masked out.

Each pass sees its rows in the lake's order whatever the size of the pieces, so
pieces of any size give the same bits.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from types import TracebackType

import numpy as np
import polars as pl

from features.dense_pass import THREADS, PassReducer, PassRows
from features.event_parts import (
    AGE,
    CHECK,
    KEY,
    KIND,
    SEEDS,
    KindRuns,
    Layout,
    age_expr,
    aggregate_columns,
    category_enums,
    derived_columns,
    needs_kind,
)
from features.lake_users import LakeUsers
from features.plan import Plan
from features.user_numbers import GivenNumbers, UserNumbers

CONTACT = "contact"
PRESENT = "_present"


@dataclass(frozen=True)
class Prepared:
    """A piece ready to add: its rows with key, check and age, its kind runs (when stored
    kind by kind), which rows count at all (None: every one), and which rows before D
    count."""

    keyed: pl.DataFrame
    runs: KindRuns | None
    keep: np.ndarray | None
    before: np.ndarray


class FeatureStream:
    """Every aggregate of a plan, for every user in the pieces added (in order).

    With ``lake_users``, every piece comes with its users' ranks (read from the lake);
    otherwise users are numbered as they come, keyed by a hash of ``user_id`` or, with
    ``hashed=False``, by ``user_id`` itself (the fallback after a hash collision, and a
    reference for tests). Use as a context manager (it holds the threads the reductions
    run on).
    """

    def __init__(self, plan: Plan, as_of: date, *, hashed: bool = True,
                 lake_users: LakeUsers | None = None) -> None:
        self.plan = plan
        self.layout = Layout.of(plan)
        self.as_of = as_of
        self.users: UserNumbers | GivenNumbers = (
            UserNumbers(hashed=hashed) if lake_users is None else GivenNumbers(lake_users))
        self.hashed = self.users.hashed
        self._reducers = {kinds: PassReducer(kinds, aggregates, as_of, before=not kinds)
                          for kinds, aggregates in plan.passes.items()}
        self._columns = {kinds: frozenset().union(*(aggregate_columns(a) for a in aggregates))
                         for kinds, aggregates in plan.passes.items()}
        self._with_kind = {kinds: any(needs_kind(a, kinds) for a in aggregates)
                           for kinds, aggregates in plan.passes.items()}
        self._contacts: list[pl.DataFrame] = []
        self._categories = category_enums()
        self._kind_enum = self._categories[KIND]
        self._kind_codes = {kind: code for code, kind in enumerate(self._kind_enum.categories)}
        self._pool = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="reduce")

    def __enter__(self) -> FeatureStream:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._pool.shutdown(wait=True)

    def key_expr(self) -> pl.Expr:
        """The key of each row's user when users are numbered as they come (a hash of
        the id, or the id itself)."""
        return pl.col("user_id").hash(SEEDS[0]) if self.hashed else pl.col("user_id")

    def prepare(self, events: pl.DataFrame | KindRuns, keep: pl.Series | None = None,
                ranks: np.ndarray | None = None) -> Prepared:
        """Key, check and age each row (lake columns; kinds and categories as strings or
        Enums) of these events, or of those in ``keep``; ``ranks``: each row's user's
        rank, with ``lake_users``. Safe on any thread."""
        runs = events if isinstance(events, KindRuns) else None
        base = events if runs is None else runs.base
        added: list[pl.Expr | pl.Series] = [age_expr(self.as_of)]
        if isinstance(self.users, GivenNumbers):
            assert ranks is not None, "a piece without its users' ranks"
            added.append(pl.Series(KEY, ranks))
        else:
            added.append(self.key_expr().alias(KEY))
            if self.hashed:
                added.append(pl.col("user_id").hash(SEEDS[1]).alias(CHECK))
        if runs is None or self.layout.spine_kind:
            added.append(pl.col(KIND).cast(self._kind_enum))
        keyed = base.with_columns(added)
        before = keyed.get_column(AGE).to_numpy() > 0
        kept = None if keep is None else keep.to_numpy()
        if kept is not None:
            before &= kept
        return Prepared(keyed, runs, kept, before)

    def add(self, piece: Prepared) -> None:
        """Reduce a prepared piece (pieces in the lake's order)."""
        self._reduce(piece, self.users.number(piece.keyed, piece.keep))

    def add_all(self, pieces: Iterable[Prepared], *, first: Callable[[], None] | None = None,
                ) -> None:
        """Reduce every piece, in order: each piece's users are numbered on a thread of
        their own while the piece before it is reduced (numbering waits on memory, and
        must see the pieces in order). ``first`` runs before the first reduction."""
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="number") as numbering:
            waiting: tuple[Prepared, Future[np.ndarray]] | None = None
            for piece in pieces:
                numbered = numbering.submit(self.users.number, piece.keyed, piece.keep)
                if waiting is not None:
                    self._reduce(waiting[0], waiting[1].result())
                elif first is not None:
                    first()
                waiting = piece, numbered
            if waiting is not None:
                self._reduce(waiting[0], waiting[1].result())

    def _reduce(self, piece: Prepared, idx: np.ndarray) -> None:
        users = self.users.count
        started = [future for kinds, reducer in self._reducers.items()
                   for future in reducer.add(self._pass_rows(piece, idx, kinds), users,
                                             self._pool)]
        if self.plan.contacts:
            columns = self.layout.kinds[CONTACT] | {KEY}
            frame, _, mask = self._kind_rows(piece, idx, (CONTACT,), columns, with_kind=False)
            self._contacts.append(frame if mask is None else frame.filter(pl.Series(mask)))
        for future in started:
            future.result()  # re-raises a loop's error

    def aggregates(self) -> pl.DataFrame:
        """Every user (sorted by user_id) with their key and every aggregate of the passes:
        the slots themselves, not copies (a float aggregate over no rows is NaN). Users
        numbered by the lake who have nothing as of D are there too, marked by a false
        ``PRESENT`` column."""
        names, keys = self.users.names(), self.users.keys()
        count = self.users.count
        results = {key: values for done in self._pool.map(
            lambda reducer: reducer.results(count), self._reducers.values())
            for key, values in done.items()}
        if not self.users.in_order:
            order = names.arg_sort().to_numpy()
            names, keys = names.gather(order), keys.gather(order)
            local = threading.local()

            def sort(values: np.ndarray) -> None:
                if not hasattr(local, "scratch"):
                    local.scratch = {}
                _sort_in_place(values, order, local.scratch)

            list(self._pool.map(sort, results.values()))  # numpy's gathers release the GIL
        columns = [names, keys, *(pl.Series(key, values) for key, values in results.items())]
        present = self.users.present
        if present is not None and not present.all():
            columns.append(pl.Series(PRESENT, present))
        return pl.DataFrame(columns)

    def contact_rows(self) -> pl.LazyFrame:
        """Every contact row before D that counts: key, user_id and what the graph reads."""
        return pl.concat(self._contacts, how="vertical", rechunk=False).lazy()

    def _pass_rows(self, piece: Prepared, idx: np.ndarray, kinds: tuple[str, ...]) -> PassRows:
        columns, with_kind = self._columns[kinds], self._with_kind[kinds]
        if not kinds:
            return PassRows(self._shape(piece.keyed, columns, with_kind), idx, piece.keep)
        frame, rows_idx, mask = self._kind_rows(piece, idx, kinds, columns, with_kind=with_kind)
        return PassRows(frame, rows_idx, mask)

    def _kind_rows(self, piece: Prepared, idx: np.ndarray, kinds: tuple[str, ...],
                   columns: frozenset[str], *, with_kind: bool,
                   ) -> tuple[pl.DataFrame, np.ndarray, np.ndarray | None]:
        """The piece's rows of these kinds with ``columns``, their user numbers, and which of
        them count (None: every one): slices of a piece stored kind by kind, else a copy
        of the rows that count."""
        runs = piece.runs
        if runs is None:
            codes = piece.keyed.get_column(KIND).to_physical().to_numpy()
            picked = piece.before & np.isin(codes, [self._kind_codes[kind] for kind in kinds])
            frame = self._shape(piece.keyed.filter(pl.Series(picked)), columns, with_kind)
            return frame, idx[picked], None
        frames, numbers, masks = [], [], []
        for kind in kinds:
            start, stop = runs.ranges.get(kind, (0, 0))
            rows = self._shape(runs.of_kind(kind, piece.keyed), columns, False)
            if with_kind:
                rows = rows.with_columns(pl.lit(kind, self._kind_enum).alias(KIND))
            frames.append(rows)
            numbers.append(idx[start:stop])
            masks.append(piece.before[start:stop])
        if len(frames) == 1:
            return frames[0], numbers[0], masks[0]
        return (pl.concat(frames, how="vertical", rechunk=False), np.concatenate(numbers),
                np.concatenate(masks))

    def _shape(self, events: pl.DataFrame, columns: frozenset[str],
               with_kind: bool) -> pl.DataFrame:
        """The age, ``columns`` (categories as Enums, derived ones computed) and the kind
        when asked: only the columns a pass reads, none copied."""
        derived = {name: expr for name, expr in derived_columns(
            events if "event_month" in columns else None).items() if name in columns}
        stored = sorted(name for name in columns
                        if name in events.columns and name not in derived and name != AGE)
        helper = [] if not derived or "event_time" in stored else ["event_time"]
        kind = [KIND] if with_kind and KIND not in stored else []
        rows = events.select(AGE, *stored, *kind, *helper)
        casts = [pl.col(name).cast(self._categories[name]) for name in stored
                 if name in self._categories and rows.schema[name] != self._categories[name]]
        rows = rows.with_columns(*casts, *(expr.alias(name) for name, expr in derived.items()))
        return rows.drop(helper)


def _sort_in_place(values: np.ndarray, order: np.ndarray,
                   scratch: dict[np.dtype, np.ndarray]) -> None:
    """``values[order]`` written over ``values``, through one scratch array per type:
    fresh memory for every aggregate's sorted copy would cost more than the gathers."""
    if values.dtype not in scratch:
        scratch[values.dtype] = np.empty(len(values), values.dtype)
    np.take(values, order, out=scratch[values.dtype])
    values[:] = scratch[values.dtype]
