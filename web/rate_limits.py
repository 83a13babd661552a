"""Rate limits: per partner on the API, per client address on sign-in.

Counting is done by ``limits``, the library flask-limiter is built on, with the
same storage URIs and fixed-window strategy: Redis when ``redis_url`` is set
(shared by every worker and host), process memory otherwise — where each
gunicorn worker counts on its own, so the effective limit is the configured
one times the number of workers. Limits are hit explicitly, after a request's
signature is verified, so unsigned noise never spends a partner's quota; the
extension's per-request hooks (which evaluate decorator limits on every
request) are not installed, as no route uses them. Each app has its own
counters. A spent limit answers 429 ``rate-limited`` with ``Retry-After``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import lru_cache

from flask import Flask, current_app
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter

from web.problems import Problem

EXTENSION = "altcredit_rate_limits"


class LazyMemoryStorage(MemoryStorage):
    """``limits``' memory storage, forgetting expired counters inline once a second.

    The stock storage starts a timer thread whenever its last one has finished,
    which under load means a thread start every few requests; counters already
    expire lazily on read, so sweeping now and then is enough.
    """

    STORAGE_SCHEME = ["altcredit-memory"]  # noqa: RUF012 (the registry reads a list)
    _next_sweep = 0.0

    def _MemoryStorage__schedule_expiry(self) -> None:
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + 1.0
            self._MemoryStorage__expire_events()  # type: ignore[attr-defined]


@dataclass
class RateLimits:
    storage: Storage
    strategy: FixedWindowRateLimiter


def init_app(app: Flask) -> RateLimits:
    """Attach this app's counters (Redis or memory storage, by the settings)."""
    settings = app.extensions["altcredit"].settings
    storage = storage_from_string(settings.redis_url or "altcredit-memory://")
    limits = RateLimits(storage=storage, strategy=FixedWindowRateLimiter(storage))
    app.extensions[EXTENSION] = limits
    return limits


@lru_cache(maxsize=1024)
def _counter(limit: str, *scope: str) -> tuple[RateLimitItem, str]:
    """The parsed limit and the storage key of its counter for ``scope`` (built once per pair)."""
    item = parse(limit)
    return item, item.key_for(*scope)


def hit(limit: str, *keys: str) -> None:
    """Count one request against ``limit`` for ``keys``; raise the 429 problem when it is spent."""
    limits: RateLimits = current_app.extensions[EXTENSION]
    scope = ("altcredit", *keys)
    item, key = _counter(limit, *scope)
    # FixedWindowRateLimiter.hit, with the key it would build for (item, *scope) built once.
    if limits.storage.incr(key, item.get_expiry(), amount=1) <= item.amount:
        return
    reset_at, _remaining = limits.strategy.get_window_stats(item, *scope)
    retry_after = max(1, math.ceil(reset_at - time.time()))
    raise Problem("rate-limited", f"rate limit {limit} exhausted",
                  headers={"Retry-After": str(retry_after)})
