"""The explanation API over published scores, for the CLI, the consumer pages and jobs.

``explain(engine, user_id, as_of)`` is the stored explanation of a published
score, ``explain_since(engine, user_id, since, as_of)`` why it changed since an
earlier score, ``tips(engine, user_id, as_of)`` its tips; ``explanation_document``
is the JSON shape of ``altcredit scores explain --json``.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Engine

from config.feature_definitions import load_feature_definitions
from config.scorecard import load_scorecard
from scoring.change import ScoreChange, explain_change
from scoring.publish import PublishedScore, current_score, score_at, score_history


def explain(engine: Engine, user_id: str, as_of: date | None = None) -> PublishedScore | None:
    """The published, explained score of ``as_of`` (default: the user's latest)."""
    return current_score(engine, user_id) if as_of is None else score_at(engine, user_id, as_of)


def tips(engine: Engine, user_id: str, as_of: date | None = None) -> list[dict[str, Any]]:
    score = explain(engine, user_id, as_of)
    return [] if score is None else score.tips


def explain_since(engine: Engine, user_id: str, since: date,
                  as_of: date | None = None) -> ScoreChange:
    """Why the score of ``as_of`` differs from the latest published score on or before ``since``.

    Raises ValueError (one line) when either score is missing or unscored.
    """
    after = explain(engine, user_id, as_of)
    if after is None:
        raise ValueError(f"no published score for user {user_id}"
                         + (f" as of {as_of}" if as_of else ""))
    earlier = [score for score in score_history(engine, user_id) if score.as_of <= since]
    if not earlier:
        raise ValueError(f"no published score for user {user_id} on or before {since}")
    before = earlier[-1]
    if before.as_of >= after.as_of:
        raise ValueError(f"--since {since} must be before the explained date {after.as_of}")
    return explain_change(before, after)


def explanation_document(score: PublishedScore, change: ScoreChange | None = None) -> dict[str, Any]:
    """Everything about one published score, as one JSON-ready document."""
    document: dict[str, Any] = {
        "user_id": score.user_id, "as_of": score.as_of.isoformat(), "status": score.status,
        "reason": score.reason, "score": score.score, "score_unclipped": score.score_unclipped,
        "clipped": score.clipped, "band": band_document(score.band_code),
        "model_version": score.model_version, "snapshot_id": score.snapshot_id,
        "base_points": score.base_points, "features": score.features,
        "dimensions": score.dimensions, "dimension_names": dimension_names(),
        "reasons": score.reasons, "tips": score.tips,
    }
    if change is not None:
        document["change"] = change.as_dict()
    return document


def summary_document(score: PublishedScore) -> dict[str, Any]:
    """A published score without its per-feature detail (``scores show`` and ``scores list``)."""
    return {
        "user_id": score.user_id, "as_of": score.as_of.isoformat(), "status": score.status,
        "reason": score.reason, "score": score.score, "band": band_document(score.band_code),
        "clipped": score.clipped, "model_version": score.model_version,
        "snapshot_id": score.snapshot_id, "dimensions": score.dimensions, "reasons": score.reasons,
    }


def band_document(code: str | None) -> dict[str, str] | None:
    if code is None:
        return None
    band = load_scorecard().band(code)
    return {"code": band.code, "en": band.en, "zh": band.zh}


def dimension_names() -> dict[str, dict[str, str]]:
    return {key: {"en": value.en, "zh": value.zh}
            for key, value in load_feature_definitions().dimensions.items()}
