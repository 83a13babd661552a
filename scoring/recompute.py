"""Recompute every score of an as-of date: champion model + feature snapshot -> explained scores -> publish.

The snapshot as of D is built when missing (features/store.py keeps it as
built afterwards). Users the minimum-data rule (scoring/eligibility.py) turns
away get a row without a score, with the rule's reason. Everyone else gets
the score, its explanation and tips, computed in chunks so memory stays flat,
and the whole set is published atomically (scoring/publish.py): readers keep
seeing the previous set of D until this one is complete.

The tips' reference table is built once per model version from the champion's
latest training snapshot and kept under ``<home>/explanations/<version>/``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl

from config.database import get_engine, upgrade
from config.scorecard import load_scorecard
from config.settings import Settings
from features.store import FeatureStoreError, build_snapshot, load_snapshot
from scoring.eligibility import scorable
from scoring.explain import Explainer
from scoring.prefetch import ahead
from scoring.publish import INSUFFICIENT_DATA, ScoreRecord, publish_scores
from scoring.record_json import ReasonJson, TipJson, points_json
from scoring.registry import LoadedModel, load_champion
from scoring.tips import TipAdvisor, TipReference

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
CHUNK_USERS = 20_000
TIP_REFERENCE_FILE = "tip_reference.json"


class RecomputeError(ValueError):
    """A recompute that cannot go ahead; ``str()`` is one line for the user."""


@dataclass(frozen=True)
class RecomputeSummary:
    as_of: date
    model_version: str
    snapshot_id: str
    set_id: int
    n_users: int
    n_scored: int
    n_unscored: int
    seconds: float


def recompute(settings: Settings, *, as_of: date, progress: Progress | None = None) -> RecomputeSummary:
    """Score, explain and publish every user of the snapshot as of ``as_of``."""
    started = time.perf_counter()
    engine = get_engine(settings)
    upgrade(engine)
    champion = load_champion(settings)
    if champion is None:
        raise RecomputeError("no champion model yet: run `altcredit model train` first")
    explainer = explainer_for(champion)
    _report(progress, "features", 0, 1)
    try:
        manifest = build_snapshot(settings, as_of=as_of)
        frame = load_snapshot(settings, as_of)
    except FeatureStoreError as exc:
        raise RecomputeError(str(exc)) from None
    snapshot_id = Path(manifest.path).name
    advisor = TipAdvisor(explainer, tip_reference(settings, champion, explainer, fallback=frame))
    records = score_records(frame, explainer, advisor, progress)
    from scoring.rescore import disputed_rows  # imported here: rescore builds on this module

    disputed = disputed_rows(settings, manifest, model_version=champion.version, explainer=explainer,
                             advisor=advisor)
    summary = publish_scores(engine, as_of=as_of, model_version=champion.version,
                             snapshot_id=snapshot_id, records=disputed.replace(records),
                             on_publish=disputed.log)
    result = RecomputeSummary(
        as_of=as_of, model_version=champion.version, snapshot_id=snapshot_id,
        set_id=summary.set_id, n_users=summary.n_scored + summary.n_unscored,
        n_scored=summary.n_scored, n_unscored=summary.n_unscored,
        seconds=round(time.perf_counter() - started, 3),
    )
    log.info("recomputed %s with %s: %d scored, %d without a score, %.1f s", as_of,
             champion.version, result.n_scored, result.n_unscored, result.seconds)
    return result


def explainer_for(model: LoadedModel) -> Explainer:
    """The explainer of a registered version, on the scale the version was calibrated for."""
    scorecard = load_scorecard()
    if model.meta.scale != scorecard.scale:
        scorecard = scorecard.model_copy(update={"scale": model.meta.scale})
    try:
        return Explainer(model.score_model(), scorecard=scorecard)  # type: ignore[arg-type]
    except ValueError as exc:
        raise RecomputeError(f"model {model.version} cannot be explained: {exc}") from None


def tip_reference(settings: Settings, model: LoadedModel, explainer: Explainer, *,
                  fallback: pl.DataFrame) -> TipReference:
    """The version's tip table: loaded when kept, else built from its latest training snapshot."""
    path = settings.path("explanations", model.version, TIP_REFERENCE_FILE)
    if path.is_file():
        return TipReference.load(path)
    frame = fallback
    if model.meta.train_as_of:
        try:
            frame = load_snapshot(settings, max(model.meta.train_as_of))
        except FeatureStoreError:
            log.warning("training snapshot of %s is gone; tips refer to the scored population",
                        model.version)
    reference = TipReference.fit(explainer, explainer.model.matrix(frame))
    reference.save(path)
    return reference


def score_records(frame: pl.DataFrame, explainer: Explainer, advisor: TipAdvisor,
                  progress: Progress | None = None) -> Iterator[ScoreRecord]:
    """Every user of ``frame`` as a row to publish: scored and explained with tips, or turned away.

    Users the minimum-data rule turns away come first (no score, the rule's reason); the
    others follow in chunks of ``CHUNK_USERS``. Also used for a one-user recompute.
    """
    rule = load_scorecard().min_data
    dimensions = {name: explainer.feature_set.get(name).dimension
                  for name in explainer.model.feature_names}
    eligible = scorable(frame, dimensions, rule).to_numpy()
    users = frame.get_column("user_id").cast(pl.String).to_list()
    for index in np.flatnonzero(~eligible):
        yield ScoreRecord(user_id=users[index], score=None, score_unclipped=None, band_code=None,
                          base_points=None, status=INSUFFICIENT_DATA, reason=rule.reason_code)
    rows = np.flatnonzero(eligible)
    writer = _ChunkWriter(frame, users, explainer, advisor)
    chunks = [rows[start:start + CHUNK_USERS] for start in range(0, rows.size, CHUNK_USERS)]
    done = 0
    for records in ahead(map(writer.records, chunks)):
        _report(progress, "scores", done, rows.size)
        yield from records
        done += len(records)
    _report(progress, "scores", rows.size, rows.size)


class _ChunkWriter:
    """A chunk of eligible users as rows to publish, every JSON text built for the chunk at once."""

    def __init__(self, frame: pl.DataFrame, users: list[str], explainer: Explainer,
                 advisor: TipAdvisor) -> None:
        self.frame, self.users, self.explainer, self.advisor = frame, users, explainer, advisor
        self.bands = [band.code for band in explainer.scorecard.bands]
        self.reason_json = ReasonJson(explainer.layout)
        self.tip_json = TipJson(explainer, advisor.reference)

    def records(self, chunk: npt.NDArray[np.int64]) -> list[ScoreRecord]:
        explainer, users, bands = self.explainer, self.users, self.bands
        values = explainer.model.matrix(self.frame[chunk])
        batch = explainer.explain_matrix(values)
        tips = self.tip_json.rows(self.advisor.choose(values), chunk.size)
        features = points_json(batch.points, explainer.model.feature_names)
        dimensions = points_json(batch.dimensions, explainer.layout.dimension_names)
        columns = zip(chunk.tolist(), batch.score.tolist(), batch.score_unclipped.tolist(),
                      batch.band.tolist(), features, dimensions, self.reason_json.rows(batch), tips,
                      strict=True)
        return [ScoreRecord(user_id=users[index], score=score, score_unclipped=unclipped,
                            band_code=bands[band], base_points=batch.base_points, features=points,
                            dimensions=dimension, reasons=reasons, tips=tip)
                for index, score, unclipped, band, points, dimension, reasons, tip in columns]


def _report(progress: Progress | None, stage: str, done: int, total: int) -> None:
    if progress is not None:
        progress(stage, done, total)
