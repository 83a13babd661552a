"""Vectorised validation of event tables read from files (Parquet, CSV, JSON Lines).

The rules are not written here a second time: they are read from the field
metadata of the pydantic models in :mod:`features.events` (required or not,
enum values, bounds, patterns, lengths), so the file path and the API path
(:mod:`features.records`) accept and refuse the same records. The work is
done with Polars expressions over whole columns; no Python loop visits rows.

:func:`stage_table` turns an input table (any subset of the input columns,
typed or as text) into the staged shape of :data:`features.records.STAGED_SCHEMA`,
or returns the first problems found (1-based row numbers, column, reason).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pyarrow as pa

from features.events import (
    CORRECTION,
    DISPUTE_PREFIX,
    INPUT_SCHEMA,
    PAYLOAD_COLUMNS,
    PLATFORM_COLUMNS,
    PROFILE_ANY_OF,
    PROFILE_EMPTY_REASON,
    RESERVED_ID_COLUMNS,
    RESERVED_ID_REASON,
    VOID_WITH_PAYLOAD_REASON,
    Kind,
)
from features.ingest_errors import RowProblem
from features.records import STAGED_SCHEMA
from features.validate_rules import ColumnRule, common_rules, group_rules, kind_rules

_ROW = "__row"
_KIND = "__kind"
_DECIMAL_TEXT = r"^[+-]?0*\d{1,16}(\.\d{0,2}0*)?$"
_AWARE_TEXT = r"(Z|[+-]\d{2}:?\d{2})$"
_DATE_TEXT = r"^\d{4}-\d{2}-\d{2}$"
_TRUE_TEXT = ("true", "1", "yes", "on", "t", "y")
_FALSE_TEXT = ("false", "0", "no", "off", "f", "n")


@dataclass
class Staged:
    """The result of staging one table: rows to store, or the problems that refuse it.

    ``table`` (Arrow, for writing) and ``frame`` (Polars, for hashing) hold the same
    rows in :data:`~features.records.STAGED_SCHEMA`; both are None when refused.
    """

    table: pa.Table | None
    frame: pl.DataFrame | None = None
    problems: list[RowProblem] = field(default_factory=list)


def stage_table(table: pa.Table, *, first_row: int = 1, max_problems: int = 20) -> Staged:
    """Validate an input table and return it in the staged shape, or its first problems."""
    problems = _column_problems(table)
    if problems:
        return Staged(None, None, problems)
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    frame = frame.with_row_index(_ROW, offset=first_row)
    frame, converted, problems = _coerce(frame, max_problems)
    empty = frozenset(name for name, series in frame.to_dict().items()
                      if series.null_count() == frame.height)
    checks = _row_checks(empty)
    flags = [expr.alias(f"c{i}") for i, (_, _, expr) in enumerate(checks)]
    bad = (frame.lazy().select(pl.col(_ROW), *flags)
           .filter(pl.any_horizontal(pl.exclude(_ROW))).head(max_problems).collect())
    problems = _merge(problems, _describe(bad, checks, max_problems), max_problems)
    if problems:
        return Staged(None, None, problems)
    staged = frame.select(_staged_columns())
    return Staged(_to_arrow(table, staged, converted), staged)


# -- columns --------------------------------------------------------------------


def _column_problems(table: pa.Table) -> list[RowProblem]:
    known = set(INPUT_SCHEMA.names)
    problems = []
    for name in table.column_names:
        if name in PLATFORM_COLUMNS or name == "voided":
            problems.append(RowProblem(0, name, "added by the platform; an input may not carry it"))
        elif name not in known:
            problems.append(RowProblem(0, name, "unknown column"))
    for name in ("source", "event_id", "user_id", "kind", "event_time"):
        if name not in table.column_names and table.num_rows:
            problems.append(RowProblem(0, name, "required column is missing"))
    return problems


def _coerce(frame: pl.DataFrame,
            max_problems: int) -> tuple[pl.DataFrame, set[str], list[RowProblem]]:
    """Cast present columns to their input types; a value that does not convert is a problem.

    Returns the frame with every input column (absent ones as typed nulls), the names
    of the columns that were converted, and the problems.
    """
    problems: list[RowProblem] = []
    exprs = []
    converted: set[str] = set()
    categorical = [name for name, dtype in frame.schema.items()
                   if isinstance(dtype, pl.Categorical | pl.Enum)]
    frame = frame.with_columns(pl.col(categorical).cast(pl.String))
    for target in INPUT_SCHEMA:
        if target.name not in frame.columns:
            exprs.append(pl.lit(None, _polars_type(target.type)).alias(target.name))
            continue
        dtype = frame.schema[target.name]
        if dtype == _polars_type(target.type):
            continue
        expr, reason = _conversion(dtype, target.type, target.name)
        exprs.append(expr.alias(target.name))
        converted.add(target.name)
        failed = frame.select(pl.col(_ROW), expr.alias("v"), pl.col(target.name).alias("raw")) \
            .filter(pl.col("raw").is_not_null() & pl.col("v").is_null()).head(max_problems)
        problems.extend(RowProblem(int(row), target.name, reason) for row in failed[_ROW])
    return frame.with_columns(exprs), converted, problems


def _polars_type(arrow_type: pa.DataType) -> pl.DataType:
    return pl.from_arrow(pa.array([], arrow_type)).dtype  # type: ignore[union-attr]


def _conversion(dtype: pl.DataType, target: pa.DataType, name: str) -> tuple[pl.Expr, str]:
    """An expression converting a column to the target type (null where it cannot), and why."""
    column = pl.col(name)
    wanted = _polars_type(target)
    text = dtype == pl.String
    if dtype == pl.Null:
        return column.cast(wanted), ""
    if pa.types.is_timestamp(target):
        return _to_timestamp(column, dtype)
    if pa.types.is_decimal(target):
        return _to_decimal(column, dtype, wanted)
    if pa.types.is_date32(target):
        if text:
            valid = column.str.strip_chars().str.contains(_DATE_TEXT)
            parsed = column.str.strip_chars().str.to_date("%Y-%m-%d", strict=False)
            return pl.when(valid).then(parsed), "not a date (YYYY-MM-DD)"
        if dtype == pl.Date:
            return column, ""
        return pl.lit(None, pl.Date), "not a date (YYYY-MM-DD)"
    if pa.types.is_integer(target):
        return _to_integer(column, dtype, wanted)
    if pa.types.is_boolean(target):
        return _to_boolean(column, dtype)
    if text:
        return column, ""
    return pl.lit(None, pl.String), "must be text"


def _to_timestamp(column: pl.Expr, dtype: pl.DataType) -> tuple[pl.Expr, str]:
    utc = pl.Datetime("us", "UTC")
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is None:
            return pl.lit(None, utc), "timestamp must carry a time zone (naive timestamps are refused)"
        return column.dt.convert_time_zone("UTC").cast(utc), ""
    if dtype != pl.String:
        return pl.lit(None, utc), "not a timestamp"
    stripped = column.str.strip_chars().str.replace(r"Z$", "+00:00").str.replace(" ", "T")
    aware = column.str.strip_chars().str.contains(_AWARE_TEXT)
    parsed = stripped.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%z", time_unit="us", strict=False)
    return (pl.when(aware).then(parsed.dt.convert_time_zone("UTC")).cast(utc),
            "not an ISO 8601 timestamp with a time zone (naive timestamps are refused)")


def _to_decimal(column: pl.Expr, dtype: pl.DataType, wanted: pl.DataType) -> tuple[pl.Expr, str]:
    reason = "not a decimal amount with at most 2 decimal places and 16 integer digits"
    if isinstance(dtype, pl.Decimal):
        return pl.when(column.cast(wanted, strict=False) == column).then(
            column.cast(wanted, strict=False)), reason
    if dtype.is_integer() or dtype.is_float() or dtype == pl.String:
        text = column.cast(pl.String).str.strip_chars()
        valid = text.str.contains(_DECIMAL_TEXT)
        return pl.when(valid).then(text.cast(wanted, strict=False)), reason
    return pl.lit(None, wanted), reason


def _to_integer(column: pl.Expr, dtype: pl.DataType, wanted: pl.DataType) -> tuple[pl.Expr, str]:
    reason = "not a whole number in range"
    if dtype.is_integer():
        return column.cast(wanted, strict=False), reason
    if dtype == pl.String:
        text = column.str.strip_chars()
        return pl.when(text.str.contains(r"^[+-]?\d{1,10}$")).then(
            text.cast(pl.Int64, strict=False).cast(wanted, strict=False)), reason
    return pl.lit(None, wanted), reason


def _to_boolean(column: pl.Expr, dtype: pl.DataType) -> tuple[pl.Expr, str]:
    reason = "not a boolean (true or false)"
    if dtype == pl.Boolean:
        return column, reason
    if dtype == pl.String:
        text = column.str.strip_chars().str.to_lowercase()
        return (pl.when(text.is_in(_TRUE_TEXT)).then(pl.lit(True))
                .when(text.is_in(_FALSE_TEXT)).then(pl.lit(False))), reason
    return pl.lit(None, pl.Boolean), reason


# -- rows -----------------------------------------------------------------------


def _row_checks(empty: frozenset[str] = frozenset()) -> list[tuple[str, str, pl.Expr]]:
    """(column, reason, expression true on a bad row) for every rule, in reporting order.

    For a column with no value at all (``empty``) only "required" can fail, so its
    other rules are left out: sparse files are checked much faster.
    """
    col = pl.col
    kind = col("kind")
    stored = [k.value for k in Kind]
    is_correction = kind == CORRECTION
    effective = (pl.when(is_correction & col("corrected_kind").is_in(stored))
                 .then(col("corrected_kind")).when(kind.is_in(stored)).then(kind))
    void = is_correction & col("void").fill_null(False)
    checks: list[tuple[str, str, pl.Expr]] = []
    for name in ("source", "event_id", "user_id"):
        checks.extend(_value_checks(name, col(name), pl.lit(True), common_rules()[name]))
    checks.append(("event_time", "required", col("event_time").is_null()))
    kinds = [*stored, CORRECTION]
    checks.append(("kind", f"must be one of {', '.join(kinds)}", kind.is_null() | ~kind.is_in(kinds)))
    checks.extend(_correction_checks(col, is_correction, kind.is_in(kinds)))
    checks.extend((name, RESERVED_ID_REASON, col(name).str.starts_with(DISPUTE_PREFIX))
                  for name in RESERVED_ID_COLUMNS if name not in empty)
    rules = kind_rules()
    for name in PAYLOAD_COLUMNS:
        value = col(name)
        allowed = [k for k, fields in rules.items() if name in fields]
        if name in empty:
            required = [k for k, fields in rules.items() if name in fields and fields[name].required]
            checks.append((name, "required", effective.is_in(required) & ~void))
            continue
        checks.append((name, "not a field of this kind",
                       value.is_not_null() & ~void & ~effective.is_in(allowed)))
        for kinds_here, rule in group_rules(rules, name):
            applies = effective.is_in(kinds_here) & ~void
            checks.extend(_value_checks(name, value, applies, rule))
    checks.extend((name, VOID_WITH_PAYLOAD_REASON, void & col(name).is_not_null())
                  for name in PAYLOAD_COLUMNS if name not in empty)
    checks.append(("payload", PROFILE_EMPTY_REASON, (effective == Kind.PROFILE) & ~void
                   & pl.all_horizontal([col(n).is_null() for n in PROFILE_ANY_OF])))
    return [(name, reason, expr.fill_null(False)) for name, reason, expr in checks]


def _correction_checks(col: Any, is_correction: pl.Expr,
                       known_kind: pl.Expr) -> list[tuple[str, str, pl.Expr]]:
    corrected = col("corrected_kind")
    return [
        ("corrects", "required for a correction", is_correction & col("corrects").is_null()),
        ("corrects", "must be 1 to 256 characters", is_correction & (
            (col("corrects").str.len_chars() < 1) | (col("corrects").str.len_chars() > 256))),
        ("corrected_kind", f"must be one of {', '.join(k.value for k in Kind)}",
         is_correction & (corrected.is_null() | ~corrected.is_in([k.value for k in Kind]))),
        *[(name, "only a correction may carry it", known_kind & ~is_correction
           & col(name).is_not_null()) for name in ("corrects", "corrected_kind", "void")],
    ]


def _value_checks(name: str, value: pl.Expr, applies: pl.Expr,
                  rule: ColumnRule) -> list[tuple[str, str, pl.Expr]]:
    present = applies & value.is_not_null()
    checks = []
    if rule.required:
        checks.append((name, "required", applies & value.is_null()))
    if rule.enum:
        checks.append((name, f"must be one of {', '.join(rule.enum)}",
                       present & ~value.is_in(list(rule.enum))))
    if rule.ge is not None:
        checks.append((name, f"must be >= {rule.ge}", present & (value < rule.ge)))
    if rule.le is not None:
        checks.append((name, f"must be <= {rule.le}", present & (value > rule.le)))
    if rule.min_len is not None or rule.max_len is not None:
        length = value.str.len_chars()
        low, high = rule.min_len or 0, rule.max_len or 1 << 30
        checks.append((name, f"must be {low} to {high} characters",
                       present & ((length < low) | (length > high))))
    if rule.pattern:
        checks.append((name, f"must match {rule.pattern}",
                       present & ~value.str.contains(rule.pattern)))
    return checks


def _describe(bad: pl.DataFrame, checks: list[tuple[str, str, pl.Expr]],
              max_problems: int) -> list[RowProblem]:
    problems: list[RowProblem] = []
    for row in bad.head(max_problems).iter_rows(named=True):
        for i, (name, reason, _) in enumerate(checks):
            if row[f"c{i}"]:
                problems.append(RowProblem(int(row[_ROW]), name, reason))
    return problems


def _merge(first: list[RowProblem], second: list[RowProblem], limit: int) -> list[RowProblem]:
    unconverted = {(p.index, p.field) for p in first}
    second = [p for p in second if p.reason != "required" or (p.index, p.field) not in unconverted]
    merged = sorted({(p.index, p.field, p.reason): p for p in first + second}.values(),
                    key=lambda p: p.index)
    rows = sorted({p.index for p in merged})[:limit]
    return [p for p in merged if p.index in set(rows)]


def _staged_columns() -> list[pl.Expr]:
    """Input columns -> the lake's shape: a correction is stored as the kind it corrects."""
    is_correction = pl.col("kind") == CORRECTION
    special = {
        "kind": pl.when(is_correction).then(pl.col("corrected_kind")).otherwise(pl.col("kind")),
        "voided": pl.when(is_correction).then(pl.col("void").fill_null(False)),
    }
    return [special.get(f.name, pl.col(f.name)).cast(_polars_type(f.type)).alias(f.name)
            for f in STAGED_SCHEMA]


def _to_arrow(table: pa.Table, staged: pl.DataFrame, converted: set[str]) -> pa.Table:
    """The staged rows in Arrow: unconverted input columns are reused as they are (no copy)."""
    derived = converted | {"kind", "voided"}
    columns = []
    for target in STAGED_SCHEMA:
        if target.name in table.column_names and target.name not in derived:
            column = table.column(target.name)
            columns.append(column if column.type == target.type else column.cast(target.type))
        elif target.name in derived or target.name in table.column_names:
            columns.append(staged.get_column(target.name).to_arrow().cast(target.type))
        else:
            columns.append(pa.nulls(table.num_rows, target.type))
    return pa.Table.from_arrays(columns, schema=STAGED_SCHEMA)
