"""A training run: labels, point-in-time snapshots, fit, out-of-time check, calibration, registry.

The as-of dates are monthly and end at the latest date whose 12-month outcome
window is complete; that latest date is held out. The model is fitted on the
earlier dates (its search cross-validates within them), then the held-out
date serves twice: it fits the Platt calibration (two parameters, so the
out-of-time ranking measures are unaffected: calibration is monotone) and it
gives the out-of-time figures the registry and the promotion gates use.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any, Literal

import numpy as np
import polars as pl
import xgboost as xgb
from pydantic import BaseModel

from config.feature_definitions import FeatureSet, load_feature_definitions
from config.scorecard import Scorecard, load_scorecard
from config.settings import Settings
from features import lake
from features.store import training_frame
from scoring import metrics
from scoring.artefacts import Calibration, RegistryError, VersionMeta, new_version_id
from scoring.calibrate import PlattCalibrator
from scoring.fairness import protected_attributes
from scoring.frames import model_matrix
from scoring.labels import build_labels, data_end, training_as_of_dates
from scoring.registry import LoadedModel, VersionInfo, load_champion, register
from scoring.scale import final_score, probability_from_log_odds, score_from_margin
from scoring.train import ScoreTrainer

log = logging.getLogger(__name__)

Engine = Literal["polars", "spark"]
Progress = Callable[[str], None]


class TrainingError(ValueError):
    """A training run that cannot go ahead; ``str()`` is one line for the user."""


class TrainingOutcome(BaseModel):
    version: str
    role: str | None
    engine: str
    train_as_of: list[date]
    holdout_as_of: date
    n_train: int
    n_holdout: int
    train_bad_rate: float
    holdout_bad_rate: float
    oot: dict[str, float]
    calibration: dict[str, float]
    seconds: float


def trainer_options(settings: Settings) -> dict[str, Any]:
    """The trainer's search settings, as keyword arguments of ScoreTrainer."""
    return {
        "search_budget": settings.model_search_budget,
        "cv_folds": settings.model_cv_folds,
        "max_rounds": settings.model_max_rounds,
        "search_rows": settings.model_search_rows,
        "n_jobs": settings.model_threads,
    }


def model_features(definitions: FeatureSet, scorecard: Scorecard) -> list[str]:
    """The definitions' features in their order; a protected attribute is refused."""
    protected = set(scorecard.fairness.protected) | set(definitions.protected)
    named = [name for name in definitions.names if name in protected]
    if named:
        raise TrainingError(f"feature {named[0]!r} is a protected attribute; it may never be "
                            "a model input")
    return definitions.names


def default_as_of_dates(settings: Settings, scorecard: Scorecard) -> list[date]:
    """Monthly dates ending at the latest one with a complete outcome window."""
    mark = lake.watermark(settings)
    if mark is None:
        raise TrainingError("the event lake is empty: ingest events before training")
    end = data_end(lake.scan_events(settings, watermark=mark))
    if end is None:
        raise TrainingError("the event lake holds no events")
    return training_as_of_dates(min(end, mark), settings.model_training_dates, scorecard.label)


def train_model(
    settings: Settings,
    *,
    as_of_dates: Sequence[date] | None = None,
    engine: Engine = "polars",
    progress: Progress | None = None,
    trainer: Any | None = None,
) -> TrainingOutcome:
    """Train, calibrate and register a new version (the challenger)."""
    started = time.perf_counter()
    step = progress or (lambda _name: None)
    scorecard = load_scorecard()
    definitions = load_feature_definitions()
    names = model_features(definitions, scorecard)
    dates = sorted(set(as_of_dates or default_as_of_dates(settings, scorecard)))
    if len(dates) < 2:
        raise TrainingError("training needs at least two as-of dates: the last is held out")
    step("labels")
    labels = build_labels(settings, dates)
    step("features")
    frame = training_frame(settings, dates, labels)
    train, holdout = frame.filter(pl.col("as_of") < dates[-1]), frame.filter(
        pl.col("as_of") == dates[-1])
    _check_classes(train, "training dates")
    _check_classes(holdout, f"held-out date {dates[-1]}")
    step("fit")
    model = trainer or _trainer(settings, engine, definitions.directions)
    model.fit(train.select(names), train["bad"].to_numpy(), groups=train["user_id"].to_numpy())
    step("calibrate")
    margin = model.predict_margin(holdout.select(names))
    calibrator = PlattCalibrator().fit(margin, holdout["bad"].to_numpy())
    if calibrator.a_ <= 0:
        raise TrainingError("the model does not rank the held-out users (calibration slope "
                            f"{calibrator.a_:.3f}); not registered")
    step("register")
    champion = _comparable_champion(settings, definitions)
    scored = _holdout_frame(holdout, margin, calibrator, scorecard, champion, names)
    scored = scored.join(protected_attributes(settings, dates[-1]), on="user_id", how="left")
    summary = metrics.summary(scored["bad"].to_numpy(), scored["probability"].to_numpy())
    meta = _meta(settings, model, calibrator, scorecard, definitions, dates, engine, summary,
                 champion, shap_importance(model.booster_, holdout.select(names), model))
    info = register(settings, meta, model.booster_, scored)
    return _outcome(info, meta, train, holdout, summary, started)


