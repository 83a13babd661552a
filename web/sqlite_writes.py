"""One writer at a time on a SQLite database, queued on a lock rather than in SQLite's busy loop.

SQLite lets one connection write at a time; the others wait in its busy
handler, which *sleeps* 1, 2, 5, 10 ... ms between tries, however soon the
lock is free again. Under load that turns a 0.1 ms write into a wait of many
milliseconds for every writer that finds the lock taken (a gunicorn worker's
threads, and the other workers). So the partner API's short write
transactions take a lock first, which waiters sleep on in the kernel and wake
from the moment it is released: a process-wide thread lock, then an exclusive
``flock`` on a file beside the database, shared by every process on the host.
Writers that do not take it (jobs, ingestion) still meet SQLite's own
locking, so correctness never depends on it. PostgreSQL needs none of this:
its writers do not block each other here.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

from sqlalchemy import Connection, Engine

_locks: dict[str, _FileLock] = {}
_locks_guard = threading.Lock()


class _FileLock:
    """A thread lock plus an exclusive ``flock`` on one file, reopened after a fork."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.thread_lock = threading.Lock()
        self._fd: int | None = None
        self._pid = 0

    @contextmanager
    def held(self) -> Iterator[None]:
        with self.thread_lock:
            fd = self._descriptor()
            fcntl.flock(fd, fcntl.LOCK_EX)  # releases the GIL while it waits
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _descriptor(self) -> int:
        if self._fd is None or self._pid != os.getpid():  # a forked child needs its own open file
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            self._pid = os.getpid()
        return self._fd


def write_lock(bind: Engine | Connection) -> AbstractContextManager[object]:
    """A context manager to hold around a write transaction: the lock on SQLite, nothing elsewhere."""
    if bind.dialect.name != "sqlite":
        return nullcontext()
    database = bind.engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return _memory_lock
    with _locks_guard:
        lock = _locks.get(database)
        if lock is None:
            lock = _locks[database] = _FileLock(f"{database}.write-lock")
    return lock.held()


_memory_lock = threading.Lock()  # a database of this process only: the thread lock is enough
