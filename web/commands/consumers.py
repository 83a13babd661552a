"""``altcredit users``: consumer accounts (the consumer-pages work adds ``disputes`` here)."""

from __future__ import annotations

import sys

import click

from config.database import get_engine, upgrade
from web.accounts import AccountError, create_account
from web.cli import CliError, settings_from


@click.group()
def users() -> None:
    """Consumer accounts: who can sign in to see their score and grant consent."""


@users.command("create")
@click.option("--user", "user_id", required=True, help="The platform user id the account is for.")
@click.option("--email", required=True, help="The email the user signs in with.")
@click.option("--password-stdin", is_flag=True, required=True,
              help="Read the password from standard input (one line), never from the command line.")
@click.pass_context
def create(ctx: click.Context, user_id: str, email: str, password_stdin: bool) -> None:
    """Create a consumer account."""
    password = sys.stdin.readline().rstrip("\r\n")
    engine = get_engine(settings_from(ctx))
    upgrade(engine)
    try:
        create_account(engine, user_id=user_id, email=email, password=password)
    except AccountError as exc:
        raise CliError(str(exc)) from None
    click.echo(f"account for {user_id} created")
