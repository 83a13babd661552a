"""The declarative feature definitions (config/features.toml), loaded and validated once.

A definition says *what* a feature means — which events it reads, how they are
aggregated over which window, its monotone direction and its null policy — and
never *how* an engine computes it: features/plan.py compiles the definitions to
an engine-neutral plan that Polars and Spark render. A definition written with
several windows expands into one feature per window.

Every mistake (an unknown kind or column, a bad window, a protected attribute, a
duplicate name, an unknown dimension, a bad direction) stops the load with one
line naming the feature, so a bad edit never reaches a model.

The event taxonomy (kinds, columns, categories) is read from
:mod:`features.events`, its one source of truth. That module is a leaf (it
imports nothing from altcredit), so importing it here, lazily, keeps the
dependency graph acyclic even though config otherwise sits below features.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from config.documents import read_toml
from config.feature_taxonomy import Taxonomy, load_taxonomy

DEFINITIONS_FILE = Path(__file__).with_name("features.toml")
WINDOW_DAYS: tuple[int, ...] = (30, 90, 180, 365)
ALL = "all"
ANY_KIND = "*"
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")

Window = int | Literal["all"]
Scalar = str | int | float | bool
Op = Literal["eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "is_null", "not_null"]
Aggregation = Literal[
    "count", "sum", "mean", "min", "max", "std", "distinct", "latest", "days_since_last",
    "days_since_first", "share", "ratio", "trend", "contact_share", "contact_count",
]
PartAggregation = Literal["count", "sum", "mean", "min", "max", "distinct"]
VALUE_AGGREGATIONS = frozenset({"sum", "mean", "min", "max", "std", "distinct", "latest", "trend"})
CONTACT_AGGREGATIONS = frozenset({"contact_share", "contact_count"})


class FeatureDefinitionError(ValueError):
    """A definition is invalid; ``str()`` is one line naming the feature and the problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Condition(_Strict):
    """One row filter; with ``kinds`` it applies only to rows of those kinds."""

    column: str
    op: Op
    value: Scalar | list[Scalar] | None = None
    kinds: tuple[str, ...] | None = None


class Part(_Strict):
    """A numerator or denominator of a ratio; ``window`` None inherits the feature's."""

    aggregation: PartAggregation
    kinds: tuple[str, ...]
    column: str | None = None
    filters: tuple[Condition, ...] = ()
    window: Window | None = None


class Flag(_Strict):
    """What marks a contact (any such event in the window, as known at the as-of date)."""

    kinds: tuple[str, ...]
    filters: tuple[Condition, ...] = ()


class _Body(_Strict):
    dimension: str
    kinds: tuple[str, ...]
    aggregation: Aggregation
    column: str | None = None
    map: dict[str, float] | None = None
    transform: Literal["age_days"] | None = None
    filters: tuple[Condition, ...] = ()
    where: tuple[Condition, ...] = ()
    numerator: Part | None = None
    denominator: Part | None = None
    of: Literal["count", "sum", "mean"] | None = None
    unit: Literal["days", "months"] = "days"
    direction: Literal[-1, 0, 1]
    actionable: bool
    null_policy: Literal["zero", "null"]
    contact_filters: tuple[Condition, ...] = ()
    flag: Flag | None = None


class FeatureSpec(_Body):
    """A definition as written: possibly several windows, ``{window}`` in its texts."""

    name: str
    description_en: str = Field(min_length=1)
    description_zh: str = Field(min_length=1)
    windows: tuple[Window, ...] = Field(min_length=1)


class Feature(_Body):
    """One feature: a single window (``None`` = all time), texts resolved."""

    name: str
    description_en: str
    description_zh: str
    window: int | None


class Dimension(_Strict):
    en: str = Field(min_length=1)
    zh: str = Field(min_length=1)


class WindowTexts(_Strict):
    en: str
    en_all: str
    zh: str
    zh_all: str


