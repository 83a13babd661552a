"""What each consumer page shows, computed from the published scores and the web tables.

The routes in :mod:`web.consumer` only parse, authorise, call one of these and
render. Everything here takes the signed-in user's id and reads that user's
rows only. Texts stay bilingual (``text_en``/``text_zh`` pairs from config)
until a template picks the request's language.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from config.event_families import load_event_families
from config.feature_definitions import load_feature_definitions
from config.purposes import load_purposes
from config.scorecard import MinDataRule, load_scorecard
from config.settings import Settings
from features.user_events import FAMILIES, EventPage, user_events
from scoring.change import ScoreChange
from scoring.disputes import DisputeView, list_disputes
from scoring.explanations import explain, explain_since
from scoring.publish import SCORED, PublishedScore, score_history
from web import charts
from web.consent import ConsentView, list_consents
from web.inquiries import list_inquiries

TOP_FACTORS = 5
EVENTS_PAGE_SIZE = 25
SMALLEST_FACTOR = 0.05  # points; smaller contributions are rounding noise, not factors


@dataclass(frozen=True)
class Factor:
    """One feature's points, described in both languages."""

    feature: str
    text_en: str
    text_zh: str
    points: float


@dataclass(frozen=True)
class DimensionRow:
    key: str
    name_en: str
    name_zh: str
    points: float


@dataclass(frozen=True)
class ScorePage:
    score: PublishedScore | None
    gauge: charts.Gauge


def score_page(engine: Engine, user_id: str) -> ScorePage:
    """The latest published score (scored or not) and its gauge."""
    score = explain(engine, user_id)
    shown = score.score if score is not None and score.status == SCORED else None
    return ScorePage(score=score, gauge=charts.gauge(load_scorecard(), shown))


def min_data_rule() -> MinDataRule:
    """The rule a score needs (config/scorecard.toml [min_data]): what would make a score possible."""
    return load_scorecard().min_data


def factors(score: PublishedScore, *, top: int = TOP_FACTORS) -> tuple[list[Factor], list[Factor]]:
    """The features that cost the most points and those that earned the most, in plain language."""
    feature_set = load_feature_definitions()
    described = []
    for name, points in score.features.items():
        if abs(points) < SMALLEST_FACTOR:
            continue
        try:
            feature = feature_set.get(name)
            en, zh = feature.description_en, feature.description_zh
        except KeyError:  # a feature of an older model, no longer defined
            en = zh = name
        described.append(Factor(feature=name, text_en=en, text_zh=zh, points=round(points, 1)))
    cost = sorted((f for f in described if f.points < 0), key=lambda f: (f.points, f.feature))
    earned = sorted((f for f in described if f.points > 0), key=lambda f: (-f.points, f.feature))
    return cost[:top], earned[:top]


def dimension_rows(score: PublishedScore) -> list[DimensionRow]:
    """The five dimensions in their defined order, with the score's points for each."""
    return [DimensionRow(key=key, name_en=dimension.en, name_zh=dimension.zh,
                         points=round(float(score.dimensions.get(key, 0.0)), 1))
            for key, dimension in load_feature_definitions().dimensions.items()]


def dimension_bars(rows: list[DimensionRow]) -> charts.Bars:
    return charts.diverging_bars({row.key: row.points for row in rows})


@dataclass(frozen=True)
class HistoryPage:
    scores: list[PublishedScore]
    line: charts.Line | None
    change: ScoreChange | None


def history_page(engine: Engine, user_id: str) -> HistoryPage:
    """Every published as-of date, the chart of the scored ones, and what moved since the one before."""
    scores = score_history(engine, user_id)
    scored = [item for item in scores if item.score is not None]
    line = charts.line_chart([(item.as_of, int(item.score)) for item in scored],  # type: ignore[arg-type]
                             load_scorecard()) if scored else None
    change = None
    if len(scored) >= 2:
        change = explain_since(engine, user_id, scored[-2].as_of, scored[-1].as_of)
    return HistoryPage(scores=scores, line=line, change=change)


@dataclass(frozen=True)
class InquiryRow:
    time: datetime
    partner: str
    purpose_en: str
    purpose_zh: str
    scope: str
    fields: list[str]


def inquiry_rows(engine: Engine, user_id: str) -> list[InquiryRow]:
    """Who looked at this user's score: when, which partner, why, under which scope, what they saw."""
    purposes = load_purposes()
    rows = []
    for item in list_inquiries(engine, user_id=user_id):
        purpose = _purpose_names(purposes, item["purpose"])
        rows.append(InquiryRow(time=datetime.fromisoformat(item["time"]), partner=item["partner"],
                               purpose_en=purpose[0], purpose_zh=purpose[1], scope=item["scope"],
                               fields=list(item["fields"])))
    return rows


@dataclass(frozen=True)
class ConsentRow:
    consent: ConsentView
    purpose_en: str
    purpose_zh: str

    @property
    def state(self) -> str:
        return self.consent.state


def consent_groups(engine: Engine, user_id: str) -> dict[str, list[ConsentRow]]:
    """This user's consents by state: active, expired, revoked (newest first in each)."""
    purposes = load_purposes()
    groups: dict[str, list[ConsentRow]] = {"active": [], "expired": [], "revoked": []}
    for consent in list_consents(engine, user_id=user_id):
        en, zh = _purpose_names(purposes, consent.purpose)
        row = ConsentRow(consent=consent, purpose_en=en, purpose_zh=zh)
        groups[row.state].append(row)
    return groups


def _purpose_names(purposes: Any, code: str) -> tuple[str, str]:
    try:
        purpose = purposes.purpose(code)
    except KeyError:  # a purpose retired from config since
        return code, code
    return purpose.en, purpose.zh


@dataclass(frozen=True)
class DataPage:
    families: dict[str, Any]      # family -> its names (config/event_families.toml)
    events: EventPage
    pages: int
    disputed: set[tuple[str, str]]  # (source, event_id) under an open dispute
    disputes: list[DisputeView]


def data_page(settings: Settings, user_id: str, *, family: str | None, page: int) -> DataPage | None:
    """One page of the user's events of one family and their disputes; None for a bad family or page."""
    family = family or next(iter(FAMILIES))
    if family not in FAMILIES or page < 1:
        return None
    events = user_events(settings, user_id, family=family, page=page, page_size=EVENTS_PAGE_SIZE)
    pages = max(1, -(-events.total // EVENTS_PAGE_SIZE))
    if page > pages:
        return None
    disputes = list_disputes(settings, user_id=user_id)
    disputed = {(item.source, item.event_id) for item in disputes if item.status == "open"}
    return DataPage(families=dict(load_event_families().families), events=events, pages=pages,
                    disputed=disputed, disputes=disputes)


def minutes(moment: datetime) -> str:
    """A time as people read it in a log: UTC, to the minute."""
    return moment.strftime("%Y-%m-%d %H:%M UTC")
