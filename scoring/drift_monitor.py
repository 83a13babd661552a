"""The drift monitor: today's snapshot and scores against the champion's training population.

The champion's profile is built once, from the feature snapshots it was
trained on (``train_as_of`` in its metadata) scored by the champion itself,
and kept beside the other profiles; every run then bins the snapshot as of
the run's date on the same edges.
"""

from __future__ import annotations

import logging
from datetime import date

import numpy as np
import polars as pl

from config.scorecard import load_scorecard
from config.settings import Settings
from features.store import build_snapshot, load_snapshot
from scoring import drift
from scoring.registry import LoadedModel, load_champion
from scoring.scale import score_from_margin

logger = logging.getLogger(__name__)


class DriftMonitorError(RuntimeError):
    """Drift cannot be measured (no champion, no snapshot)."""


def monitor_drift(settings: Settings, *, as_of: date) -> drift.DriftReport:
    """Compare the snapshot as of ``as_of`` with the champion's profile; keep the report."""
    champion = load_champion(settings)
    if champion is None:
        raise DriftMonitorError("no champion model yet: train and promote one first")
    profile = drift.load_profile(settings, champion.version) or _build_profile(settings, champion)
    build_snapshot(settings, as_of=as_of)
    current = _columns(champion, load_snapshot(settings, as_of))
    report = drift.compare(profile, current, as_of=as_of, warn=settings.drift_psi_warn,
                           alarm=settings.drift_psi_alarm)
    drift.save_report(settings, report)
    logger.info("drift %s as of %s (worst %s)", report.status, as_of, report.worst(3))
    return report


def _build_profile(settings: Settings, champion: LoadedModel) -> drift.Profile:
    frames = []
    for day in champion.meta.train_as_of:
        build_snapshot(settings, as_of=day)  # point in time: rebuilding gives what training saw
        frames.append(load_snapshot(settings, day))
    training = pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame()
    if training.is_empty():
        raise DriftMonitorError(f"the training snapshots of {champion.version} are gone")
    profile = drift.build_profile(champion.version, _columns(champion, training))
    drift.save_profile(settings, profile)
    return profile


def _columns(model: LoadedModel, frame: pl.DataFrame) -> dict[str, np.ndarray]:
    """The model's numeric features and its unclipped scores, as float arrays."""
    scale = load_scorecard().scale
    calibration = model.meta.calibration
    columns = {"score": np.asarray(score_from_margin(model.predict_margin(frame), calibration.a,
                                                     calibration.b, scale), dtype=float)}
    for name in model.meta.feature_names:
        if name in frame.columns and frame.schema[name].is_numeric():
            columns[name] = frame[name].cast(pl.Float64).to_numpy()
    return columns
