"""``altcredit model``: train, evaluate, list, show, promote and report models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from config.settings import Settings
from scoring.evaluate import Evaluation, EvaluationError, evaluate_table, read_table
from web.cli import CliError, echo_json, settings_from


@click.group()
def model() -> None:
    """Train, evaluate, list, show, promote and report models."""


def trainer_options(settings: Settings) -> dict[str, Any]:
    """The trainer's search settings, as keyword arguments of ScoreTrainer."""
    return {
        "search_budget": settings.model_search_budget,
        "cv_folds": settings.model_cv_folds,
        "max_rounds": settings.model_max_rounds,
        "search_rows": settings.model_search_rows,
    }


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(),
                    TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                    transient=True)


@model.command("evaluate")
@click.option("--table", "table", required=True, type=click.Path(path_type=Path),
              help="A labelled CSV or Parquet file.")
@click.option("--target", required=True, help="The column holding the outcome (two values).")
@click.option("--folds", default=5, show_default=True, type=int, help="Stratified folds.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of folds and search.")
@click.option("--positive", default=None,
              help="The target value meaning bad (default: recognised from 1/bad/default/yes).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_context
def evaluate(ctx: click.Context, table: Path, target: str, folds: int, seed: int,
             positive: str | None, as_json: bool) -> None:
    """Cross-validated AUC, KS and Brier of the trainer on any labelled table."""
    settings = settings_from(ctx)
    try:
        frame = read_table(table)
        with _progress() as progress:
            task = progress.add_task("evaluating", total=folds)
            result = evaluate_table(
                frame, target, folds=folds, seed=seed, positive=positive,
                trainer_options=trainer_options(settings),
                on_fold=lambda done: progress.update(task, completed=done),
            )
    except EvaluationError as exc:
        raise CliError(str(exc)) from None
    if as_json:
        echo_json(result.model_dump())
        return
    _print_evaluation(result)


def _print_evaluation(result: Evaluation) -> None:
    click.echo(f"rows {result.n}, bad rate {result.bad_rate:.3f} (bad = {result.positive!r}), "
               f"{result.folds} folds, seed {result.seed}")
    click.echo(f"AUC   {result.auc:.4f} ± {result.auc_std:.4f}")
    click.echo(f"KS    {result.ks:.4f} ± {result.ks_std:.4f}")
    click.echo(f"Brier {result.brier:.4f} ± {result.brier_std:.4f}")
    for decision in result.columns:
        click.echo(f"  {decision.column}: {decision.action} ({decision.reason})")
