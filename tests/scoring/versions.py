"""Registering small hand-made model versions, for registry and report tests."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import polars as pl

from config.scorecard import load_scorecard
from config.settings import Settings
from scoring import registry
from scoring.artefacts import Calibration, VersionMeta, new_version_id
from scoring.calibrate import PlattCalibrator
from scoring.scale import final_score, probability_from_log_odds, score_from_margin
from scoring.train import ScoreTrainer
from tests.scoring.synthetic import monotone, population

SCALE = load_scorecard().scale


def fit_small() -> tuple[ScoreTrainer, PlattCalibrator]:
    features, bad, _ = population(1500, seed=4)
    trainer = ScoreTrainer(monotone=monotone(), search_budget=1, max_rounds=60).fit(features, bad)
    calibrator = PlattCalibrator().fit(trainer.predict_margin(features), bad)
    return trainer, calibrator


def register_version(settings: Settings, trained: tuple[ScoreTrainer, PlattCalibrator], *,
                     shift: float = 0.0, auc: float = 0.8, seed: int = 5,
                     n: int = 800) -> registry.VersionInfo:
    """A version of the fitted model whose holdout is a fresh synthetic sample."""
    trainer, calibrator = trained
    features, bad, _ = population(n, seed=seed)
    margin = trainer.predict_margin(features) + shift
    unclipped = score_from_margin(margin, calibrator.a_, calibrator.b_, SCALE)
    rng = np.random.default_rng(seed)
    holdout = pl.DataFrame({
        "user_id": [f"u{i}" for i in range(n)], "as_of": [date(2024, 2, 1)] * n, "bad": bad,
        "margin": margin, "probability": probability_from_log_odds(calibrator.log_odds(margin)),
        "score_unclipped": unclipped, "score": final_score(unclipped, SCALE),
        "gender": rng.choice(["female", "male"], n), "age_band": rng.choice(["18-24", "25-34"], n),
    })
    created = datetime.now(UTC)
    meta = VersionMeta(
        version=new_version_id(created), created_at=created, data_watermark=created,
        definitions_hash="d" * 64, engine="polars", feature_names=trainer.feature_names_,
        categories={}, monotone=monotone(), params=trainer.params_, n_rounds=trainer.n_rounds_,
        calibration=Calibration(a=calibrator.a_, b=calibrator.b_), scale=SCALE,
        train_as_of=[date(2024, 1, 1)], holdout_as_of=date(2024, 2, 1), metrics={"auc": auc},
        importance={name: float(i) for i, name in enumerate(trainer.feature_names_)},
    )
    return registry.register(settings, meta, trainer.booster_, holdout)
