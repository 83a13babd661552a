"""The ``altcredit`` command line: one group, commands loaded only when used.

Each area keeps its commands in ``web/commands/<area>.py``; this module only
names them, so ``altcredit --help`` is fast and lists every command of the
design even before its module is imported. Every failure a user can cause ends
in one line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from config.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:  # the CLI's start stays light: commands import the database on use
    from sqlalchemy import Engine

# name -> (module, attribute, one-line help). Order is the order of --help.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "version": ("web.commands.db", "version", "Print the altcredit version."),
    "db": ("web.commands.db", "db", "Apply database migrations."),
    "serve": ("web.commands.serve", "serve", "Serve the web app (gunicorn, or Flask's dev server)."),
    "demo": ("web.commands.demo", "demo", "Run the whole pipeline on a simulated population."),
    "simulate": ("web.commands.simulate", "simulate", "Write a synthetic population as event files."),
    "ingest": ("web.commands.events", "ingest", "Validate and append event files to the lake."),
    "events": ("web.commands.events", "events", "Inspect the event lake."),
    "features": ("web.commands.features", "features", "Build and inspect feature snapshots."),
    "model": ("web.commands.model", "model", "Train, evaluate, list and promote models."),
    "scores": ("web.commands.scores", "scores", "Recompute, list, show and explain scores."),
    "jobs": ("web.commands.jobs", "jobs", "List, run and review scheduled jobs."),
    "worker": ("web.commands.jobs", "worker", "Run the job scheduler."),
    "partners": ("web.commands.partners", "partners", "Register and manage partners."),
    "consents": ("web.commands.partners", "consents", "Grant and revoke consents."),
    "inquiries": ("web.commands.partners", "inquiries", "Who looked at a user's score."),
    "lookup": ("web.commands.partners", "lookup", "A signed partner score lookup."),
    "users": ("web.commands.consumers", "users", "Consumer accounts."),
    "disputes": ("web.commands.disputes", "disputes", "Review consumer disputes."),
}


class CliError(click.ClickException):
    """A user-facing failure: printed as one line, exit code 1 (or the one given)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class LazyGroup(click.Group):
    """A group whose commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module_name, attribute, help_text = COMMANDS[cmd_name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not module_name.startswith(exc.name):
                raise
            return _unavailable(cmd_name, help_text)
        command = getattr(module, attribute, None)
        return command if isinstance(command, click.Command) else _unavailable(cmd_name, help_text)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_text) for name, (_m, _a, help_text) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _unavailable(name: str, help_text: str) -> click.Command:
    def refuse(**_: Any) -> None:
        raise CliError(f"'{name}' is not available in this version of altcredit yet")

    return click.Command(
        name, callback=refuse, help=f"{help_text} (not available yet)",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True,
              help="Log to stderr (default: to logs/altcredit.log in the data home).")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """altcredit: an open personal credit score built on alternative data."""
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose


def settings_from(ctx: click.Context) -> Settings:
    """The settings for this invocation, loaded once; a bad setting exits 2 with one line."""
    root = ctx.find_root()
    root.ensure_object(dict)
    if "settings" not in root.obj:
        try:
            root.obj["settings"] = load_settings()
        except SettingsError as exc:
            raise CliError(str(exc), exit_code=2) from None
        from web.logs import configure_logging

        configure_logging(root.obj["settings"], to_file=not root.obj.get("verbose"))
    settings: Settings = root.obj["settings"]
    return settings


def migrated_engine(ctx: click.Context) -> Engine:
    """The invocation's database engine, migrated to the code's schema before first use."""
    from config.database import get_engine, upgrade

    engine = get_engine(settings_from(ctx))
    upgrade(engine)
    return engine


def echo_json(document: Any) -> None:
    """Print exactly one JSON document on stdout (the --json contract)."""
    click.echo(json.dumps(document, ensure_ascii=False, default=str, indent=2))


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point: run the CLI and turn every user error into one line."""
    try:
        result = cli.main(args=list(argv) if argv is not None else None,
                          prog_name="altcredit", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("altcredit: aborted", err=True)
        return 130
    except click.ClickException as exc:
        click.echo(f"altcredit: {_one_line(exc.format_message())}", err=True)
        return exc.exit_code
    except SettingsError as exc:
        click.echo(f"altcredit: {exc}", err=True)
        return 2
    except click.exceptions.Exit as exc:
        return exc.exit_code
    return result if isinstance(result, int) else 0


def _one_line(message: str) -> str:
    return " ".join(message.split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