class FeatureSet(_Strict):
    """The validated, expanded catalogue and the hash that pins it."""

    dimensions: dict[str, Dimension]
    features: tuple[Feature, ...]
    protected: tuple[str, ...]
    hash: str

    @property
    def names(self) -> list[str]:
        return [feature.name for feature in self.features]

    def get(self, name: str) -> Feature:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(name)

    @property
    def directions(self) -> dict[str, int]:
        """Feature -> monotone direction (+1 riskier when higher), for model constraints."""
        return {feature.name: feature.direction for feature in self.features}


def load_feature_definitions(path: Path | str | None = None) -> FeatureSet:
    """The feature set of ``path`` (default config/features.toml), validated; cached per file."""
    return _load(str(Path(path or DEFINITIONS_FILE).resolve()))


@cache
def _load(path: str) -> FeatureSet:
    return parse_feature_definitions(read_toml(Path(path), FeatureDefinitionError), where=Path(path).name)


def parse_feature_definitions(document: dict[str, Any], *, where: str = "features") -> FeatureSet:
    """Validate and expand a parsed definitions document (the file's TOML as a dict)."""
    dimensions = _header(document, "dimensions", dict[str, Dimension], where)
    texts = _header(document, "windows", WindowTexts, where)
    protected = tuple(document.get("protected", {}).get("columns", ()))
    taxonomy = load_taxonomy()
    features: list[Feature] = []
    seen: set[str] = set()
    for index, raw in enumerate(document.get("feature", [])):
        label = raw.get("name", f"#{index + 1}") if isinstance(raw, dict) else f"#{index + 1}"
        try:
            spec = FeatureSpec.model_validate(raw)
            _check(spec, dimensions, protected, taxonomy)
            expanded = _expand(spec, texts)
        except ValidationError as exc:
            raise FeatureDefinitionError(f"{where}: feature '{label}': {_first(exc)}") from None
        except ValueError as exc:
            raise FeatureDefinitionError(f"{where}: feature '{label}': {exc}") from None
        for feature in expanded:
            if feature.name in seen:
                raise FeatureDefinitionError(f"{where}: duplicate feature name '{feature.name}'")
            seen.add(feature.name)
            features.append(feature)
    if not features:
        raise FeatureDefinitionError(f"{where}: no [[feature]] defined")
    return FeatureSet(
        dimensions=dimensions, features=tuple(features), protected=protected,
        hash=definitions_hash(dimensions, features),
    )


def definitions_hash(dimensions: dict[str, Dimension], features: list[Feature]) -> str:
    """sha256 over the canonical content (not the file's bytes: comments never change it)."""
    canonical = {
        "dimensions": {key: value.model_dump() for key, value in sorted(dimensions.items())},
        "features": [feature.model_dump(mode="json") for feature in features],
    }
    encoded = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def _header(document: dict[str, Any], key: str, kind: Any, where: str) -> Any:
    from pydantic import TypeAdapter

    try:
        return TypeAdapter(kind).validate_python(document.get(key))
    except ValidationError as exc:
        raise FeatureDefinitionError(f"{where}: [{key}]: {_first(exc)}") from None


def _first(exc: ValidationError) -> str:
    error = exc.errors()[0]
    location = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"unknown field '{location}'"
    if error["type"] == "missing":
        return f"missing field '{location}'"
    return f"{location}: {error['msg']}" if location else error["msg"]


# -- semantic checks --------------------------------------------------------------


