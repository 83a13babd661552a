"""Training at scale: the same model, fitted by ``xgboost.spark`` on a Spark cluster.

The bounded hyper-parameter search runs as on one machine, on a stratified
sample of at most ``search_rows`` rows (a search does not need every row);
the final fit of the chosen candidate then runs distributed over every row
with :class:`xgboost.spark.SparkXGBClassifier`. The result is an ordinary
XGBoost booster with the same feature order, monotone constraints and
parameters, so the registry, scoring and explanations cannot tell which
engine trained it.

Numeric features only (as the feature store produces); missing values stay
missing (``missing=NaN``), exactly as on one machine.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from scoring.frames import Frame, to_pandas
from scoring.train import ScoreTrainer

log = logging.getLogger(__name__)


class SparkScoreTrainer(ScoreTrainer):
    """ScoreTrainer whose final fit runs on Spark.

    Parameters are those of :class:`ScoreTrainer`, plus ``spark`` (a
    SparkSession; default: features.engine_spark's local session) and
    ``num_workers`` (Spark tasks that train together).
    """

    def __init__(self, *, spark: Any | None = None, num_workers: int = 2,
                 monotone: Mapping[str, int] | None = None, **options: Any) -> None:
        super().__init__(monotone=monotone, **options)
        if num_workers < 1:
            raise ValueError(f"num_workers must be at least 1, got {num_workers!r}")
        self.spark = spark
        self.num_workers = num_workers

    def fit(self, X: Frame, y: npt.ArrayLike, *, groups: npt.ArrayLike | None = None,
            ) -> SparkScoreTrainer:
        table = to_pandas(X)
        non_numeric = [name for name in table.columns
                       if not pd.api.types.is_numeric_dtype(table[name].dtype)]
        if non_numeric:
            raise ValueError(f"the Spark engine takes numeric features only: {non_numeric[0]}")
        local = ScoreTrainer(
            monotone=self.monotone, search_budget=self.search_budget, cv_folds=self.cv_folds,
            max_rounds=self.max_rounds, early_stopping_rounds=self.early_stopping_rounds,
            search_rows=self.search_rows, random_state=self.random_state, n_jobs=self.n_jobs,
        )
        rows, labels, group_ids = _search_sample(table, np.asarray(y), groups, self.search_rows,
                                                 self.random_state)
        local.fit(rows, labels, groups=group_ids)
        self.feature_names_ = [str(name) for name in table.columns]
        self.categories_ = {}
        self.search_results_ = local.search_results_
        self.params_ = local.params_
        self.cv_auc_, self.cv_auc_std_ = local.cv_auc_, local.cv_auc_std_
        self.n_rounds_ = local.n_rounds_
        self.booster_ = self._spark_fit(table, np.asarray(y))
        return self

    def _spark_fit(self, table: pd.DataFrame, labels: np.ndarray) -> Any:
        from xgboost.spark import SparkXGBClassifier

        spark = self.spark or _default_session()
        frame = table.astype("float64").assign(label=labels.astype("float64"))
        data = spark.createDataFrame(frame).repartition(self.num_workers)
        params = self._xgb_params(self.params_)
        classifier = SparkXGBClassifier(
            features_col=self.feature_names_, label_col="label", num_workers=self.num_workers,
            n_estimators=self.n_rounds_, max_depth=params["max_depth"],
            learning_rate=params["eta"], min_child_weight=params["min_child_weight"],
            reg_lambda=params["reg_lambda"], reg_alpha=params["reg_alpha"],
            subsample=params["subsample"], colsample_bytree=params["colsample_bytree"],
            monotone_constraints=params["monotone_constraints"], tree_method="hist",
            missing=float("nan"), random_state=self.random_state,
        )
        model = classifier.fit(data)
        log.info("spark trained %d trees on %d rows", self.n_rounds_, len(table))
        return model.get_booster()


def _default_session() -> Any:
    from features.engine_spark import spark_session

    use_this_python()
    return spark_session()


def use_this_python() -> None:
    """Spark's Python workers must run this interpreter (its venv has xgboost and pandas).

    Takes effect for a SparkContext started afterwards.
    """
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)


def _search_sample(table: pd.DataFrame, labels: np.ndarray, groups: npt.ArrayLike | None,
                   limit: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray | None]:
    """The rows the local search sees (all of them, or a random ``limit`` rows)."""
    group_ids = None if groups is None else np.asarray(groups)
    if len(table) <= limit:
        return table, labels, group_ids
    rows = np.sort(np.random.default_rng(seed).choice(len(table), size=limit, replace=False))
    return table.iloc[rows], labels[rows], None if group_ids is None else group_ids[rows]
