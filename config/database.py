"""The application database: one engine factory, sessions, and the migrations.

SQLite (a file in the data home, WAL mode) is the zero-setup default;
PostgreSQL is used when ``database_url`` says so. Tables are SQLModel models
owned by the package they belong to; each package keeps its own Alembic
branch in ``<package>/migrations``, and ``upgrade`` applies every branch.
"""

from __future__ import annotations

import importlib.util
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlmodel import Session

from config.settings import Settings

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Packages that may own tables, in dependency order. Each keeps an Alembic branch
# (labelled with its name) in <package>/migrations when it has tables; the
# environment shared by all branches is config/migrations.
TABLE_PACKAGES = ("features", "scoring", "jobs", "web")

_engines: dict[tuple[str, float], Engine] = {}
_engines_lock = threading.Lock()


def get_engine(settings: Settings) -> Engine:
    """The process-wide engine for these settings' database (one pool per URL)."""
    url = settings.resolved_database_url
    key = (url, settings.sqlite_busy_timeout)
    with _engines_lock:
        if key not in _engines:
            _engines[key] = _create_engine(url, settings.sqlite_busy_timeout)
        return _engines[key]


def dispose_engines() -> None:
    """Close every pooled connection; for tests and for workers after a fork."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def _create_engine(url: str, busy_timeout: float) -> Engine:
    if not url.startswith("sqlite"):
        # Enough pooled connections for a threaded worker's threads, so none is opened per request.
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)
    engine = create_engine(url, connect_args={"timeout": busy_timeout, "check_same_thread": False})
    event.listen(engine, "connect", _sqlite_pragmas(busy_timeout))
    return engine


def _sqlite_pragmas(busy_timeout: float) -> Any:
    def on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cursor.close()

    return on_connect


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits when the block succeeds and rolls back when it raises."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


# -- migrations -------------------------------------------------------------


def version_locations() -> list[Path]:
    """The migration folders of every package that has one."""
    locations = []
    for package in TABLE_PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        folder = Path(next(iter(spec.submodule_search_locations))) / "migrations"
        if folder.is_dir() and any(folder.glob("*.py")):
            locations.append(folder)
    return locations


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", _joined(version_locations()))
    return cfg


def _joined(paths: list[Path]) -> str:
    return os.pathsep.join(str(path) for path in paths)


def upgrade(engine: Engine) -> None:
    """Apply every package's migrations up to its head; a no-op when already there."""
    cfg = alembic_config()
    with engine.begin() as connection:
        if not cfg.get_main_option("version_locations"):
            return
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "heads")


def downgrade_all(engine: Engine) -> None:
    """Drop everything the migrations created (tests of the migrations use it)."""
    cfg = alembic_config()
    if not cfg.get_main_option("version_locations"):
        return
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "base")


def expected_heads() -> set[str]:
    cfg = alembic_config()
    if not cfg.get_main_option("version_locations"):
        return set()
    return set(ScriptDirectory.from_config(cfg).get_heads())


def current_heads(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(MigrationContext.configure(connection).get_current_heads())


def is_migrated(engine: Engine) -> bool:
    """True when the database is reachable and at every package's head revision."""
    return current_heads(engine) == expected_heads()
