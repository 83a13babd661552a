"""Every altcredit process keeps freed memory for a while (jemalloc under Polars)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from config.allocator import JEMALLOC_CONF

SHOW = "import {package}, polars, os; print(os.environ['_RJEM_MALLOC_CONF'])"


def conf_after_importing(package: str, **env: str) -> str:
    """The jemalloc configuration Polars hands its allocator in a fresh process."""
    clean = {key: value for key, value in os.environ.items() if key != "_RJEM_MALLOC_CONF"}
    result = subprocess.run([sys.executable, "-c", SHOW.format(package=package)],
                            env=clean | env, capture_output=True, text=True, check=True)
    return result.stdout.strip()


@pytest.mark.parametrize("package", ["features", "scoring", "web", "jobs", "config"])
def test_our_defaults_come_last_so_they_win_over_polars_own(package: str) -> None:
    found = conf_after_importing(package)
    assert found.endswith("," + JEMALLOC_CONF)
    assert "dirty_decay_ms:500" in found  # Polars' own, overridden


def test_an_operator_s_own_setting_wins() -> None:
    assert conf_after_importing("features", _RJEM_MALLOC_CONF="dirty_decay_ms:0").endswith(
        ",dirty_decay_ms:0")
