"""The partner API's request and response shapes, as pydantic models for the OpenAPI document.

Answers are built by :mod:`web.disclosure` and sent as they are; these models
describe them (every field beyond ``open_id``, ``purpose`` and ``scope`` is
optional, because the consent's scope decides which appear).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from config.purposes import load_purposes

PurposeCode = Literal[load_purposes().codes]  # type: ignore[valid-type]
ScopeCode = Literal["pass", "band", "score", "score_history"]


class ScoreQuery(BaseModel):
    purpose: PurposeCode = Field(description="Why the partner asks; must match the user's consent.")


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    purpose: PurposeCode = Field(description="One purpose for every open id of the batch.")
    open_ids: list[str] = Field(min_length=1, description="Up to `partner_batch_max` (default 1,000) "
                                "open ids; more is refused with 413.")


class BandOut(BaseModel):
    code: str = Field(description="Stable band code, such as `good`.")
    name: str = Field(description="The band's name in the answer's language.")


class ReasonOut(BaseModel):
    code: str = Field(description="Stable reason code.")
    text: str = Field(description="What the reason means, in the answer's language.")
    points: float = Field(description="Points this reason cost (negative) or earned.")


class ScoreAnswer(BaseModel):
    """One lookup's answer: only what the consent's scope allows."""

    open_id: str
    purpose: str
    scope: ScopeCode
    passed: bool | None = Field(None, description="Scope `pass` only: whether the score reaches the "
                                "partner's threshold for this purpose.")
    status: str | None = Field(None, description="`scored`, `insufficient_data` or `not_scored`.")
    as_of: str | None = Field(None, description="Date of the published score (YYYY-MM-DD).")
    model_version: str | None = None
    band: BandOut | None = None
    reason: str | None = Field(None, description="Why there is no score, when there is none.")
    score: int | None = Field(None, description="Scopes `score` and `score_history`: 350-950.")
    dimensions: dict[str, float] | None = Field(None, description="Points per dimension.")
    reasons: list[ReasonOut] | None = Field(None, description="Up to 4 reasons, costliest first.")


class ProblemOut(BaseModel):
    """An RFC 9457 problem document (the `type` is stable; see the docs page for each)."""

    type: str
    title: str
    status: int
    detail: str | None = None
    request_id: str | None = None
    errors: list[dict[str, Any]] | None = None


class BatchItem(BaseModel):
    open_id: str
    status: int = Field(description="200 with `answer`, or the status of `problem`.")
    answer: ScoreAnswer | None = None
    problem: ProblemOut | None = None


class BatchAnswer(BaseModel):
    purpose: str
    results: list[BatchItem] = Field(description="One result per requested open id, in order.")


class HistoryItem(BaseModel):
    as_of: str
    status: str
    score: int | None = None
    band: BandOut | None = None
    model_version: str | None = None


class HistoryAnswer(BaseModel):
    open_id: str
    purpose: str
    scope: ScopeCode
    history: list[HistoryItem] = Field(description="Published scores, oldest first.")


class EventsRequest(BaseModel):
    events: list[dict[str, Any]] = Field(description="Event records in the flat lake schema (see "
                                         "docs/partner-api.md); `user_id` is the open id you hold, "
                                         "or the platform user id for a furnisher.")


class EventsAnswer(BaseModel):
    received: int
    accepted: int
    stored: int = Field(description="Events new to the lake.")
    duplicates: int = Field(description="Events already stored with the same content.")
    watermark: str | None = None
