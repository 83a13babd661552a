"""Compute the next item of an iterator in a thread while the caller consumes the current one.

A recompute alternates two kinds of work: numbers (TreeSHAP, tree walks,
XGBoost, Polars, all of which release the GIL) and the database writing the
previous chunk (SQLite and psycopg release it while they write). Running the
producer one item ahead lets the two overlap on a two-core machine. At most
``depth`` items wait in between, so memory stays bounded; an error in the
producer is raised in the consumer, and a consumer that stops early stops the
producer.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()
_POLL_SECONDS = 0.1


def ahead(items: Iterable[T], *, depth: int = 1) -> Iterator[T]:
    """Yield ``items`` in order, producing up to ``depth`` of them ahead in a daemon thread."""
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    waiting: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if not _put(waiting, item, stop):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            _put(waiting, _Failure(exc), stop)
            return
        _put(waiting, _DONE, stop)

    thread = threading.Thread(target=produce, name="prefetch", daemon=True)
    thread.start()
    try:
        while (item := waiting.get()) is not _DONE:
            if isinstance(item, _Failure):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def _put(waiting: queue.Queue[object], item: object, stop: threading.Event) -> bool:
    """Put ``item`` unless the consumer has gone; False when it has."""
    while not stop.is_set():
        try:
            waiting.put(item, timeout=_POLL_SECONDS)
            return True
        except queue.Full:
            continue
    return False
