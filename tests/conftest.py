"""Shared fixtures: real settings, a temporary data home, and real databases.

``db`` runs each test on a SQLite file and, when ALTCREDIT_TEST_DATABASE_URL
is set (CI sets it), again on a fresh schema of a real PostgreSQL server.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy import Engine
from werkzeug.serving import make_server

from config.database import dispose_engines, get_engine, upgrade
from config.settings import Settings, load_settings
from web.app import create_app

POSTGRES_URL = os.environ.get("ALTCREDIT_TEST_DATABASE_URL", "")


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's own ALTCREDIT_* variables or writes to ./var."""
    for name in list(os.environ):
        if name.startswith("ALTCREDIT_") and name != "ALTCREDIT_TEST_DATABASE_URL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("ALTCREDIT_HOME", str(tmp_path / "home"))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A fresh, empty data home."""
    path = tmp_path / "home"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def settings(home: Path) -> Settings:
    """Settings for a fresh data home and its SQLite database."""
    return load_settings(home=home, log_format="text")


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once: tests that want a migrated database get a copy, which
    costs a fraction of running every migration again (``db`` still checks the head)."""
    path = tmp_path_factory.mktemp("migrated") / "migrated.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def migrated_postgres() -> Iterator[str]:
    """A PostgreSQL database migrated once, the template of each test's migrated one."""
    if not POSTGRES_URL:
        pytest.skip("set ALTCREDIT_TEST_DATABASE_URL to run the PostgreSQL variant")
    name = f"altcredit_template_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine = sa.create_engine(admin.url.set(database=name))
    upgrade(engine)
    engine.dispose()
    try:
        yield name
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _wants_migrated(request: pytest.FixtureRequest) -> bool:
    """Whether the test asked for a migrated database (``db`` and what builds on it)."""
    return "db" in request.fixturenames


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, home: Path) -> Iterator[str]:
    """A database URL: a SQLite file, then (when configured) a fresh PostgreSQL database;
    empty, or a copy of the migrated template when the test uses ``db``."""
    if request.param == "sqlite":
        if _wants_migrated(request):
            shutil.copyfile(request.getfixturevalue("migrated_sqlite"), home / "test.db")
        yield f"sqlite:///{home / 'test.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip("set ALTCREDIT_TEST_DATABASE_URL to run the PostgreSQL variant")
    name = f"altcredit_{uuid.uuid4().hex[:12]}"
    template = (f' TEMPLATE "{request.getfixturevalue("migrated_postgres")}"'
                if _wants_migrated(request) else "")
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"{template}'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        dispose_engines()
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def db_settings(home: Path, database_url: str) -> Settings:
    """Settings pointing at the parametrised database (SQLite, then PostgreSQL)."""
    return load_settings(home=home, database_url=database_url, log_format="text")


@pytest.fixture
def db(db_settings: Settings) -> Iterator[Engine]:
    """A migrated database engine, on SQLite and (in CI) on PostgreSQL."""
    engine = get_engine(db_settings)
    upgrade(engine)
    yield engine
    dispose_engines()


@pytest.fixture
def sqlite_db(settings: Settings, migrated_sqlite: Path) -> Iterator[Engine]:
    """A migrated SQLite engine only, for tests whose subject is not the database."""
    shutil.copyfile(migrated_sqlite, settings.path("altcredit.db"))
    engine = get_engine(settings)
    upgrade(engine)
    yield engine
    dispose_engines()


@pytest.fixture
def app(db_settings: Settings, db: Engine) -> Iterator[Flask]:
    """The real app on a migrated database (SQLite, then PostgreSQL in CI)."""
    application = create_app(db_settings)
    application.config["TESTING"] = True
    yield application


@pytest.fixture
def live_server(app: Flask) -> Iterator[LiveServer]:
    """The app served over real HTTP on a free loopback port, in a background thread."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    # A short poll interval: shutdown() waits for it, and every test that serves pays it.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield LiveServer(f"http://127.0.0.1:{server.server_port}", app)
    finally:
        server.shutdown()
        thread.join(timeout=10)


@dataclass(frozen=True)
class LiveServer:
    url: str
    app: Flask

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=10, **kwargs)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, self.url + path, timeout=10, **kwargs)
