"""``altcredit ingest FILE...`` and ``altcredit events``: event files into the lake, and a look at it."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from features.ingest import ingest_files
from features.ingest_errors import IngestError
from features.lake_stats import lake_stats
from features.lake_writer import compact
from web.cli import CliError, echo_json, settings_from


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the counts as one JSON document.")
@click.pass_context
def ingest(ctx: click.Context, files: tuple[Path, ...], as_json: bool) -> None:
    """Validate and append event files (Parquet, CSV, JSON Lines) to the lake, all or nothing."""
    settings = settings_from(ctx)
    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True,
                  disable=not console.is_terminal) as progress:
        tasks: dict[Path, int] = {}

        def advance(path: Path, done: int, total: int | None) -> None:
            if path not in tasks:
                tasks[path] = progress.add_task(f"ingest {path.name}", total=total)
            progress.update(tasks[path], completed=done)

        try:
            result = ingest_files(settings, list(files), progress=advance)
        except IngestError as exc:
            raise CliError(exc.one_line()) from None
    if as_json:
        echo_json(result.as_dict())
        return
    click.echo(f"read {result.received}, stored {result.stored}, duplicates {result.duplicates}"
               f" (watermark {result.watermark})")


@click.group()
def events() -> None:
    """Inspect and maintain the event lake."""


@events.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_context
def events_stats(ctx: click.Context, as_json: bool) -> None:
    """Events by kind and source, time ranges, late arrivals and corrections."""
    stats = lake_stats(settings_from(ctx))
    if as_json:
        echo_json(stats)
        return
    click.echo(f"events: {stats['events']} in {stats['files']} files "
               f"(watermark {stats['watermark']})")
    click.echo(f"event_time: {stats['event_time']['min']} .. {stats['event_time']['max']}")
    click.echo(f"ingested_at: {stats['ingested_at']['min']} .. {stats['ingested_at']['max']}")
    click.echo(f"late arrivals (known > {stats['late_after_days']:g} days after event_time): "
               f"{stats['late_arrivals']}")
    click.echo(f"corrections: {stats['corrections']} (voids {stats['voids']})")
    for title, counts in (("by kind", stats["by_kind"]), ("by source", stats["by_source"])):
        click.echo(f"{title}:")
        for name, count in counts.items():
            click.echo(f"  {name:<20} {count:>12}")


@events.command("compact")
@click.pass_context
def events_compact(ctx: click.Context) -> None:
    """Merge small lake files; no query's result changes."""
    result = compact(settings_from(ctx))
    click.echo(f"{result.files_before} files -> {result.files_after} files "
               f"({result.rows} rows; {result.deleted} retired files deleted)")
