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
from contextlib import AbstractContextManager, nullcontext

from sqlalchemy import Connection, Engine

_locks: dict[str, _FileLock] = {}
_locks_guard = threading.Lock()


class _FileLock:
    """A thread lock plus an exclusive ``flock`` on one file, reopened after a fork.

    Itself the context manager to hold (a plain ``__enter__``/``__exit__``: every
    partner lookup takes it once, and a generator-based one costs more).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.thread_lock = threading.Lock()
        self._fd: int | None = None
        self._pid = 0
        self._held_fd = -1

    def __enter__(self) -> None:
        self.thread_lock.acquire()
        try:
            fd = self._descriptor()
            fcntl.flock(fd, fcntl.LOCK_EX)  # releases the GIL while it waits
        except BaseException:
            self.thread_lock.release()
            raise
        self._held_fd = fd

    def __exit__(self, *_exc: object) -> None:
        try:
            fcntl.flock(self._held_fd, fcntl.LOCK_UN)
        finally:
            self.thread_lock.release()

    def _descriptor(self) -> int:
        if self._fd is None or self._pid != os.getpid():  # a forked child needs its own open file
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            self._pid = os.getpid()
        return self._fd


def write_lock(bind: Engine | Connection) -> AbstractContextManager[object]:
    """A context manager to hold around a write transaction: the lock on SQLite, nothing elsewhere."""
    if bind.dialect.name != "sqlite":
        return _no_lock
    database = bind.engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return _memory_lock
    lock = _locks.get(database)  # a dict read is atomic; only creating one needs the guard
    if lock is None:
        with _locks_guard:
            lock = _locks.get(database)
            if lock is None:
                lock = _locks[database] = _FileLock(f"{database}.write-lock")
    return lock


_memory_lock = threading.Lock()  # a database of this process only: the thread lock is enough
_no_lock = nullcontext()  # reusable: it holds nothing