def _check(spec: FeatureSpec, dimensions: dict[str, Dimension], protected: tuple[str, ...],
           taxonomy: Taxonomy) -> None:
    if spec.dimension not in dimensions:
        raise ValueError(f"unknown dimension '{spec.dimension}' (known: {', '.join(dimensions)})")
    for window in spec.windows:
        if window != ALL and window not in WINDOW_DAYS:
            raise ValueError(f"bad window {window!r} (allowed: {', '.join(map(str, WINDOW_DAYS))}, all)")
    if len(set(spec.windows)) != len(spec.windows):
        raise ValueError("a window is listed twice")
    if len(spec.windows) > 1 and "{window}" not in spec.name:
        raise ValueError("several windows need '{window}' in the name")
    for column in _columns(spec):
        if column in protected:
            raise ValueError(f"uses protected attribute '{column}' (fairness reports only)")
    kinds = _kinds(spec.kinds, taxonomy)
    _check_shape(spec)
    for condition in (*spec.filters, *spec.where):
        _check_condition(condition, kinds, taxonomy)
    if spec.column is not None:
        _check_value_column(spec, kinds, taxonomy)
    for part in (spec.numerator, spec.denominator):
        if part is not None:
            _check_part(part, taxonomy)
    if spec.aggregation in CONTACT_AGGREGATIONS:
        _check_contacts(spec, taxonomy)


def _columns(spec: FeatureSpec) -> list[str]:
    conditions = [*spec.filters, *spec.where, *spec.contact_filters]
    columns = [spec.column] if spec.column else []
    for part in (spec.numerator, spec.denominator):
        if part is not None:
            conditions += part.filters
            columns += [part.column] if part.column else []
    if spec.flag is not None:
        conditions += spec.flag.filters
    return columns + [condition.column for condition in conditions]


def _kinds(kinds: tuple[str, ...], taxonomy: Taxonomy) -> tuple[str, ...]:
    if kinds == (ANY_KIND,):
        return tuple(taxonomy.kinds)
    if not kinds:
        raise ValueError("kinds is empty")
    for kind in kinds:
        if kind not in taxonomy.kinds:
            raise ValueError(f"unknown kind '{kind}'")
    return kinds


def _check_shape(spec: FeatureSpec) -> None:
    """Each aggregation has the fields it needs and none it would ignore."""
    needs_column = spec.aggregation in VALUE_AGGREGATIONS
    if needs_column and spec.column is None:
        raise ValueError(f"aggregation {spec.aggregation} needs a column")
    if not needs_column and spec.column is not None:
        raise ValueError(f"aggregation {spec.aggregation} takes no column")
    if (spec.aggregation == "share") != bool(spec.where):
        raise ValueError("'where' goes with aggregation share, and share needs it")
    if (spec.aggregation == "ratio") != (spec.numerator is not None and spec.denominator is not None):
        raise ValueError("aggregation ratio needs numerator and denominator (and only ratio has them)")
    if (spec.aggregation == "trend") != (spec.of is not None):
        raise ValueError("aggregation trend needs 'of' (and only trend has it)")
    if spec.aggregation == "trend" and ALL in spec.windows:
        raise ValueError("a trend needs a window in days, not all")
    is_contact = spec.aggregation in CONTACT_AGGREGATIONS
    if not is_contact and (spec.flag is not None or spec.contact_filters):
        raise ValueError("flag and contact_filters go with contact_share or contact_count")
    if spec.aggregation == "contact_share" and spec.flag is None:
        raise ValueError("aggregation contact_share needs a flag")
    if is_contact and spec.flag is None and spec.windows != (ALL,):
        raise ValueError("contacts without a flag are counted over all time (windows = ['all'])")
    if (spec.map is not None or spec.transform is not None) and spec.aggregation != "latest":
        raise ValueError("map and transform go with aggregation latest")


