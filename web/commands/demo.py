"""``altcredit demo``: the whole pipeline on a simulated population, then serve it."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from config.database import get_engine
from jobs.bootstrap import BootstrapError, Population, bootstrap
from jobs.runner import JobFailed
from web.cli import CliError, settings_from
from web.demo import DemoPeople, ensure_demo_people

MIN_MONTHS = 21  # twelve months of outcomes, six months of training dates, three of history before them
DEMO_TRAINING = {"model_search_budget": 3, "model_search_rows": 20_000}


@click.command()
@click.option("--users", type=click.IntRange(500, 2_000_000), default=20_000, show_default=True,
              help="People in the simulated population.")
@click.option("--months", type=click.IntRange(MIN_MONTHS, 120), default=24, show_default=True,
              help="Months of history, ending today.")
@click.option("--seed", type=int, default=7, show_default=True, help="Simulator seed.")
@click.option("--no-serve", is_flag=True, help="Stop after the pipeline instead of serving.")
@click.pass_context
def demo(ctx: click.Context, users: int, months: int, seed: int, no_serve: bool) -> None:
    """Simulate, ingest, build features, train, score; create a demo partner and consumer; serve."""
    # The demo trains with a lighter hyper-parameter search than production (fewer candidates,
    # searched on a sample) so that it is ready in minutes; `altcredit model train` uses the
    # configured search.
    settings = settings_from(ctx).model_copy(update=DEMO_TRAINING)
    population = Population(users=users, months=months, seed=seed, end=datetime.now(UTC).date())
    console = Console(stderr=True)
    columns = (TextColumn("{task.description:<10}"), BarColumn(),
               TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn())
    with Progress(*columns, console=console) as bars:
        tasks: dict[str, TaskID] = {}

        def report(stage: str, done: int, total: int | None) -> None:
            if stage not in tasks:
                for earlier in tasks.values():  # stages run one after another
                    _finish(bars, earlier)
                tasks[stage] = bars.add_task(stage, total=total)
            bars.update(tasks[stage], completed=done, total=total)

        try:
            summary = bootstrap(settings, population, progress=report)
        except (BootstrapError, JobFailed) as exc:
            raise CliError(str(exc)) from None
        for task in tasks.values():
            _finish(bars, task)
    people = ensure_demo_people(settings, get_engine(settings))
    reused = f" (reused: {', '.join(summary.reused)})" if summary.reused else ""
    console.print(f"population {summary.population}: {summary.events_stored:,} events, champion "
                  f"{summary.champion}, scores as of {', '.join(summary.score_dates)}{reused}")
    click.echo(_instructions(people, f"http://{settings.serve_host}:{settings.serve_port}"))
    if not no_serve:
        from web.commands.serve import serve

        # The demo serves plain HTTP on this machine, where a Secure cookie would never come back.
        root = ctx.find_root().obj
        root["settings"] = settings.model_copy(update={"accounts_cookie_secure": False})
        ctx.invoke(serve)


def _finish(bars: Progress, task: TaskID) -> None:
    total = bars.tasks[task].total or 1
    bars.update(task, completed=total, total=total)
    bars.stop_task(task)


def _instructions(people: DemoPeople, base_url: str) -> str:
    return f"""
A signed partner lookup ({people.partner}, purpose {people.purpose}):
  altcredit lookup {people.open_id} --purpose {people.purpose} --partner {people.partner} \\
      --key {people.key_file} --url {base_url}

The consumer {people.user_id}:
  sign in at {base_url}/signin as {people.email} with password {people.password}
  (credentials also in {people.key_file.rsplit('/', 1)[0]}/people.json)

Operators:
  altcredit scores explain --user {people.user_id}
  altcredit inquiries --user {people.user_id}
  altcredit jobs history
  API documentation: {base_url}/docs
"""
