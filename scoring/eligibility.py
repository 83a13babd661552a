"""Who may be scored: the minimum-data rule of config/scorecard.toml.

A user whose feature vector is too thin gets no score (N/A, with a reason
code), never a guess: at least ``min_features`` features present, spread over
at least ``min_dimensions`` dimensions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import polars as pl

from config.scorecard import MinDataRule


def missing_data_reason(
    vector: Mapping[str, Any], dimensions: Mapping[str, str], rule: MinDataRule
) -> str | None:
    """Why one feature vector is too thin to score, or None when it may be scored.

    ``dimensions`` maps each model feature to its dimension; a value counts as
    present when it is neither None nor NaN.
    """
    present = [name for name in dimensions if _present(vector.get(name))]
    spread = {dimensions[name] for name in present}
    if len(present) < rule.min_features or len(spread) < rule.min_dimensions:
        return rule.reason_code
    return None


def scorable(frame: pl.DataFrame, dimensions: Mapping[str, str], rule: MinDataRule) -> pl.Series:
    """The same rule over a whole frame: a boolean Series, True where a row may be scored."""
    if not dimensions:
        return pl.Series("scorable", [False] * frame.height, dtype=pl.Boolean)
    present = {name: _present_expr(frame, name) for name in dimensions}
    by_dimension: dict[str, list[pl.Expr]] = {}
    for name, expr in present.items():
        by_dimension.setdefault(dimensions[name], []).append(expr)
    n_features = pl.sum_horizontal([expr.cast(pl.Int32) for expr in present.values()])
    n_dimensions = pl.sum_horizontal(
        [pl.any_horizontal(exprs).cast(pl.Int32) for exprs in by_dimension.values()]
    )
    rule_expr = (n_features >= rule.min_features) & (n_dimensions >= rule.min_dimensions)
    return frame.select(rule_expr.alias("scorable")).to_series()


def _present_expr(frame: pl.DataFrame, name: str) -> pl.Expr:
    if name not in frame.columns:
        return pl.lit(False)
    column = pl.col(name)
    if frame.schema[name].is_float():
        return column.is_not_null() & column.is_not_nan()
    return column.is_not_null()


def _present(value: Any) -> bool:
    if value is None:
        return False
    return not (isinstance(value, float) and math.isnan(value))
