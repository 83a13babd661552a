"""The scheduler worker, one module per job, and the job-run ledger."""

from __future__ import annotations

import config.allocator  # noqa: F401  (jemalloc defaults, before Polars loads)
