"""A whole training run on a small simulated population, and the model CLI around it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from config.database import dispose_engines, get_engine, upgrade
from config.feature_definitions import load_feature_definitions
from config.settings import Settings, load_settings
from scoring import registry
from scoring.training import TrainingError, TrainingOutcome, train_model
from web.cli import cli

pytestmark = pytest.mark.slow

FAST = {"model_search_budget": 1, "model_max_rounds": 150, "model_threads": 1,
        "model_cv_folds": 2, "model_training_dates": 3}


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, TrainingOutcome]]:
    from features.ingest import ingest_files
    from features.simulate import simulate

    home = tmp_path_factory.mktemp("training")
    settings = load_settings(home=home / "home", log_format="text", **FAST)
    upgrade(get_engine(settings))
    simulate(users=1200, months=26, seed=3, out_dir=home / "sim", end=date(2026, 1, 1),
             bad_rate=0.08)
    ingest_files(settings, sorted((home / "sim").glob("events*.parquet")))
    yield settings, train_model(settings)
    dispose_engines()


def _cli(settings: Settings, *args: str) -> tuple[int, str]:
    env = {"ALTCREDIT_HOME": str(settings.home)} | {
        f"ALTCREDIT_{key.upper()}": str(value) for key, value in FAST.items()}
    result = CliRunner().invoke(cli, list(args), env=env)
    return result.exit_code, result.output


def test_training_holds_out_the_latest_complete_date(trained_home) -> None:
    _, outcome = trained_home
    assert outcome.holdout_as_of == date(2024, 12, 1)  # the data end before 2026-01-01
    assert outcome.train_as_of == [date(2024, 10, 1), date(2024, 11, 1)]
    assert outcome.oot["auc"] > 0.6
    assert outcome.role == "champion"


def test_held_out_mean_prediction_is_within_two_points_of_the_bad_rate(trained_home) -> None:
    settings, outcome = trained_home
    holdout = registry.load_version(settings, outcome.version).holdout
    assert abs(holdout["probability"].mean() - holdout["bad"].mean()) < 0.02


def test_version_pins_features_constraints_and_scale(trained_home) -> None:
    settings, outcome = trained_home
    meta = registry.load_version(settings, outcome.version).meta
    definitions = load_feature_definitions()
    assert meta.feature_names == definitions.names
    assert meta.monotone == definitions.directions
    assert meta.definitions_hash == definitions.hash
    assert "birth_year" not in meta.feature_names and "gender" not in meta.feature_names
    assert meta.scale.anchor_score == 600


def test_scores_follow_the_linear_calibration(trained_home) -> None:
    settings, outcome = trained_home
    model = registry.load_version(settings, outcome.version)
    holdout = model.holdout
    a, b = model.meta.calibration.a, model.meta.calibration.b
    expected = model.meta.scale.offset - model.meta.scale.factor * (a * holdout["margin"] + b)
    np.testing.assert_allclose(holdout["score_unclipped"].to_numpy(), expected.to_numpy())


def test_cli_lists_shows_and_reports_the_version(trained_home) -> None:
    settings, outcome = trained_home
    code, output = _cli(settings, "model", "list", "--json")
    assert code == 0, output
    assert json.loads(output)[0]["id"] == outcome.version
    code, output = _cli(settings, "model", "show", outcome.version, "--json")
    assert code == 0 and json.loads(output)["checksum"]
    code, output = _cli(settings, "model", "report", outcome.version)
    assert code == 0 and "report.html" in output
    assert (Path(settings.home) / "models" / outcome.version / "report.html").is_file()


def test_cli_refuses_promoting_the_champion_and_unknown_versions(trained_home) -> None:
    settings, outcome = trained_home
    code, output = _cli(settings, "model", "promote", outcome.version)
    assert code == 1 and "already the champion" in output
    code, output = _cli(settings, "model", "promote", "v-missing")
    assert code == 1 and "no model version 'v-missing'" in output


def test_a_single_as_of_date_is_refused(trained_home) -> None:
    settings, _ = trained_home
    before = registry.list_versions(settings)
    with pytest.raises(TrainingError, match="at least two as-of dates"):
        train_model(settings, as_of_dates=[date(2024, 12, 1)])
    assert registry.list_versions(settings) == before


@pytest.mark.spark
def test_spark_engine_trains_the_same_features_to_a_comparable_auc(trained_home) -> None:
    from scoring.train_spark import use_this_python

    settings, outcome = trained_home
    use_this_python()
    spark = train_model(settings, engine="spark")
    local = registry.load_version(settings, outcome.version).meta
    distributed = registry.load_version(settings, spark.version).meta
    assert distributed.engine == "spark"
    assert distributed.feature_names == local.feature_names
    assert distributed.monotone == local.monotone
    assert abs(spark.oot["auc"] - outcome.oot["auc"]) < 0.03
