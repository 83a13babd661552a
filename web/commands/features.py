"""``altcredit features``: build point-in-time snapshots, and look at the catalogue and vectors."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import click
import polars as pl
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from config.feature_definitions import FeatureDefinitionError, load_feature_definitions
from features.store import (
    STAGES,
    FeatureStoreError,
    SnapshotManifest,
    build_snapshot,
    latest_snapshot,
    list_snapshots,
    load_snapshot,
)
from web.cli import CliError, echo_json, settings_from
from web.commands.params import DATE, INSTANT


@click.group()
def features() -> None:
    """Build feature snapshots and inspect the catalogue and users' vectors."""


@features.command("build")
@click.option("--as-of", "as_of", type=DATE, required=True, help="Features as of this date (D).")
@click.option("--as-known-at", "as_known_at", type=INSTANT, default=None,
              help="Knowledge time T (default: D): only events known by then count.")
@click.option("--engine", type=click.Choice(["polars", "spark"]), default=None,
              help="Engine (default: setting features_default_engine).")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as one JSON document.")
@click.pass_context
def build(ctx: click.Context, as_of: date, as_known_at: datetime | None, engine: str | None,
          as_json: bool) -> None:
    """Build the snapshot as of D (known at T); the latest one is published online."""
    settings = settings_from(ctx)
    console = Console(stderr=True)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True,
                  disable=not console.is_terminal) as progress:
        task = progress.add_task("features", total=len(STAGES) + 1)

        def stage(name: str) -> None:
            progress.update(task, description=f"features: {name}", advance=1)

        try:
            manifest = build_snapshot(settings, as_of=as_of, as_known_at=as_known_at,
                                      engine=engine, progress=stage)  # type: ignore[arg-type]
            published = _publish_if_latest(settings, manifest, stage)
        except (FeatureStoreError, FeatureDefinitionError) as exc:
            raise CliError(str(exc)) from None
        except ImportError as exc:
            raise CliError(f"engine {engine} is not installed ({exc.name}): "
                           "pip install 'altcredit[spark]'") from None
    if as_json:
        echo_json({**manifest.model_dump(mode="json"), "published_online": published})
        return
    click.echo(f"snapshot as of {manifest.as_of} known at {manifest.as_known_at.isoformat()}: "
               f"{manifest.row_count} users x {len(manifest.features)} features "
               f"({manifest.engine}, {manifest.build_seconds:.1f} s)")
    click.echo(f"  {manifest.path}")
    if published is not None:
        click.echo(f"  online store: {published} vectors")


def _publish_if_latest(settings: Any, manifest: SnapshotManifest, stage: Any) -> int | None:
    from features.online import publish_if_latest

    stage("publish")
    return publish_if_latest(settings, manifest)


@features.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the catalogue as one JSON document.")
def list_features(as_json: bool) -> None:
    """The catalogue: every feature, its dimension, meaning and direction."""
    try:
        feature_set = load_feature_definitions()
    except FeatureDefinitionError as exc:
        raise CliError(str(exc), exit_code=2) from None
    rows = [{
        "name": f.name, "dimension": f.dimension,
        "dimension_en": feature_set.dimensions[f.dimension].en,
        "dimension_zh": feature_set.dimensions[f.dimension].zh,
        "description_en": f.description_en, "description_zh": f.description_zh,
        "direction": f.direction, "actionable": f.actionable, "window_days": f.window,
        "aggregation": f.aggregation, "kinds": list(f.kinds), "null_policy": f.null_policy,
    } for f in feature_set.features]
    if as_json:
        echo_json({"definitions_hash": feature_set.hash, "features": rows})
        return
    for row in rows:
        sign = {1: "+", -1: "-", 0: " "}[row["direction"]]
        flag = "*" if row["actionable"] else " "
        click.echo(f"{row['name']:<34} {row['dimension']:<15} {sign}{flag} {row['description_en']}")
    click.echo(f"{len(rows)} features (+ riskier when higher, - safer, * actionable); "
               f"definitions {feature_set.hash[:12]}")


@features.command("snapshots")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_context
def snapshots(ctx: click.Context, as_json: bool) -> None:
    """The snapshots in the offline store."""
    manifests = list_snapshots(settings_from(ctx))
    if as_json:
        echo_json({"snapshots": [m.model_dump(mode="json") for m in manifests]})
        return
    for m in manifests:
        click.echo(f"{m.as_of} known at {m.as_known_at.isoformat()}  {m.row_count:>9} users  "
                   f"{m.engine:<6} definitions {m.definitions_hash[:12]}")


@features.command("show")
@click.option("--user", "user_id", required=True, help="The user's id.")
@click.option("--as-of", "as_of", type=DATE, default=None,
              help="Snapshot date (default: the latest snapshot).")
@click.option("--as-known-at", "as_known_at", type=INSTANT, default=None,
              help="Knowledge time of the snapshot (default: its as-of date).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_context
def show(ctx: click.Context, user_id: str, as_of: date | None, as_known_at: datetime | None,
         as_json: bool) -> None:
    """One user's feature vector: feature name -> value."""
    settings = settings_from(ctx)
    if as_of is None:
        if as_known_at is not None:
            raise CliError("--as-known-at needs --as-of")
        latest = latest_snapshot(settings)
        if latest is None:
            raise CliError("no feature snapshot yet: run `altcredit features build --as-of DATE`")
        as_of = latest.as_of
    try:
        frame = load_snapshot(settings, as_of, as_known_at)
    except FeatureStoreError as exc:
        raise CliError(str(exc)) from None
    row = frame.filter(pl.col("user_id") == user_id)
    if row.is_empty():
        raise CliError(f"user {user_id} is not in the snapshot as of {as_of.isoformat()}")
    values = {name: value for name, value in row.row(0, named=True).items() if name != "user_id"}
    if as_json:
        echo_json({"user_id": user_id, "as_of": as_of.isoformat(),
                   "as_known_at": as_known_at.isoformat() if as_known_at else None,
                   "features": values})
        return
    click.echo(f"{user_id} as of {as_of.isoformat()}")
    for name, value in values.items():
        shown = "-" if value is None else f"{value:.6g}"
        click.echo(f"  {name:<34} {shown:>14}")
