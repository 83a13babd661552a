"""The altcredit CLI as a user runs it: a real subprocess, exit codes, one-line errors."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from config.database import expected_heads
from config.settings import Settings
from web.cli import COMMANDS

ALTCREDIT = [sys.executable, "-m", "web.cli"]


def run(*args: str, env: dict[str, str] | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ALTCREDIT, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, fragment: str) -> None:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("altcredit: ")
    assert fragment in lines[0]
    assert "Traceback" not in result.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_help_lists_every_command_group_of_the_design() -> None:
    result = run("--help")
    assert result.returncode == 0
    design_groups = ["demo", "simulate", "ingest", "events", "features", "model", "scores", "jobs",
                     "worker", "partners", "consents", "inquiries", "users", "serve", "db", "version"]
    for group in design_groups:
        assert group in COMMANDS
        assert f"  {group} " in result.stdout


def test_version_prints_the_installed_version() -> None:
    result = run("version")
    assert result.returncode == 0
    assert result.stdout.strip()[0].isdigit()


def test_unknown_command_is_one_line() -> None:
    assert_one_line_error(run("frobnicate"), 2, "No such command")


def test_bad_option_value_is_one_line() -> None:
    assert_one_line_error(run("serve", "--port", "abc"), 2, "'abc' is not a valid integer")


def test_bad_setting_exits_2_naming_the_key() -> None:
    result = run("serve", env={"ALTCREDIT_SERVE_PORT": "abc"})
    assert_one_line_error(result, 2, "ALTCREDIT_SERVE_PORT")


def test_bad_config_file_exits_2(tmp_path: Path) -> None:
    result = run("db", "upgrade", env={"ALTCREDIT_CONFIG": str(tmp_path / "missing.toml")})
    assert_one_line_error(result, 2, "ALTCREDIT_CONFIG")


def test_port_in_use_is_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert_one_line_error(run("serve", "--port", str(port)), 1, "in use")


def test_db_upgrade_creates_the_schema(database_url: str, home: Path) -> None:
    result = run("db", "upgrade", env={"ALTCREDIT_DATABASE_URL": database_url, "ALTCREDIT_HOME": str(home)})
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout
    engine = sa.create_engine(database_url)
    try:
        if expected_heads():
            assert "alembic_version" in sa.inspect(engine).get_table_names()
        status = run("db", "status", "--json",
                     env={"ALTCREDIT_DATABASE_URL": database_url, "ALTCREDIT_HOME": str(home)})
        assert '"up_to_date": true' in status.stdout
    finally:
        engine.dispose()


def test_db_upgrade_on_an_unreachable_database_is_one_line() -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing"
    assert_one_line_error(run("db", "upgrade", env={"ALTCREDIT_DATABASE_URL": url}), 1, "cannot migrate")


def test_serve_answers_readyz_over_http(home: Path) -> None:
    port = free_port()
    server = subprocess.Popen([*ALTCREDIT, "serve", "--port", str(port), "--workers", "1"],
                              env={**os.environ, "ALTCREDIT_HOME": str(home)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        response = _wait_for(f"http://127.0.0.1:{port}/readyz", server)
        assert response.status_code == 200
        assert response.json()["status"] == "ready"
    finally:
        server.terminate()
        server.wait(timeout=30)


def _wait_for(url: str, server: subprocess.Popen[str], attempts: int = 200) -> httpx.Response:
    for _ in range(attempts):
        if server.poll() is not None:
            pytest.fail(f"server exited: {server.stderr.read() if server.stderr else ''}")
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            time.sleep(0.1)
    pytest.fail(f"no answer from {url}")


def test_serve_runs_sync_workers_on_sqlite_and_threads_on_postgresql(settings: Settings) -> None:
    """The worker classes the lookup benchmark measures by default (benchmarks/api.py)."""
    from web.commands.serve import _Gunicorn

    server = _Gunicorn(settings, bind="127.0.0.1:0", workers=2)
    assert (server.cfg.worker_class_str, server.cfg.workers) == ("sync", 2)
    postgres = settings.model_copy(update={"database_url": "postgresql+psycopg://u@127.0.0.1:1/db"})
    server = _Gunicorn(postgres, bind="127.0.0.1:0", workers=2)
    assert (server.cfg.worker_class_str, server.cfg.threads) == ("gthread", 4)
