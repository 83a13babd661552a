"""A single score lookup reads everything it needs in one query.

``GET /v1/scores/{open_id}`` needs the calling partner (its public key, to
verify the signature), what the open id resolves to for that partner (the
user and the newest consent for the purpose) and the user's current published
score. One statement reads all three, so a lookup costs one read — the same
as a bare endpoint that only reads the score row — plus the one write of its
inquiry (:func:`web.inquiries.log_lookups`). Nothing is cached: a revoked
consent, a disabled partner or a newly published score is seen by the very
next lookup.

Only the columns an answer can disclose are read: never the feature values
or the tips.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from config.purposes import load_purposes
from scoring.publish import latest_score_set
from scoring.score_tables import ScoreHistory, ScoreSet
from web.consent import ACCESS_COLUMNS, Access, access_joins, access_of, is_open_id
from web.partners import PARTNER_COLUMNS, Partner, PartnerInfo, is_partner_name, partner_by_name, partner_info
from web.prepared import Prepared


@dataclass(frozen=True)
class SeenScore:
    """What an answer may show of a published score (``web.disclosure.ScoreLike``)."""

    user_id: str
    as_of: date
    score: int | None
    band_code: str | None
    model_version: str
    dimensions: dict[str, float]
    reasons: list[dict[str, Any]]
    status: str
    reason: str | None


@dataclass(frozen=True)
class Lookup:
    """What ``open_id`` resolves to for the calling partner, and the user's current score."""

    open_id: str
    purpose: str
    access: Access | None        # None: the open id is unknown to this partner
    score: SeenScore | None      # None: no published score (or no access)


_HISTORY, _SETS = ScoreHistory.__table__, ScoreSet.__table__
_SCORE_COLUMNS = (*(_HISTORY.c[name].label(f"score_{name}") for name in
                    ("as_of", "score", "band_code", "dimensions", "reasons", "status", "reason")),
                  _SETS.c.model_version.label("score_model_version"))

# Prepared once (:mod:`web.prepared`): it runs on every lookup. Outer joins, so that an unknown
# open id, a missing consent or a user never scored still returns the partner's row.
_LOOKUP = Prepared(
    access_joins(sa.select(*PARTNER_COLUMNS, *ACCESS_COLUMNS, *_SCORE_COLUMNS).select_from(Partner),
                 open_id=sa.bindparam("open_id"), partner_id=Partner.id, purpose=sa.bindparam("purpose"))
    .outerjoin(_HISTORY, sa.and_(_HISTORY.c.user_id == ACCESS_COLUMNS[0],
                                 _HISTORY.c.set_id == latest_score_set(ACCESS_COLUMNS[0])))
    .outerjoin(_SETS, _SETS.c.id == _HISTORY.c.set_id)
    .where(Partner.name == sa.bindparam("name"))
)


def read_lookup(connection: Connection, *, partner: str, open_id: str,
                purpose: str) -> tuple[PartnerInfo | None, Lookup]:
    """The partner called ``partner`` and what its lookup of ``open_id`` for ``purpose`` finds.

    An open id or purpose that cannot be valid is not queried (the lookup
    answers 404, or the route 400), nor is a partner name that cannot be one.
    """
    unknown = Lookup(open_id=open_id, purpose=purpose, access=None, score=None)
    if not is_open_id(open_id) or purpose not in load_purposes().codes:
        return partner_by_name(connection, partner), unknown
    if not is_partner_name(partner):
        return None, unknown
    row = _LOOKUP.first(connection, {"name": partner, "open_id": open_id, "purpose": purpose})
    if row is None:
        return None, unknown
    if row.user_id is None:
        return partner_info(row), unknown
    return partner_info(row), Lookup(open_id=open_id, purpose=purpose, access=access_of(row),
                                     score=_seen(row) if row.score_status is not None else None)


def _seen(row: Any) -> SeenScore:
    return SeenScore(user_id=row.user_id, as_of=row.score_as_of, score=row.score_score,
                     band_code=row.score_band_code, model_version=row.score_model_version,
                     dimensions=row.score_dimensions or {}, reasons=row.score_reasons or [],
                     status=row.score_status, reason=row.score_reason)
