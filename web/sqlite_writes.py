"""One writer at a time per process on SQLite, queued on a lock rather than in SQLite's busy loop.

SQLite lets one connection write at a time; the others wait in its busy
handler, which sleeps 1, 2, 5, 10 ... ms between tries. With threaded workers
a writer can also lose the GIL for a whole switch interval while it holds the
lock, so waiters pile up sleeping. Taking a process-wide lock around the short
write transactions of the partner API queues them instead (a waiter wakes the
moment the lock is free); writers in other processes still meet SQLite's own
locking. PostgreSQL needs none of this: its writers do not block each other here.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager, nullcontext

from sqlalchemy import Connection, Engine

_lock = threading.Lock()


def write_lock(bind: Engine | Connection) -> AbstractContextManager[object]:
    """A context manager to hold around a write transaction: the lock on SQLite, nothing elsewhere."""
    return _lock if bind.dialect.name == "sqlite" else nullcontext()
