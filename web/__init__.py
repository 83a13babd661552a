"""The web app (partner API, consumer pages, operations endpoints) and the command line."""

from __future__ import annotations

import config.allocator  # noqa: F401  (jemalloc defaults, before Polars loads)
