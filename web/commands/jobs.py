"""``altcredit jobs`` and ``altcredit worker``: the schedule, manual runs, and the ledger."""

from __future__ import annotations

from datetime import date
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from config.database import get_engine, upgrade
from config.schedules import load_schedules
from jobs.ledger import JobRun, Ledger, RunRefused
from jobs.runner import JobFailed, run_job
from web.cli import CliError, echo_json, settings_from
from web.commands.params import DATE
from web.logs import configure_logging


@click.group()
def jobs() -> None:
    """Scheduled jobs: what runs when, run one now, and the history of runs."""


@jobs.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_context
def list_jobs(ctx: click.Context, as_json: bool) -> None:
    """Every job with its schedule, next run and last run."""
    from jobs.worker import next_run_times

    settings = settings_from(ctx)
    engine = get_engine(settings)
    upgrade(engine)
    ledger = Ledger(engine)
    upcoming = next_run_times(settings)
    entries = []
    for name, schedule in load_schedules().items():
        last = ledger.last_run(name)
        entries.append({"name": name, "schedule": schedule.cron, "description": schedule.description_en,
                        "next_run": upcoming.get(name), "last_run": _run_summary(last) if last else None})
    if as_json:
        echo_json({"jobs": entries})
        return
    table = Table("job", "schedule (UTC)", "next run", "last run")
    for entry in entries:
        last = entry["last_run"]
        table.add_row(entry["name"], entry["schedule"], _when(entry["next_run"]),
                      f"{last['status']} {_when(last['started_at'])}" if last else "never")
    Console().print(table)


@jobs.command("run")
@click.argument("name")
@click.option("--as-of", type=DATE, help="The as-of date (default: today, UTC).")
@click.pass_context
def run(ctx: click.Context, name: str, as_of: date | None) -> None:
    """Run one job now, in the foreground, under the same locks and ledger as the worker."""
    from jobs.tasks import TASKS

    if name not in TASKS:
        raise CliError(f"unknown job {name!r}; known jobs: {', '.join(TASKS)}")
    settings = settings_from(ctx)
    console = Console(stderr=True)
    with console.status(f"running {name}") as status:
        try:
            finished = run_job(settings, name, as_of=as_of,
                               progress=lambda stage, done, total: status.update(
                                   f"{name}: {stage} {done}/{total}"))
        except RunRefused as exc:
            raise CliError(str(exc)) from None
        except JobFailed as exc:
            raise CliError(f"{exc} (run {exc.run.id}; details: altcredit jobs history {name})") from None
    counts = ", ".join(f"{key} {value}" for key, value in finished.rows.items()) or "done"
    click.echo(f"{name} succeeded for {finished.as_of_key} in {finished.duration_seconds:.1f}s: {counts}")


@jobs.command("history")
@click.argument("name", required=False)
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_context
def history(ctx: click.Context, name: str | None, limit: int, as_json: bool) -> None:
    """Past runs, newest first (of one job, or of all)."""
    if name and name not in load_schedules():
        raise CliError(f"unknown job {name!r}")
    settings = settings_from(ctx)
    engine = get_engine(settings)
    upgrade(engine)
    ledger = Ledger(engine)
    ledger.reap_stale()
    runs = ledger.history(name, limit=limit)
    if as_json:
        echo_json({"runs": [_run_summary(run) for run in runs]})
        return
    table = Table("started", "job", "as of", "status", "seconds", "rows / error")
    for item in runs:
        outcome = item.error or ", ".join(f"{k} {v}" for k, v in item.rows.items())
        table.add_row(_when(item.started_at), item.job_name, item.as_of_key, item.status,
                      f"{item.duration_seconds:.1f}" if item.duration_seconds is not None else "",
                      outcome)
    Console().print(table)


@click.command()
@click.pass_context
def worker(ctx: click.Context) -> None:
    """Run the scheduler in the foreground until interrupted."""
    from jobs.worker import build_scheduler

    settings = settings_from(ctx)
    configure_logging(settings)
    scheduler = build_scheduler(settings)
    Ledger(get_engine(settings)).reap_stale()
    click.echo(f"worker started with {len(scheduler.get_jobs())} jobs; Ctrl-C stops it", err=True)
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        scheduler.shutdown(wait=False)


def _run_summary(run: JobRun) -> dict[str, Any]:
    return {"id": run.id, "job": run.job_name, "as_of": run.as_of_key, "trigger": run.trigger,
            "status": run.status, "started_at": run.started_at, "finished_at": run.finished_at,
            "duration_seconds": run.duration_seconds, "rows": run.rows, "error": run.error,
            "details": run.details}


def _when(moment: Any) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"
