"""Rate limits with flask-limiter: per partner on the API, per client address on sign-in.

Each app gets its own :class:`flask_limiter.Limiter` (so two apps in one
process never share counters); its storage is Redis when ``redis_url`` is set,
shared by every worker and host, and process memory otherwise — where each
gunicorn worker counts on its own, so the effective limit is the configured one
times the number of workers. Limits are hit explicitly, after a request's
signature is verified, so that unsigned noise never spends a partner's quota.
A spent limit answers 429 ``rate-limited`` with ``Retry-After``.
"""

from __future__ import annotations

import math
import time
from functools import lru_cache

from flask import Flask, current_app
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from limits import RateLimitItem, parse

from web.problems import Problem

EXTENSION = "altcredit_limiter"


def init_app(app: Flask) -> Limiter:
    """Attach this app's limiter (Redis or memory storage, by the settings)."""
    settings = app.extensions["altcredit"].settings
    limiter = Limiter(key_func=get_remote_address,
                      storage_uri=settings.redis_url or "memory://",
                      strategy="fixed-window", key_prefix="altcredit")
    limiter.init_app(app)
    app.extensions[EXTENSION] = limiter
    return limiter


@lru_cache(maxsize=256)
def _parsed(limit: str) -> RateLimitItem:
    return parse(limit)


def hit(limit: str, *keys: str) -> None:
    """Count one request against ``limit`` for ``keys``; raise the 429 problem when it is spent."""
    limiter: Limiter = current_app.extensions[EXTENSION]
    item = _parsed(limit)
    if limiter.limiter.hit(item, *keys):
        return
    reset_at, _remaining = limiter.limiter.get_window_stats(item, *keys)
    retry_after = max(1, math.ceil(reset_at - time.time()))
    raise Problem("rate-limited", f"rate limit {limit} exhausted",
                  headers={"Retry-After": str(retry_after)})