def _check_condition(condition: Condition, kinds: tuple[str, ...], taxonomy: Taxonomy) -> None:
    scope = _kinds(condition.kinds, taxonomy) if condition.kinds else kinds
    if condition.kinds and not set(scope) <= set(kinds):
        raise ValueError(f"filter on {condition.column}: its kinds are not among the feature's")
    _known_column(condition.column, scope, taxonomy)
    value, op = condition.value, condition.op
    if op in ("is_null", "not_null"):
        if value is not None:
            raise ValueError(f"filter on {condition.column}: {op} takes no value")
        return
    values = value if isinstance(value, list) else [value]
    if (op in ("in", "not_in")) != isinstance(value, list) or value is None or not values:
        raise ValueError(f"filter on {condition.column}: {op} needs "
                         + ("a list of values" if op in ("in", "not_in") else "one value"))
    allowed = taxonomy.categories.get(condition.column)
    for item in values:
        if allowed is not None and item not in allowed:
            raise ValueError(f"filter on {condition.column}: unknown value {item!r}")
        if taxonomy.is_string(condition.column) != isinstance(item, str):
            raise ValueError(f"filter on {condition.column}: value {item!r} has the wrong type")


def _known_column(column: str, kinds: tuple[str, ...], taxonomy: Taxonomy) -> None:
    if column in taxonomy.derived:
        return
    if not any(column in taxonomy.kinds[kind] for kind in kinds):
        raise ValueError(f"unknown column '{column}' for kinds {', '.join(kinds)}")


def _check_value_column(spec: FeatureSpec, kinds: tuple[str, ...], taxonomy: Taxonomy) -> None:
    column = spec.column or ""
    _known_column(column, kinds, taxonomy)
    if spec.aggregation == "distinct":
        return
    if spec.map is not None:
        allowed = taxonomy.categories.get(column)
        if allowed is None:
            raise ValueError(f"map needs a categorical column, not '{column}'")
        unknown = sorted(set(spec.map) - set(allowed))
        if unknown:
            raise ValueError(f"map of {column}: unknown value '{unknown[0]}'")
    elif spec.transform == "age_days":
        if not taxonomy.is_date(column):
            raise ValueError(f"transform age_days needs a date column, not '{column}'")
    elif not taxonomy.is_numeric(column):
        raise ValueError(f"aggregation {spec.aggregation} needs a numeric column, not '{column}'")


def _check_part(part: Part, taxonomy: Taxonomy) -> None:
    kinds = _kinds(part.kinds, taxonomy)
    if part.window is not None and part.window != ALL and part.window not in WINDOW_DAYS:
        raise ValueError(f"bad window {part.window!r} in a ratio part")
    if (part.aggregation == "count") != (part.column is None):
        raise ValueError("a ratio part counts rows or aggregates a column, not both")
    for condition in part.filters:
        _check_condition(condition, kinds, taxonomy)
    if part.column is not None:
        _known_column(part.column, kinds, taxonomy)
        if part.aggregation != "distinct" and not taxonomy.is_numeric(part.column):
            raise ValueError(f"a ratio part needs a numeric column, not '{part.column}'")


def _check_contacts(spec: FeatureSpec, taxonomy: Taxonomy) -> None:
    if spec.kinds != ("contact",):
        raise ValueError("contact aggregations read kinds ['contact'] (the flag names its own)")
    for condition in spec.contact_filters:
        _check_condition(condition, ("contact",), taxonomy)
    if spec.flag is not None:
        kinds = _kinds(spec.flag.kinds, taxonomy)
        for condition in spec.flag.filters:
            _check_condition(condition, kinds, taxonomy)


# -- expansion ---------------------------------------------------------------------


def _expand(spec: FeatureSpec, texts: WindowTexts) -> list[Feature]:
    body = spec.model_dump(exclude={"windows", "name", "description_en", "description_zh"})
    features = []
    for window in spec.windows:
        days = None if window == ALL else int(window)
        en = texts.en_all if days is None else texts.en.format(days=days)
        zh = texts.zh_all if days is None else texts.zh.format(days=days)
        name = spec.name.replace("{window}", ALL if days is None else f"{days}d")
        if not NAME_PATTERN.match(name):
            raise ValueError(f"bad name '{name}' (lower-case letters, digits and _)")
        features.append(Feature(
            **body, name=name, window=days,
            description_en=spec.description_en.replace("{window}", en),
            description_zh=spec.description_zh.replace("{window}", zh),
        ))
    return features
