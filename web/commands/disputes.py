"""``altcredit disputes``: operators review consumers' disputes and resolve them.

``list`` shows disputes (newest first) with their deadline and, for upheld
ones, the partners to notify; ``resolve`` upholds or rejects one with a note.
Bad input ends in one line and a non-zero exit, and changes nothing.
"""

from __future__ import annotations

from typing import Any

import click
from sqlalchemy import Engine

from scoring.dispute_tables import STATUSES
from scoring.disputes import DisputeError, DisputeView, list_disputes, resolve_dispute
from web.cli import CliError, echo_json, migrated_engine, settings_from
from web.dispute_notices import partners_to_notify


@click.group()
def disputes() -> None:
    """Review consumer disputes: list them, uphold or reject one."""


@disputes.command("list")
@click.option("--status", type=click.Choice(STATUSES), help="Only disputes in this status.")
@click.option("--overdue", is_flag=True, help="Only open disputes past their deadline.")
@click.option("--user", "user_id", help="Only this user's disputes.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_context
def list_command(ctx: click.Context, status: str | None, overdue: bool, user_id: str | None,
                 as_json: bool) -> None:
    """Disputes, newest first, with deadlines and the partners to notify of upheld ones."""
    engine = migrated_engine(ctx)
    try:
        found = list_disputes(settings_from(ctx), user_id=user_id, status=status,
                              overdue=True if overdue else None)
    except DisputeError as exc:
        raise CliError(str(exc)) from None
    documents = [_document(engine, dispute) for dispute in found]
    if as_json:
        echo_json({"disputes": documents})
        return
    if not documents:
        click.echo("no disputes")
        return
    for document in documents:
        _print(document)


@disputes.command("resolve")
@click.argument("dispute_id", type=click.IntRange(min=1), metavar="ID")
@click.option("--uphold", is_flag=True, help="The dispute is right: the event stays excluded.")
@click.option("--reject", is_flag=True, help="The dispute is wrong: the event counts again.")
@click.option("--note", required=True, help="Why; shown to the user.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_context
def resolve_command(ctx: click.Context, dispute_id: int, uphold: bool, reject: bool, note: str,
                    as_json: bool) -> None:
    """Uphold or reject one open dispute (exactly one of --uphold, --reject)."""
    if uphold == reject:
        raise CliError("give exactly one of --uphold and --reject")
    engine = migrated_engine(ctx)
    try:
        dispute = resolve_dispute(settings_from(ctx), dispute_id, uphold=uphold, note=note)
    except DisputeError as exc:
        raise CliError(str(exc)) from None
    document = _document(engine, dispute)
    if as_json:
        echo_json(document)
        return
    _print(document)
    if dispute.status == "upheld" and not document["notify"]:
        click.echo("  no partner received this user's score while the event counted")


def _document(engine: Engine, dispute: DisputeView) -> dict[str, Any]:
    return {**dispute.as_dict(), "notify": partners_to_notify(engine, dispute)}


def _print(document: dict[str, Any]) -> None:
    flag = " OVERDUE" if document["overdue"] else ""
    click.echo(f"#{document['id']} {document['status']}{flag}  user {document['user_id']}  "
               f"{document['source']}/{document['event_id']} ({document['kind']})  "
               f"filed {document['filed_at'][:16]}  deadline {document['deadline'][:10]}")
    click.echo(f"  reason: {document['reason']}")
    if document["score_before"] is not None or document["score_after"] is not None:
        resolved = document["score_resolved"]
        click.echo(f"  score as of {document['as_of']}: {_score(document['score_before'])} -> "
                   f"{_score(document['score_after'])} without the event"
                   + ("" if resolved is None else f" -> {resolved} after the rejection"))
    if document["note"]:
        click.echo(f"  resolved {document['resolved_at'][:16]}: {document['note']}")
    for partner in document["notify"]:
        click.echo(f"  notify {partner['partner']}: {partner['lookups']} lookups "
                   f"{partner['first'][:10]}..{partner['last'][:10]} ({', '.join(partner['purposes'])})")


def _score(value: int | None) -> str:
    return "no score" if value is None else str(value)
