"""The score's definitions: scale, bands, minimum-data rule, label and fairness.

They live in ``config/scorecard.toml`` and are loaded and validated once here,
so that no threshold or text is repeated in code. A bad file fails at load
time with one line naming what is wrong.
"""

from __future__ import annotations

import math
from functools import lru_cache
from itertools import pairwise
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from config.documents import read_toml, validated

SCORECARD_FILE = Path(__file__).with_name("scorecard.toml")


class ScorecardError(ValueError):
    """The scorecard file is missing or invalid; ``str()`` is one line."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ScaleDefinition(_Frozen):
    """score = offset - factor * ln(odds of bad), factor = pdo / ln 2."""

    anchor_score: float
    anchor_odds: float = Field(gt=0, description="odds of bad 1:anchor_odds at anchor_score")
    pdo: float = Field(gt=0)
    min_score: int
    max_score: int

    @model_validator(mode="after")
    def _range(self) -> ScaleDefinition:
        if self.min_score >= self.max_score:
            raise ValueError("scale.min_score must be below scale.max_score")
        return self

    @property
    def factor(self) -> float:
        """B: points per unit of log-odds."""
        return self.pdo / math.log(2)

    @property
    def offset(self) -> float:
        """A: the score at log-odds 0 (odds 1:1)."""
        return self.anchor_score + self.factor * math.log(1.0 / self.anchor_odds)


class Band(_Frozen):
    code: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    min: int
    max: int
    en: str = Field(min_length=1)
    zh: str = Field(min_length=1)

    def name(self, language: str = "en") -> str:
        return self.zh if language == "zh" else self.en


class MinDataRule(_Frozen):
    min_features: int = Field(ge=1)
    min_dimensions: int = Field(ge=1)
    reason_code: str = Field(min_length=1)
    en: str = Field(min_length=1)
    zh: str = Field(min_length=1)


class LabelDefinition(_Frozen):
    horizon_months: int = Field(ge=1, le=60)
    bad_days_late: int = Field(ge=1)


class FairnessDefinition(_Frozen):
    protected: tuple[str, ...]
    age_bands: tuple[tuple[int, int], ...]

    @model_validator(mode="after")
    def _bands(self) -> FairnessDefinition:
        for low, high in self.age_bands:
            if low >= high:
                raise ValueError(f"fairness.age_bands: [{low}, {high}) is empty")
        return self


class Scorecard(_Frozen):
    scale: ScaleDefinition
    bands: tuple[Band, ...]
    min_data: MinDataRule
    label: LabelDefinition
    fairness: FairnessDefinition

    @model_validator(mode="after")
    def _bands_tile_the_range(self) -> Scorecard:
        bands = sorted(self.bands, key=lambda band: band.min)
        if not bands:
            raise ValueError("bands: at least one band is required")
        if bands[0].min != self.scale.min_score or bands[-1].max != self.scale.max_score:
            raise ValueError("bands must start at scale.min_score and end at scale.max_score")
        for lower, upper in pairwise(bands):
            if upper.min != lower.max + 1:
                raise ValueError(f"bands {lower.code} and {upper.code} leave a gap or overlap")
        for band in bands:
            if band.min > band.max:
                raise ValueError(f"band {band.code}: min above max")
        if len({band.code for band in bands}) != len(bands):
            raise ValueError("bands: duplicate code")
        object.__setattr__(self, "bands", tuple(bands))
        return self

    def band(self, code: str) -> Band:
        for band in self.bands:
            if band.code == code:
                return band
        raise KeyError(code)


def load_scorecard(path: Path | None = None) -> Scorecard:
    """The scorecard definitions (cached for the default file)."""
    if path is None:
        return _default_scorecard()
    return _load(path)


@lru_cache(maxsize=1)
def _default_scorecard() -> Scorecard:
    return _load(SCORECARD_FILE)


def _load(path: Path) -> Scorecard:
    return validated(Scorecard, read_toml(path, ScorecardError), where=path.name, error=ScorecardError)