def _trainer(settings: Settings, engine: Engine, directions: dict[str, int]) -> Any:
    if engine == "spark":
        from scoring.train_spark import SparkScoreTrainer

        return SparkScoreTrainer(monotone=directions, **trainer_options(settings))
    if engine != "polars":
        raise TrainingError(f"unknown engine {engine!r} (polars or spark)")
    return ScoreTrainer(monotone=directions, **trainer_options(settings))


def _check_classes(frame: pl.DataFrame, what: str) -> None:
    if frame.height == 0:
        raise TrainingError(f"no labelled users on the {what}")
    bads = int(frame["bad"].sum())
    if bads == 0 or bads == frame.height:
        raise TrainingError(f"the {what} hold only one class ({bads} bad of {frame.height})")


def _comparable_champion(settings: Settings, definitions: FeatureSet) -> LoadedModel | None:
    try:
        champion = load_champion(settings)
    except RegistryError as exc:
        log.warning("champion cannot be loaded, so it is not compared: %s", exc)
        return None
    if champion is None or champion.meta.definitions_hash != definitions.hash:
        return None
    return champion


def _holdout_frame(holdout: pl.DataFrame, margin: np.ndarray, calibrator: PlattCalibrator,
                   scorecard: Scorecard, champion: LoadedModel | None,
                   names: list[str]) -> pl.DataFrame:
    log_odds = calibrator.log_odds(margin)
    unclipped = score_from_margin(margin, calibrator.a_, calibrator.b_, scorecard.scale)
    columns = {
        "user_id": holdout["user_id"], "as_of": holdout["as_of"], "bad": holdout["bad"],
        "margin": margin, "probability": probability_from_log_odds(log_odds),
        "score_unclipped": unclipped, "score": final_score(unclipped, scorecard.scale),
    }
    if champion is not None:
        champion_margin = champion.predict_margin(holdout.select(champion.meta.feature_names))
        cal = champion.meta.calibration
        columns["champion_score"] = final_score(
            score_from_margin(champion_margin, cal.a, cal.b, scorecard.scale), scorecard.scale)
    return pl.DataFrame(columns)


def _meta(settings: Settings, model: Any, calibrator: PlattCalibrator, scorecard: Scorecard,
          definitions: FeatureSet, dates: list[date], engine: str, summary: dict[str, float],
          champion: LoadedModel | None, importance: dict[str, float]) -> VersionMeta:
    created = datetime.now(UTC)
    return VersionMeta(
        version=new_version_id(created), created_at=created,
        data_watermark=lake.watermark(settings), definitions_hash=definitions.hash,
        engine=engine, feature_names=list(model.feature_names_),
        categories=dict(model.categories_), monotone=dict(model.monotone),
        params={**model.params_, "cv_auc": model.cv_auc_}, n_rounds=model.n_rounds_,
        calibration=Calibration(a=calibrator.a_, b=calibrator.b_), scale=scorecard.scale,
        train_as_of=dates[:-1], holdout_as_of=dates[-1], metrics=summary,
        dimensions={feature.name: feature.dimension for feature in definitions.features},
        compared_with=None if champion is None else champion.version, importance=importance,
    )


def shap_importance(booster: xgb.Booster, features: pl.DataFrame, model: Any, *,
                    rows: int = 20_000, seed: int = 0) -> dict[str, float]:
    """Mean absolute TreeSHAP contribution of each feature on (a sample of) the held-out users."""
    if features.height > rows:
        features = features.sample(rows, seed=seed)
    matrix = model_matrix(features, model.feature_names_, model.categories_)
    contributions = booster.predict(xgb.DMatrix(matrix, enable_categorical=True, missing=np.nan),
                                    pred_contribs=True)
    mean_abs = np.abs(contributions[:, :-1]).mean(axis=0)
    return {name: float(value) for name, value in zip(model.feature_names_, mean_abs, strict=True)}


def _outcome(info: VersionInfo, meta: VersionMeta, train: pl.DataFrame, holdout: pl.DataFrame,
             summary: dict[str, float], started: float) -> TrainingOutcome:
    return TrainingOutcome(
        version=info.id, role=info.role, engine=meta.engine, train_as_of=meta.train_as_of,
        holdout_as_of=holdout["as_of"][0], n_train=train.height, n_holdout=holdout.height,
        train_bad_rate=float(train["bad"].mean()), holdout_bad_rate=float(holdout["bad"].mean()),
        oot=summary, calibration={"a": meta.calibration.a, "b": meta.calibration.b},
        seconds=round(time.perf_counter() - started, 2),
    )

