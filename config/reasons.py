"""The reason catalogue (config/reasons.toml): stable codes, texts and tip templates.

A reason covers a group of features (usually the windows of one definition in
config/features.toml); its points are the sum of its features' points. The
file is validated on its own when loaded, and against the feature definitions
by :func:`check_against`: every feature has exactly one reason, a reason's
features share one dimension whose prefix starts its code, and exactly the
actionable features carry a tip template. A bad edit stops with one line.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from config.documents import read_toml
from config.feature_definitions import FeatureSet

REASONS_FILE = Path(__file__).with_name("reasons.toml")
WINDOW_PLACEHOLDER = "{window}"
WINDOW_PATTERN = r"(?:\d+d|all)"
Unit = Literal["share", "count", "days", "months", "money", "ratio", "flag"]


class ReasonsError(ValueError):
    """The reason catalogue is invalid; ``str()`` is one line naming the problem."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TipTemplate(_Frozen):
    """A tip's sentence; ``{feature}``, ``{from}`` and ``{to}`` are filled in."""

    en: str = Field(min_length=1)
    zh: str = Field(min_length=1)
    unit: Unit


class Limits(_Frozen):
    max_reasons: int = Field(ge=1, le=10)
    max_tips: int = Field(ge=0, le=10)
    tip_min_points: float = Field(gt=0)
    tip_quantiles: tuple[float, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _quantiles(self) -> Limits:
        if any(not 0 <= q <= 1 for q in self.tip_quantiles):
            raise ValueError("tip_quantiles must lie in [0, 1]")
        if list(self.tip_quantiles) != sorted(set(self.tip_quantiles)):
            raise ValueError("tip_quantiles must be increasing")
        return self


class TipTexts(_Frozen):
    assumption_en: str = Field(min_length=1)
    assumption_zh: str = Field(min_length=1)
    flag_yes_en: str
    flag_no_en: str
    flag_yes_zh: str
    flag_no_zh: str
    days_en: str
    days_zh: str
    months_en: str
    months_zh: str


class ChangeTexts(_Frozen):
    feature_en: str = Field(min_length=1)
    feature_zh: str = Field(min_length=1)
    base_en: str = Field(min_length=1)
    base_zh: str = Field(min_length=1)


class Reason(_Frozen):
    code: str = Field(pattern=r"^[A-Z]{2}[0-9]{2}$")
    features: tuple[str, ...] = Field(min_length=1)
    text_en: str = Field(min_length=1)
    text_zh: str = Field(min_length=1)
    tip: TipTemplate | None = None

    def matches(self, feature: str) -> bool:
        return any(_pattern(item).fullmatch(feature) for item in self.features)


class ReasonCatalogue(_Frozen):
    prefixes: dict[str, str]
    limits: Limits
    tips: TipTexts
    change: ChangeTexts
    reasons: tuple[Reason, ...] = Field(alias="reason", min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> ReasonCatalogue:
        codes = [reason.code for reason in self.reasons]
        duplicates = sorted({code for code in codes if codes.count(code) > 1})
        if duplicates:
            raise ValueError(f"duplicate reason code {duplicates[0]}")
        patterns = [item for reason in self.reasons for item in reason.features]
        repeated = sorted({item for item in patterns if patterns.count(item) > 1})
        if repeated:
            raise ValueError(f"feature pattern '{repeated[0]}' is listed twice")
        return self

    def get(self, code: str) -> Reason:
        for reason in self.reasons:
            if reason.code == code:
                return reason
        raise KeyError(code)

    def reason_for(self, feature: str) -> Reason:
        """The one reason whose patterns match ``feature``; KeyError when none does."""
        for reason in self.reasons:
            if reason.matches(feature):
                return reason
        raise KeyError(feature)


def load_reasons(path: Path | str | None = None) -> ReasonCatalogue:
    """The catalogue of ``path`` (default config/reasons.toml), validated; cached per file."""
    return _load(str(Path(path or REASONS_FILE).resolve()))


@cache
def _load(path: str) -> ReasonCatalogue:
    return parse_reasons(read_toml(Path(path), ReasonsError), where=Path(path).name)


def parse_reasons(document: dict[str, object], *, where: str = "reasons") -> ReasonCatalogue:
    """Validate a parsed catalogue document (the file's TOML as a dict)."""
    try:
        return ReasonCatalogue.model_validate(document)
    except ValidationError as exc:
        error = exc.errors()[0]
        location = ".".join(str(part) for part in error["loc"])
        problem = "unknown field" if error["type"] == "extra_forbidden" else error["msg"]
        raise ReasonsError(f"{where}: {location}: {problem}" if location else
                           f"{where}: {problem}") from None


def check_against(catalogue: ReasonCatalogue, feature_set: FeatureSet) -> dict[str, Reason]:
    """Feature name -> its reason, after checking the catalogue fits the definitions.

    Raises :class:`ReasonsError` for a feature without a reason or with two, a
    reason spanning dimensions or carrying the wrong prefix, a reason matching
    no feature, an actionable feature without a tip, or a tip on a feature the
    person cannot change.
    """
    assigned: dict[str, Reason] = {}
    for feature in feature_set.features:
        matching = [reason for reason in catalogue.reasons if reason.matches(feature.name)]
        if not matching:
            raise ReasonsError(f"feature '{feature.name}' has no reason in reasons.toml")
        if len(matching) > 1:
            raise ReasonsError(f"feature '{feature.name}' matches reasons "
                               f"{matching[0].code} and {matching[1].code}")
        reason = matching[0]
        _check_feature(catalogue, reason, feature.name, feature.dimension, feature.actionable)
        assigned[feature.name] = reason
    unused = [reason.code for reason in catalogue.reasons if reason not in assigned.values()]
    if unused:
        raise ReasonsError(f"reason {unused[0]} matches no feature in features.toml")
    for reason in catalogue.reasons:
        dimensions = {feature_set.get(name).dimension for name, owner in assigned.items()
                      if owner is reason}
        if len(dimensions) > 1:
            raise ReasonsError(f"reason {reason.code} spans dimensions {', '.join(sorted(dimensions))}")
    return assigned


def _check_feature(catalogue: ReasonCatalogue, reason: Reason, name: str, dimension: str,
                   actionable: bool) -> None:
    prefix = catalogue.prefixes.get(dimension)
    if prefix is None:
        raise ReasonsError(f"no code prefix for dimension '{dimension}' in [prefixes]")
    if not reason.code.startswith(prefix):
        raise ReasonsError(f"reason {reason.code} covers '{name}' of dimension {dimension}: "
                           f"its code must start with {prefix}")
    if actionable and reason.tip is None:
        raise ReasonsError(f"reason {reason.code} needs a tip: feature '{name}' is actionable")
    if not actionable and reason.tip is not None:
        raise ReasonsError(f"reason {reason.code} has a tip but feature '{name}' is not actionable")


@cache
def _pattern(item: str) -> re.Pattern[str]:
    parts = item.split(WINDOW_PLACEHOLDER)
    return re.compile(WINDOW_PATTERN.join(re.escape(part) for part in parts))
