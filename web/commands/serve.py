"""``altcredit serve``: gunicorn by default, Flask's development server with ``--dev``."""

from __future__ import annotations

import errno
import os
import shutil
import socket
from typing import Any

import click
from sqlalchemy.exc import SQLAlchemyError

from config.database import get_engine, upgrade
from config.settings import Settings
from web.cli import CliError, settings_from
from web.logs import configure_logging


@click.command()
@click.option("--host", help="Address to bind (default: setting serve_host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port (default: setting serve_port).")
@click.option("--workers", type=click.IntRange(1, 64), help="Gunicorn workers (serve_workers).")
@click.option("--dev", is_flag=True, help="Flask's development server with reloading, one process.")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, workers: int | None,
          dev: bool) -> None:
    """Serve the web app."""
    settings = settings_from(ctx)
    host = host or settings.serve_host
    port = port or settings.serve_port
    _check_bindable(host, port)
    settings.session_secret()  # create it once here, before workers fork
    configure_logging(settings)
    try:
        upgrade(get_engine(settings))
    except SQLAlchemyError as exc:
        raise CliError(f"cannot prepare the database: {type(exc).__name__}") from None
    _prepare_metrics_dir(settings)
    if dev:
        from web.app import create_app

        # Development is plain HTTP: a Secure session cookie would never come back.
        settings = settings.model_copy(update={"accounts_cookie_secure": False})
        create_app(settings).run(host=host, port=port, debug=True, use_reloader=False)
        return
    _Gunicorn(settings, bind=f"{host}:{port}", workers=workers or settings.serve_workers).run()


def _prepare_metrics_dir(settings: Settings) -> None:
    """Gunicorn workers share request metrics through files; start each server with none."""
    folder = settings.path("run", "metrics")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)


def _check_bindable(host: str, port: int) -> None:
    """Fail with one line now, rather than with gunicorn's retries, when the port is taken."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise CliError(f"cannot resolve host {host!r}") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            reason = "in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            raise CliError(f"cannot bind {host}:{port}: {reason}") from None


def _gunicorn_base() -> Any:
    from gunicorn.app.base import BaseApplication

    return BaseApplication


def worker_options(database_url: str) -> dict[str, Any]:
    """Gunicorn's worker class for the app's database (``benchmarks/api.py`` runs the same).

    SQLite: sync workers, one request at a time each. Its work is all CPU in
    the worker, and writers queue on one lock: a signed lookup cost the server
    about 1.05 ms of CPU in a sync worker against about 1.5 ms in a gthread
    worker of 4 threads (threads contend for the GIL and the write lock),
    while a bare endpoint cost the same in either. PostgreSQL: gthread workers
    of 4 threads, which wait on the database's round trips in parallel (a sync
    worker idles through each); within the pool's 10 connections.
    """
    if database_url.startswith("sqlite"):
        return {"worker_class": "sync"}
    return {"worker_class": "gthread", "threads": 4}


class _Gunicorn(_gunicorn_base()):  # type: ignore[misc]
    """Gunicorn run in-process; each worker builds its own app (and its own database pool)."""

    def __init__(self, settings: Settings, *, bind: str, workers: int) -> None:
        self.settings = settings
        self.options = {
            "bind": bind,
            "workers": workers,
            **worker_options(settings.resolved_database_url),
            "timeout": settings.serve_timeout,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": settings.log_level.lower(),
            "control_socket_disable": True,  # several servers may run on one machine (tests)
        }
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from config.database import dispose_engines
        from web.app import create_app

        dispose_engines()  # never share the master's connections with a forked worker
        return create_app(self.settings)
