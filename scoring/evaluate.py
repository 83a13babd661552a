"""Cross-validated quality of the trainer on any labelled table (a bank's own data).

``evaluate_table`` prepares the columns (numeric kept, text and booleans as
categories, constant, empty and ID-like columns dropped, each decision
reported), then runs the same :class:`~scoring.train.ScoreTrainer` over
stratified folds and reports mean and standard deviation of AUC, KS and Brier
on the held-out folds.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
from pydantic import BaseModel
from sklearn.model_selection import StratifiedKFold

from scoring import metrics
from scoring.train import ScoreTrainer

# Target values read as "bad" (the positive class) when the target is text or boolean.
BAD_VALUES = frozenset({"1", "bad", "default", "defaulted", "yes", "y", "true", "t"})
# A text column with this share of distinct values (or more) names rows rather than describing them.
ID_LIKE_SHARE = 0.95


class EvaluationError(ValueError):
    """The table or its target cannot be evaluated; ``str()`` is one line for the user."""


class ColumnDecision(BaseModel):
    column: str
    action: str  # "numeric" | "categorical" | "dropped"
    reason: str


class Evaluation(BaseModel):
    """What ``model evaluate`` reports."""

    n: int
    bad_rate: float
    positive: str
    folds: int
    seed: int
    auc: float
    auc_std: float
    ks: float
    ks_std: float
    brier: float
    brier_std: float
    fold_auc: list[float]
    columns: list[ColumnDecision]


def read_table(path: Path) -> pl.DataFrame:
    """A CSV or Parquet file as a Polars frame; anything else is a clear error."""
    if not path.is_file():
        raise EvaluationError(f"no such file: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pl.read_parquet(path)
        if suffix in (".csv", ".txt"):
            return pl.read_csv(path, infer_schema_length=10_000, null_values=["", "NA", "NaN"])
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise EvaluationError(f"cannot read {path.name}: {exc}") from None
    raise EvaluationError(f"{path.name}: expected a .csv or .parquet file")


def binary_target(values: pl.Series, *, positive: str | None = None) -> tuple[np.ndarray, str]:
    """The target as 0/1 and the value taken as bad; refuses anything but two classes."""
    if values.null_count():
        raise EvaluationError(f"target {values.name} has {values.null_count()} missing values")
    text = values.cast(pl.String)
    levels = sorted(text.unique().to_list())
    if len(levels) != 2:
        shown = ", ".join(levels[:5])
        raise EvaluationError(
            f"target {values.name} must have exactly two values, found {len(levels)}: {shown}"
        )
    if positive is None:
        known = [level for level in levels if level.lower() in BAD_VALUES]
        if len(known) != 1:
            raise EvaluationError(
                f"target {values.name}: cannot tell which of {levels} is bad; pass --positive"
            )
        positive = known[0]
    elif positive not in levels:
        raise EvaluationError(f"target {values.name}: --positive {positive!r} is not one of {levels}")
    return (text == positive).cast(pl.Int64).to_numpy(), positive


def prepare_columns(frame: pl.DataFrame) -> tuple[pd.DataFrame, list[ColumnDecision]]:
    """The model's feature frame and what was done with every column."""
    decisions: list[ColumnDecision] = []
    kept: dict[str, pd.Series] = {}
    rows = frame.height
    for name, dtype in frame.schema.items():
        column = frame[name]
        distinct = column.drop_nulls().n_unique()
        numeric = dtype.is_numeric() or dtype == pl.Boolean
        if column.null_count() == rows:
            decisions.append(ColumnDecision(column=name, action="dropped", reason="all missing"))
        elif distinct <= 1:
            decisions.append(ColumnDecision(column=name, action="dropped", reason="constant"))
        elif _id_like(name, column, distinct, rows, numeric=numeric):
            decisions.append(ColumnDecision(column=name, action="dropped",
                                            reason="ID-like (a distinct value per row)"))
        elif numeric:
            kept[name] = column.cast(pl.Float64).to_pandas()
            reason = "number" + (f", {column.null_count()} missing" if column.null_count() else "")
            decisions.append(ColumnDecision(column=name, action="numeric", reason=reason))
        else:
            kept[name] = column.cast(pl.String).to_pandas().astype("category")
            decisions.append(ColumnDecision(column=name, action="categorical",
                                            reason=f"{distinct} levels"))
    if not kept:
        raise EvaluationError("no usable feature columns left after dropping empty, "
                              "constant and ID-like ones")
    return pd.DataFrame(kept), decisions


def _id_like(name: str, column: pl.Series, distinct: int, rows: int, *, numeric: bool) -> bool:
    if distinct < ID_LIKE_SHARE * rows or rows < 20:
        return False
    if not numeric:
        return True
    # A number distinct on every row is an identifier only when named like one and integral.
    named = name.lower() == "id" or name.lower().endswith(("_id", "id"))
    return named and column.dtype.is_integer()


def evaluate_table(
    frame: pl.DataFrame,
    target: str,
    *,
    folds: int = 5,
    seed: int = 0,
    positive: str | None = None,
    trainer_options: dict[str, Any] | None = None,
    on_fold: Callable[[int], None] | None = None,
) -> Evaluation:
    """Cross-validate the trainer on a labelled table; ``on_fold(i)`` after each fold."""
    if folds < 2:
        raise EvaluationError(f"--folds must be at least 2, got {folds}")
    if frame.height == 0:
        raise EvaluationError("the table is empty")
    if target not in frame.columns:
        raise EvaluationError(f"no column named {target!r} in the table")
    y, positive = binary_target(frame[target], positive=positive)
    bads = int(y.sum())
    if min(bads, y.size - bads) < folds:
        raise EvaluationError(f"too few rows of one class ({min(bads, y.size - bads)}) "
                              f"for {folds} folds")
    features, decisions = prepare_columns(frame.drop(target))
    scores: dict[str, list[float]] = {"auc": [], "ks": [], "brier": []}
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train_rows, test_rows in splitter.split(features, y):
        trainer = ScoreTrainer(random_state=seed, **(trainer_options or {}))
        trainer.fit(features.iloc[train_rows], y[train_rows])
        predicted = trainer.predict_proba(features.iloc[test_rows])
        scores["auc"].append(metrics.auc(y[test_rows], predicted))
        scores["ks"].append(metrics.ks(y[test_rows], predicted))
        scores["brier"].append(metrics.brier(y[test_rows], predicted))
        if on_fold is not None:
            on_fold(len(scores["auc"]))
    return Evaluation(
        n=frame.height, bad_rate=float(y.mean()), positive=positive, folds=folds, seed=seed,
        auc=float(np.mean(scores["auc"])), auc_std=float(np.std(scores["auc"])),
        ks=float(np.mean(scores["ks"])), ks_std=float(np.std(scores["ks"])),
        brier=float(np.mean(scores["brier"])), brier_std=float(np.std(scores["brier"])),
        fold_auc=scores["auc"], columns=decisions,
    )
