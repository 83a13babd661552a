"""``altcredit simulate``: write a synthetic population as event files plus its ground truth."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from features.simulate import simulate as run_simulation
from web.cli import CliError, settings_from


@click.command()
@click.option("--users", type=int, required=True, help="How many users to simulate.")
@click.option("--months", type=int, required=True, help="Months of history, ending at --end.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed: the same seed writes the same files.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True,
              help="Folder for events-*.parquet, truth.parquet and manifest.json.")
@click.option("--end", "end_text", metavar="DATE",
              help="Last day of the timeline, exclusive (YYYY-MM-DD; default today, UTC).")
@click.option("--bad-rate", type=float,
              help="Share of users going bad within a year (default: setting simulate_bad_rate).")
@click.pass_context
def simulate(ctx: click.Context, users: int, months: int, seed: int, out_dir: Path,
             end_text: str | None, bad_rate: float | None) -> None:
    """Write a realistic synthetic population as event files, and a ground-truth file."""
    settings = settings_from(ctx)
    end = _parse_date(end_text)
    _check_writable(out_dir)
    with Progress(TextColumn("simulating"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("users"), TimeElapsedColumn(), transient=True) as bar:
        task = bar.add_task("simulate", total=max(users, 0))
        try:
            summary = run_simulation(
                users=users, months=months, seed=seed, out_dir=out_dir, end=end,
                bad_rate=settings.simulate_bad_rate if bad_rate is None else bad_rate,
                chunk_users=settings.simulate_chunk_users,
                progress=lambda done: bar.update(task, completed=done))
        except ValueError as exc:
            raise CliError(str(exc)) from None
        except OSError as exc:
            raise CliError(f"cannot write to {out_dir}: {exc.strerror or exc}") from None
    click.echo(f"simulated {summary.users} users x {summary.months} months "
               f"({summary.start} to {summary.end}): {summary.events} events in "
               f"{len(summary.event_files)} files, {summary.seconds:.1f} s "
               f"({summary.users / max(summary.seconds, 1e-9):,.0f} users/s)")
    click.echo(f"realised bad rate {summary.realised_bad_rate:.2%} (knob {summary.bad_rate:.2%}), "
               f"thin-file {summary.thin_file_share:.1%}")
    click.echo(f"events: {out_dir}/events-*.parquet  truth: {summary.truth_file}  "
               f"manifest: {summary.manifest_file}")


def _parse_date(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CliError(f"--end must be a date YYYY-MM-DD, got {text!r}") from None


def _check_writable(out_dir: Path) -> None:
    """Refuse an output that is a file, or a folder that cannot be created or written."""
    if out_dir.exists() and not out_dir.is_dir():
        raise CliError(f"--out {out_dir} exists and is not a folder")
    probe = out_dir
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not _can_write(probe):
        raise CliError(f"--out {out_dir} is not writable")


def _can_write(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)
