"""Event taxonomy, ingestion, the event lake, the simulator, and the feature store."""

from __future__ import annotations

import config.allocator  # noqa: F401  (jemalloc defaults, before Polars loads)
