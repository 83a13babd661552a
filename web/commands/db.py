"""``altcredit version`` and ``altcredit db``: what is installed and the schema it needs."""

from __future__ import annotations

import click
from sqlalchemy.exc import SQLAlchemyError

import config
from config.database import current_heads, expected_heads, get_engine, upgrade
from web.cli import CliError, echo_json, settings_from


@click.command()
def version() -> None:
    """Print the altcredit version."""
    click.echo(config.version())


@click.group()
def db() -> None:
    """The application database and its migrations."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply every pending migration (safe to run again)."""
    settings = settings_from(ctx)
    engine = get_engine(settings)
    try:
        upgrade(engine)
    except SQLAlchemyError as exc:
        raise CliError(f"cannot migrate {engine.url.render_as_string()}: {_first_line(exc)}") from None
    click.echo(f"database at {engine.url.render_as_string()} is up to date "
               f"({len(expected_heads())} migration branches)")


@db.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_context
def db_status(ctx: click.Context, as_json: bool) -> None:
    """Show the applied and the expected migration heads."""
    settings = settings_from(ctx)
    engine = get_engine(settings)
    try:
        current = current_heads(engine)
    except SQLAlchemyError as exc:
        raise CliError(f"cannot reach {engine.url.render_as_string()}: {_first_line(exc)}") from None
    expected = expected_heads()
    document = {"url": engine.url.render_as_string(), "current": sorted(current),
                "expected": sorted(expected), "up_to_date": current == expected}
    if as_json:
        echo_json(document)
        return
    state = "up to date" if document["up_to_date"] else "migrations pending"
    click.echo(f"{document['url']}: {state}")


def _first_line(exc: Exception) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
