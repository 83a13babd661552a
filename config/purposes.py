"""The purposes a partner may ask a score for, and the consent scopes, from ``purposes.toml``.

A consent names one purpose and one scope; both are data here so that the
consent page, the partner API and the CLI agree on one list and one wording
(English and Chinese). A bad file fails at load time with one line.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from config.documents import read_toml, validated

PURPOSES_FILE = Path(__file__).with_name("purposes.toml")
SCOPE_CODES = ("pass", "band", "score", "score_history")


class PurposesError(ValueError):
    """The purposes file is missing or invalid; ``str()`` is one line."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Purpose(_Frozen):
    code: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    en: str = Field(min_length=1)
    zh: str = Field(min_length=1)
    pass_threshold: int = Field(ge=0, le=1000)

    def name(self, language: str = "en") -> str:
        return self.zh if language == "zh" else self.en


class Scope(_Frozen):
    code: str
    en: str = Field(min_length=1)
    zh: str = Field(min_length=1)

    def text(self, language: str = "en") -> str:
        return self.zh if language == "zh" else self.en


class PurposeCatalogue(_Frozen):
    purposes: tuple[Purpose, ...]
    scopes: tuple[Scope, ...]

    @model_validator(mode="after")
    def _unique_and_complete(self) -> PurposeCatalogue:
        codes = [purpose.code for purpose in self.purposes]
        if not codes or len(set(codes)) != len(codes):
            raise ValueError("purposes: at least one, and codes must be unique")
        if tuple(scope.code for scope in self.scopes) != SCOPE_CODES:
            raise ValueError(f"scopes: exactly {', '.join(SCOPE_CODES)}, in that order")
        return self

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(purpose.code for purpose in self.purposes)

    def purpose(self, code: str) -> Purpose:
        for purpose in self.purposes:
            if purpose.code == code:
                return purpose
        raise KeyError(code)

    def scope(self, code: str) -> Scope:
        for scope in self.scopes:
            if scope.code == code:
                return scope
        raise KeyError(code)


def load_purposes(path: Path | None = None) -> PurposeCatalogue:
    """The purpose catalogue (cached for the default file)."""
    return _default() if path is None else _load(path)


@lru_cache(maxsize=1)
def _default() -> PurposeCatalogue:
    return _load(PURPOSES_FILE)


def _load(path: Path) -> PurposeCatalogue:
    return validated(PurposeCatalogue, read_toml(path, PurposesError), where=path.name,
                     error=PurposesError)
