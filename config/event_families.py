"""The families of events a person sees behind their score, from ``event_families.toml``.

The mapping family -> kinds is data, so the consumer pages, the CLI and the
user-events reader agree on one grouping and one wording (English and
Chinese). Every stored kind of the taxonomy belongs to exactly one family:
nothing behind a score is hidden from the person it is about. A bad file fails
at load time with one line naming the file and the key.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from config.documents import read_toml, validated

FAMILIES_FILE = Path(__file__).with_name("event_families.toml")
FAMILY_NAMES = ("bills", "repayments", "payments", "agreements", "identity", "connections")


class EventFamiliesError(ValueError):
    """The families file is missing or invalid; ``str()`` is one line."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Family(_Frozen):
    kinds: tuple[str, ...] = Field(min_length=1)
    en: str = Field(min_length=1)
    zh: str = Field(min_length=1)

    def name(self, language: str = "en") -> str:
        return self.zh if language == "zh" else self.en


class Paging(_Frozen):
    page_size_max: int = Field(ge=1, le=10_000)


class EventFamilies(_Frozen):
    paging: Paging
    families: dict[str, Family]

    @model_validator(mode="after")
    def _every_kind_once(self) -> EventFamilies:
        if tuple(self.families) != FAMILY_NAMES:
            raise ValueError(f"families: exactly {', '.join(FAMILY_NAMES)}, in that order")
        from config.feature_taxonomy import load_taxonomy

        known = set(load_taxonomy().kinds)
        seen: dict[str, str] = {}
        for name, family in self.families.items():
            for kind in family.kinds:
                if kind not in known:
                    raise ValueError(f"families.{name}: unknown kind {kind!r}")
                if kind in seen:
                    raise ValueError(f"families.{name}: kind {kind!r} is already in {seen[kind]}")
                seen[kind] = name
        missing = sorted(known - set(seen))
        if missing:
            raise ValueError(f"families: kind {missing[0]!r} belongs to no family")
        return self

    def kinds(self) -> dict[str, tuple[str, ...]]:
        """family -> kinds, in the file's order."""
        return {name: family.kinds for name, family in self.families.items()}

    def family_of(self, kind: str) -> str:
        return next(name for name, family in self.families.items() if kind in family.kinds)


@cache
def load_event_families(path: Path = FAMILIES_FILE) -> EventFamilies:
    """The validated families (cached: the file is read once per process)."""
    return validated(EventFamilies, read_toml(path, EventFamiliesError),
                     where=path.name, error=EventFamiliesError)
