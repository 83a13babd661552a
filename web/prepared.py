"""Prepared statements for the partner API's hot path: compiled once, run on the driver's cursor.

A single score lookup runs two short statements (:mod:`web.lookup`,
:func:`web.inquiries.log_lookups`). Through SQLAlchemy's execution layer each
costs several times what SQLite itself spends on it. A :class:`Prepared`
statement is a Core statement compiled once per dialect; running it binds
plain values (through the same type processors SQLAlchemy uses, so stored
values are identical), executes on the DBAPI cursor of the caller's pooled
connection and applies the result types. The SQL text never changes, so
sqlite3's statement cache and psycopg's automatic server-side preparation
apply to it.

The caller's SQLAlchemy :class:`~sqlalchemy.Connection` is only the holder of
the driver connection: statements run here are outside SQLAlchemy's
transaction bookkeeping, so the caller commits or rolls back with
:func:`commit` / :func:`rollback` (the pool rolls back anything left when the
connection goes back).
"""

from __future__ import annotations

import threading
from collections import namedtuple
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]              # bound parameter names, in the driver's order
    positional: bool
    defaults: dict[str, Any]            # values bound in the statement itself (LIMIT 1, a status ...)
    binds: tuple[Processor, ...]        # per name
    processed: tuple[tuple[int, Callable[[Any], Any]], ...]  # (index, processor) of columns that have one
    row: type | None                    # a namedtuple of the result columns' keys


class Prepared:
    """A Core statement compiled once per dialect and executed on the DBAPI cursor."""

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._by_dialect: dict[str, _Compiled] = {}
        self._lock = threading.Lock()

    def execute(self, connection: Connection, params: dict[str, Any]) -> Any:
        """Run with ``params`` (plain Python values) and return the DBAPI cursor (the caller closes it)."""
        compiled = self._compiled(connection.dialect)
        cursor = driver(connection).cursor()
        cursor.execute(compiled.sql, self._bound(compiled, params))
        return cursor

    @staticmethod
    def _bound(compiled: _Compiled, params: dict[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        values = compiled.defaults | params
        bound = [values[name] if process is None else process(values[name])
                 for name, process in zip(compiled.names, compiled.binds, strict=True)]
        return tuple(bound) if compiled.positional else dict(zip(compiled.names, bound, strict=True))

    def execute_many(self, connection: Connection, rows: list[dict[str, Any]]) -> None:
        """Run once per row of ``rows`` (one driver call)."""
        compiled = self._compiled(connection.dialect)
        bound = [self._bound(compiled, row) for row in rows]
        cursor = driver(connection).cursor()
        try:
            cursor.executemany(compiled.sql, bound)
        finally:
            cursor.close()

    def first(self, connection: Connection, params: dict[str, Any]) -> Any:
        """The first result row as a namedtuple of the statement's column keys, or None."""
        compiled = self._compiled(connection.dialect)
        cursor = self.execute(connection, params)
        try:
            raw = cursor.fetchone()
        finally:
            cursor.close()
        if raw is None:
            return None
        assert compiled.row is not None
        values = list(raw)
        for index, process in compiled.processed:
            if values[index] is not None:
                values[index] = process(values[index])
        return compiled.row._make(values)

    def _compiled(self, dialect: Dialect) -> _Compiled:
        found = self._by_dialect.get(dialect.name)
        if found is None:
            with self._lock:
                found = self._by_dialect.setdefault(dialect.name, _compile(self.statement, dialect))
        return found


def _compile(statement: ClauseElement, dialect: Dialect) -> _Compiled:
    compiled = statement.compile(dialect=dialect)
    positional = compiled.positiontup is not None
    names = tuple(compiled.positiontup) if positional else tuple(  # type: ignore[arg-type]
        name for name in compiled.params)
    binds = tuple(compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names)
    columns = list(getattr(statement, "exported_columns", []))  # a SELECT's columns, or RETURNING's
    results = [column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns]
    processed = tuple((index, process) for index, process in enumerate(results) if process is not None)
    row = namedtuple("Row", [column.key for column in columns], rename=True) if columns else None  # type: ignore[misc]
    defaults = {name: value for name, value in compiled.params.items() if value is not None}
    return _Compiled(sql=compiled.string, names=names, positional=positional, defaults=defaults,
                     binds=binds, processed=processed, row=row)


def driver(connection: Connection) -> Any:
    """The DBAPI connection (sqlite3 or psycopg) under a SQLAlchemy connection."""
    return connection.connection.driver_connection


def commit(connection: Connection) -> None:
    driver(connection).commit()


def rollback(connection: Connection) -> None:
    driver(connection).rollback()
