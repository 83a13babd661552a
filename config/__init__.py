"""Settings, the database, and the declarative definitions that the rest of altcredit reads."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _package_version

import config.allocator  # noqa: F401  (jemalloc defaults, before Polars loads)


def version() -> str:
    """The installed altcredit version (``0+unknown`` when run from an uninstalled tree)."""
    try:
        return _package_version("altcredit")
    except PackageNotFoundError:
        return "0+unknown"
