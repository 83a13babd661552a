"""``altcredit scores``: recompute, list, show and explain published scores."""

from __future__ import annotations

from datetime import date
from typing import Any

import click
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from sqlalchemy import Engine

from scoring.explanations import (
    explain,
    explain_since,
    explanation_document,
    summary_document,
)
from scoring.publish import PublishedScore, latest_published_as_of, list_scores
from web.cli import CliError, echo_json, migrated_engine, settings_from
from web.commands.params import DATE


@click.group()
def scores() -> None:
    """Recompute, list, show and explain scores."""


@scores.command("recompute")
@click.option("--as-of", "as_of", required=True, type=DATE, help="The as-of date (YYYY-MM-DD).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_context
def recompute_command(ctx: click.Context, as_of: date, as_json: bool) -> None:
    """Features, scores and explanations for every user, published atomically.

    Runs as the `recompute_scores` job, under the job-run ledger's lock: a recompute
    started here and one started by the worker for the same date never overlap.
    """
    from jobs.ledger import RunRefused
    from jobs.runner import JobFailed, run_job

    settings = settings_from(ctx)
    tasks: dict[str, TaskID] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                  transient=True, disable=as_json) as progress:

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.update(tasks[stage], completed=done, total=total)

        try:
            run = run_job(settings, "recompute_scores", as_of=as_of, progress=report)
        except RunRefused as exc:
            raise CliError(str(exc)) from None
        except JobFailed as exc:
            raise CliError(str(exc.__cause__ or exc)) from None
    summary = run.details
    if as_json:
        echo_json(summary)
        return
    click.echo(f"published {summary['as_of']}: {summary['n_scored']} scored, {summary['n_unscored']} "
               f"without a score (model {summary['model_version']}, snapshot {summary['snapshot_id']}, "
               f"{summary['seconds']:.1f} s)")


@scores.command("list")
@click.option("--as-of", "as_of", type=DATE, help="The as-of date (default: the latest published).")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 100_000),
              help="Rows to show.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_context
def list_command(ctx: click.Context, as_of: date | None, limit: int, as_json: bool) -> None:
    """Published scores of one as-of date, by user id."""
    engine = migrated_engine(ctx)
    day = as_of or latest_published_as_of(engine)
    rows = list_scores(engine, as_of=day, limit=limit) if day else []
    if as_json:
        echo_json({"as_of": day.isoformat() if day else None,
                   "scores": [summary_document(row) for row in rows]})
        return
    if not rows:
        click.echo("no published scores" + (f" as of {day}" if day else ""))
        return
    click.echo(f"as of {day} (model {rows[0].model_version})")
    for row in rows:
        click.echo(f"{row.user_id:<24} {_score_text(row)}")


@scores.command("show")
@click.option("--user", "user_id", required=True, help="The user id.")
@click.option("--as-of", "as_of", type=DATE, help="The as-of date (default: the latest).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_context
def show_command(ctx: click.Context, user_id: str, as_of: date | None, as_json: bool) -> None:
    """One user's published score, its band, dimensions and reasons."""
    score = _published(migrated_engine(ctx), user_id, as_of)
    if as_json:
        echo_json(summary_document(score))
        return
    click.echo(f"{score.user_id} as of {score.as_of}: {_score_text(score)}")
    for name, points in score.dimensions.items():
        click.echo(f"  {name:<16} {points:+8.1f}")
    for reason in score.reasons:
        click.echo(f"  {reason['code']}  {reason['points']:+7.1f}  {reason['text_en']}")


@scores.command("explain")
@click.option("--user", "user_id", required=True, help="The user id.")
@click.option("--as-of", "as_of", type=DATE, help="The as-of date (default: the latest).")
@click.option("--since", type=DATE, help="Also explain the change since this date's score.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_context
def explain_command(ctx: click.Context, user_id: str, as_of: date | None, since: date | None,
                    as_json: bool) -> None:
    """Points per feature and dimension, reasons, tips and (with --since) the change."""
    engine = migrated_engine(ctx)
    score = _published(engine, user_id, as_of)
    change = None
    if since is not None:
        try:
            change = explain_since(engine, user_id, since, score.as_of)
        except ValueError as exc:
            raise CliError(str(exc)) from None
    document = explanation_document(score, change)
    if as_json:
        echo_json(document)
        return
    _print_explanation(document)


def _published(engine: Engine, user_id: str, as_of: date | None) -> PublishedScore:
    score = explain(engine, user_id, as_of)
    if score is None:
        raise CliError(f"no published score for user {user_id}"
                       + (f" as of {as_of}" if as_of else ""))
    return score


def _score_text(score: PublishedScore) -> str:
    if score.score is None:
        return f"no score ({score.reason})"
    clipped = " (clipped)" if score.clipped else ""
    return f"{score.score}{clipped} {score.band_code}"


def _print_explanation(document: dict[str, Any]) -> None:
    click.echo(f"{document['user_id']} as of {document['as_of']}: score {document['score']}"
               f" ({'clipped from ' if document['clipped'] else 'unclipped '}"
               f"{_points(document['score_unclipped'])}), model {document['model_version']}")
    if document["score"] is None:
        click.echo(f"  no score: {document['reason']}")
        return
    click.echo(f"  base points {document['base_points']:.1f}")
    for name, points in document["dimensions"].items():
        click.echo(f"  {name:<16} {points:+8.1f}")
    click.echo("reasons:")
    for reason in document["reasons"]:
        click.echo(f"  {reason['code']}  {reason['points']:+7.1f}  {reason['text_en']}")
    if document["tips"]:
        click.echo("tips:")
    for tip in document["tips"]:
        click.echo(f"  +{tip['points']:.1f}  {tip['text_en']}")
    change = document.get("change")
    if change:
        click.echo(f"since {change['since']}: {change['difference']:+d} points")
        for mover in change["movers"]:
            click.echo(f"  {mover['text_en']}")


def _points(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"
