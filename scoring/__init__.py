"""Labels, training, calibration, the score scale, the registry, explanations and publishing."""

from __future__ import annotations

import config.allocator  # noqa: F401  (jemalloc defaults, before Polars loads)
