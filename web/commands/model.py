"""``altcredit model``: train, evaluate, list, show, promote and report models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.exc import SQLAlchemyError

from config.database import get_engine, upgrade
from config.settings import Settings
from features.store import FeatureStoreError
from scoring import registry
from scoring.artefacts import RegistryError
from scoring.evaluate import Evaluation, EvaluationError, evaluate_table, read_table
from scoring.labels import LabelError
from scoring.report import write_report
from scoring.training import TrainingError, train_model, trainer_options
from web.cli import CliError, echo_json, settings_from


@click.group()
def model() -> None:
    """Train, evaluate, list, show, promote and report models."""


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


def _registry_settings(ctx: click.Context) -> Settings:
    settings = settings_from(ctx)
    try:
        upgrade(get_engine(settings))
    except SQLAlchemyError as exc:
        raise CliError(f"cannot open the database: {str(exc).splitlines()[0]}") from None
    return settings


@model.command("train")
@click.option("--engine", type=click.Choice(["polars", "spark"]), default="polars",
              show_default=True, help="Train on one machine, or with xgboost.spark.")
@click.option("--as-of", "as_of", multiple=True, type=click.DateTime(["%Y-%m-%d"]),
              help="An as-of date (repeat; the latest is held out). Default: monthly dates "
                   "ending at the latest with a complete outcome window.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_context
def train(ctx: click.Context, engine: str, as_of: tuple[Any, ...], as_json: bool) -> None:
    """Train, calibrate and register a new model version (the challenger)."""
    settings = _registry_settings(ctx)
    dates = [value.date() for value in as_of] or None
    stages = ("labels", "features", "fit", "calibrate", "register")
    try:
        with _progress() as progress:
            task = progress.add_task("training", total=len(stages))

            def advance(stage: str) -> None:
                progress.update(task, completed=stages.index(stage), description=stage)

            outcome = train_model(settings, as_of_dates=dates, engine=engine, progress=advance)
    except (TrainingError, LabelError, FeatureStoreError, RegistryError) as exc:
        raise CliError(str(exc)) from None
    if as_json:
        echo_json(outcome.model_dump(mode="json"))
        return
    click.echo(f"registered {outcome.version} ({outcome.role}) in {outcome.seconds:.1f}s: "
               f"out-of-time AUC {outcome.oot['auc']:.4f}, KS {outcome.oot['ks']:.4f}, "
               f"{outcome.n_train} training rows, {outcome.n_holdout} held out "
               f"({outcome.holdout_as_of})")


@model.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_context
def list_(ctx: click.Context, as_json: bool) -> None:
    """Every model version, newest first, with its role."""
    versions = registry.list_versions(_registry_settings(ctx))
    if as_json:
        echo_json([version.model_dump(mode="json") for version in versions])
        return
    if not versions:
        click.echo("no model versions yet: run `altcredit model train`")
    for version in versions:
        auc = "–" if version.oot_auc is None else f"{version.oot_auc:.4f}"
        click.echo(f"{version.id}  {version.role or '':10}  AUC {auc}  "
                   f"{version.created_at:%Y-%m-%d %H:%M}  {version.engine}")


@model.command("show")
@click.argument("version")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_context
def show(ctx: click.Context, version: str, as_json: bool) -> None:
    """One version: its metadata, verified against its checksum."""
    settings = _registry_settings(ctx)
    try:
        info = registry.get_version(settings, version)
        loaded = registry.load_version(settings, version)
    except RegistryError as exc:
        raise CliError(str(exc)) from None
    document = {**info.model_dump(mode="json"),
                **loaded.meta.model_dump(mode="json", exclude={"importance", "dimensions"})}
    if as_json:
        echo_json(document)
        return
    for key in ("id", "role", "created_at", "data_watermark", "definitions_hash", "engine",
                "checksum", "holdout_as_of", "train_as_of", "calibration", "metrics"):
        click.echo(f"{key}: {document.get(key)}")


@model.command("promote")
@click.argument("version")
@click.option("--force", is_flag=True, help="Promote past the AUC and PSI gates (recorded).")
@click.pass_context
def promote(ctx: click.Context, version: str, force: bool) -> None:
    """Make a version the champion, if it passes the promotion gates."""
    settings = _registry_settings(ctx)
    try:
        result = registry.promote(settings, version, force=force)
    except RegistryError as exc:
        raise CliError(str(exc)) from None
    gates = ("" if result.psi is None
             else f" (AUC drop {result.auc_drop:.4f}, PSI {result.psi:.3f})")
    click.echo(f"{result.version} is the champion{gates}"
               + (" — forced" if result.forced else ""))


@model.command("report")
@click.argument("version")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON document.")
@click.pass_context
def report(ctx: click.Context, version: str, as_json: bool) -> None:
    """Write a version's report (JSON and a self-contained HTML page)."""
    settings = _registry_settings(ctx)
    try:
        json_path, html_path = write_report(settings, version)
    except RegistryError as exc:
        raise CliError(str(exc)) from None
    if as_json:
        echo_json(json.loads(json_path.read_text(encoding="utf-8")))
        return
    click.echo(f"wrote {html_path} and {json_path}")
