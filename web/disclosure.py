"""Data minimisation: what a partner's answer holds under each consent scope, and nothing more.

Pure functions from a published score to the answer body and the list of the
fields it discloses (which the inquiry log records). ``pass`` answers only
whether the score reaches the partner's threshold for the purpose; ``band``
adds the band and its date; ``score`` adds the score, the five dimensions and
up to four reasons in the caller's language; ``score_history`` allows the same
and, on its own endpoint, the past scores.
"""

from __future__ import annotations

from typing import Any, Protocol

from config.scorecard import load_scorecard

MAX_REASONS = 4
LANGUAGES = ("en", "zh")


class ScoreLike(Protocol):
    """The fields of ``scoring.publish.PublishedScore`` that answers use."""

    user_id: str
    as_of: Any
    score: int | None
    band_code: str | None
    model_version: str
    dimensions: dict[str, float]
    reasons: list[dict[str, Any]]
    status: str
    reason: str | None


def band(code: str | None, language: str) -> dict[str, str] | None:
    if code is None:
        return None
    return {"code": code, "name": load_scorecard().band(code).name(language)}


def reasons(score: ScoreLike, language: str) -> list[dict[str, Any]]:
    """Up to four reasons (the published order: the costliest first), texts in one language."""
    key = "text_zh" if language == "zh" else "text_en"
    return [{"code": item["code"], "text": item.get(key) or item.get("text_en", ""),
             "points": round(float(item.get("points", 0.0)), 2)}
            for item in score.reasons[:MAX_REASONS]]


def answer(score: ScoreLike | None, *, open_id: str, purpose: str, scope: str, threshold: int,
           language: str) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The answer body for one lookup and the names of the fields it discloses."""
    body: dict[str, Any] = {"open_id": open_id, "purpose": purpose, "scope": scope}
    if scope == "pass":
        body["passed"] = bool(score is not None and score.score is not None and score.score >= threshold)
        return body, ("passed",)
    if score is None:
        body.update(status="not_scored", as_of=None, model_version=None, band=None)
        return body, ("status",)
    body.update(status=score.status, as_of=str(score.as_of), model_version=score.model_version,
                band=band(score.band_code, language))
    fields: tuple[str, ...] = ("status", "as_of", "model_version", "band")
    if score.score is None:
        body["reason"] = score.reason
        fields += ("reason",)
    if scope in ("score", "score_history"):
        body.update(score=score.score,
                    dimensions={name: round(float(points), 2) for name, points in score.dimensions.items()},
                    reasons=reasons(score, language))
        fields += ("score", "dimensions", "reasons")
    return body, fields


def history(scores: list[ScoreLike], *, open_id: str, purpose: str, scope: str,
            language: str) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The past published scores, oldest first (scope ``score_history`` only)."""
    items = [{"as_of": str(item.as_of), "status": item.status, "score": item.score,
              "band": band(item.band_code, language), "model_version": item.model_version}
             for item in scores]
    return {"open_id": open_id, "purpose": purpose, "scope": scope, "history": items}, ("history",)
