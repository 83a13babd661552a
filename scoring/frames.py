"""Turning tables into the model's matrix: pinned column order and categories.

The trainer accepts pandas or Polars frames. Whatever comes in, the model sees
the same columns in the same order with the same category levels as when it
was fitted, so a vector scored tomorrow means what it meant at training time.
Categories unseen at training become missing values (XGBoost routes them down
its learnt default branch).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

Frame = pd.DataFrame | pl.DataFrame


def to_pandas(frame: Frame) -> pd.DataFrame:
    """A pandas view of the frame; Polars strings/categoricals become pandas categories."""
    if isinstance(frame, pl.DataFrame):
        casts = [pl.col(name).cast(pl.String) for name, dtype in frame.schema.items()
                 if dtype in (pl.Categorical, pl.Enum) or isinstance(dtype, pl.Enum)]
        converted = frame.with_columns(casts) if casts else frame
        converted = converted.with_columns(
            [pl.col(name).cast(pl.Float64) for name, dtype in converted.schema.items()
             if dtype.is_decimal() or dtype == pl.Boolean]
        )
        return converted.to_pandas()
    if isinstance(frame, pd.DataFrame):
        return frame
    raise TypeError(f"expected a pandas or Polars DataFrame, got {type(frame).__name__}")


def infer_categories(frame: pd.DataFrame) -> dict[str, list[str]]:
    """The category levels of every non-numeric column, sorted for a stable encoding."""
    categories: dict[str, list[str]] = {}
    for name in frame.columns:
        column = frame[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            levels = [str(level) for level in column.cat.categories]
        elif _is_numeric(column):
            continue
        else:
            levels = [str(value) for value in column.dropna().unique()]
        categories[str(name)] = sorted(set(levels))
    return categories


def model_matrix(
    frame: Frame, feature_names: Sequence[str], categories: Mapping[str, Sequence[str]]
) -> pd.DataFrame:
    """The columns ``feature_names`` in that order, numeric as float64, the rest as categories."""
    table = to_pandas(frame)
    missing = [name for name in feature_names if name not in table.columns]
    if missing:
        raise ValueError(f"missing feature columns: {', '.join(missing[:5])}")
    columns: dict[str, Any] = {}
    for name in feature_names:
        column = table[name]
        if name in categories:
            values = column.astype("string").astype(object).where(column.notna(), None)
            columns[name] = pd.Categorical(values, categories=list(categories[name]))
        else:
            columns[name] = pd.to_numeric(column, errors="raise").astype("float64")
    return pd.DataFrame(columns, index=table.index)


def _is_numeric(column: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(column.dtype)) or column.dtype == np.bool_
