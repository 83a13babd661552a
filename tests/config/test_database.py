"""The database: engine behaviour and migrations on SQLite and PostgreSQL."""

from __future__ import annotations

import importlib
import pkgutil

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine
from sqlmodel import SQLModel

from config.database import (
    TABLE_PACKAGES,
    current_heads,
    downgrade_all,
    expected_heads,
    get_engine,
    is_migrated,
    session_scope,
    upgrade,
)
from config.settings import Settings


def test_sqlite_runs_in_wal_mode_with_foreign_keys(settings: Settings) -> None:
    engine = get_engine(settings)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


def test_upgrade_reaches_every_head_and_is_idempotent(db: Engine) -> None:
    assert current_heads(db) == expected_heads()
    assert is_migrated(db)
    upgrade(db)
    assert current_heads(db) == expected_heads()


def test_downgrade_then_upgrade_round_trips(db: Engine) -> None:
    if not expected_heads():
        pytest.skip("no package has migrations yet")
    tables_before = set(sa.inspect(db).get_table_names())
    downgrade_all(db)
    assert not is_migrated(db)
    assert set(sa.inspect(db).get_table_names()) <= {"alembic_version"}
    upgrade(db)
    assert set(sa.inspect(db).get_table_names()) == tables_before


def test_migrations_create_exactly_the_declared_models(db: Engine) -> None:
    """Every SQLModel table matches what the migrations built, column for column."""
    _import_all_table_modules()
    with db.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, SQLModel.metadata)
    assert differences == []


def test_session_scope_rolls_back_on_error(db: Engine) -> None:
    with db.begin() as connection:
        connection.execute(sa.text("CREATE TABLE scratch (id INTEGER PRIMARY KEY)"))
    with pytest.raises(RuntimeError), session_scope(db) as session:
        session.execute(sa.text("INSERT INTO scratch (id) VALUES (1)"))
        raise RuntimeError("boom")
    with session_scope(db) as session:
        assert session.execute(sa.text("SELECT count(*) FROM scratch")).scalar() == 0
    with db.begin() as connection:
        connection.execute(sa.text("DROP TABLE scratch"))


def _import_all_table_modules() -> None:
    """Import every module of the table-owning packages, so SQLModel.metadata is complete."""
    for package_name in TABLE_PACKAGES:
        package = importlib.import_module(package_name)
        for module in pkgutil.walk_packages(package.__path__, prefix=f"{package_name}."):
            if ".migrations" in module.name or "spark" in module.name:
                continue
            importlib.import_module(module.name)
