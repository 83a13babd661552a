"""The trainer: XGBoost (binary:logistic) with monotone constraints and a small search.

A scikit-learn-like estimator. ``fit`` runs a bounded, deterministic search
over depth, learning rate, regularisation and sampling, each candidate scored
by stratified cross-validated AUC with early stopping (which also picks the
number of trees), then refits the best candidate on all rows. Missing values
are left to XGBoost's native handling; categorical columns use its native
categorical splits. The feature order seen by ``fit`` is pinned: prediction
reorders its input to it and refuses a frame that lacks a column.

Depth-1 candidates are in the search on purpose: boosted stumps are an
additive model (a scorecard), which is what wins on small, mostly linear
tables where deeper trees overfit and lose to a logistic regression.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import xgboost as xgb
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from scoring.frames import Frame, infer_categories, model_matrix, to_pandas

log = logging.getLogger(__name__)

# The first candidate is always tried; the rest are drawn from the grid.
DEFAULT_CANDIDATE: dict[str, Any] = {
    "max_depth": 3, "eta": 0.05, "min_child_weight": 1.0, "reg_lambda": 1.0,
    "reg_alpha": 0.0, "subsample": 0.8, "colsample_bytree": 0.8,
}
SEARCH_GRID: dict[str, tuple[Any, ...]] = {
    "max_depth": (1, 2, 3, 4, 5, 6),
    "eta": (0.02, 0.05, 0.1),
    "min_child_weight": (1.0, 5.0, 20.0),
    "reg_lambda": (1.0, 5.0, 20.0),
    "reg_alpha": (0.0, 1.0),
    "subsample": (0.7, 0.9),
    "colsample_bytree": (0.5, 0.8),
}


@dataclass(frozen=True)
class Candidate:
    """One point of the search and its cross-validated result."""

    params: dict[str, Any]
    cv_auc: float
    cv_auc_std: float
    n_rounds: int


class ScoreTrainer:
    """Fit an XGBoost model of P(bad).

    Parameters
    ----------
    monotone: feature name -> +1 (risk rises with the value), -1 or 0.
    search_budget: how many candidates the search tries (>= 1; the first is the default).
    cv_folds: folds of the search's cross-validation (>= 2).
    max_rounds: upper bound on trees; early stopping usually ends sooner.
    early_stopping_rounds: rounds without a better CV AUC before a candidate stops.
    search_rows: the search runs on a stratified sample of at most this many rows.
    random_state: seeds the search, the folds, the sample and XGBoost.
    n_jobs: XGBoost threads; None or 1: one (as scikit-learn), 0 or -1: all cores. Threads
        pay off on an idle machine only: on a busy one OpenMP's spinning makes them slower.
    """

    def __init__(
        self,
        *,
        monotone: Mapping[str, int] | None = None,
        search_budget: int = 8,
        cv_folds: int = 3,
        max_rounds: int = 2000,
        early_stopping_rounds: int = 50,
        search_rows: int = 200_000,
        random_state: int = 0,
        n_jobs: int | None = None,
    ) -> None:
        self.monotone = dict(monotone or {})
        self.search_budget = search_budget
        self.cv_folds = cv_folds
        self.max_rounds = max_rounds
        self.early_stopping_rounds = early_stopping_rounds
        self.search_rows = search_rows
        self.random_state = random_state
        self.n_jobs = n_jobs
        self._validate_parameters()

    def _validate_parameters(self) -> None:
        checks = {
            "search_budget": self.search_budget >= 1,
            "cv_folds": self.cv_folds >= 2,
            "max_rounds": self.max_rounds >= 1,
            "early_stopping_rounds": self.early_stopping_rounds >= 1,
            "search_rows": self.search_rows >= 100,
            "n_jobs": self.n_jobs is None or self.n_jobs >= -1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"{name} is out of range: {getattr(self, name)!r}")
        bad = {name: value for name, value in self.monotone.items() if value not in (-1, 0, 1)}
        if bad:
            raise ValueError(f"monotone: constraints must be -1, 0 or 1, got {bad}")

    # -- fitting -------------------------------------------------------------

    def fit(self, X: Frame, y: npt.ArrayLike, *, groups: npt.ArrayLike | None = None,
            ) -> ScoreTrainer:
        """Search, then refit the best candidate on every row.

        ``groups`` (e.g. user ids when a user appears at several as-of dates)
        keeps each group inside one fold of the search, so that the folds do
        not leak a user's future rows into their own validation.
        """
        table = to_pandas(X)
        labels = _binary_labels(y, len(table))
        group_ids = None if groups is None else np.asarray(groups)
        if group_ids is not None and group_ids.shape != labels.shape:
            raise ValueError(f"groups must be one value per row of X ({labels.size})")
        self.feature_names_ = [str(name) for name in table.columns]
        if not self.feature_names_:
            raise ValueError("X has no feature columns")
        self.categories_ = infer_categories(table)
        self._check_monotone()
        matrix = model_matrix(table, self.feature_names_, self.categories_)
        self.search_results_ = self._search(matrix, labels, group_ids)
        best = max(self.search_results_, key=lambda candidate: candidate.cv_auc)
        self.params_ = dict(best.params)
        self.cv_auc_ = best.cv_auc
        self.cv_auc_std_ = best.cv_auc_std
        # The refit sees 1/cv_folds more rows than each CV model: a few more trees.
        self.n_rounds_ = max(1, round(best.n_rounds * (1.0 + 1.0 / (2 * self.cv_folds))))
        self.booster_ = xgb.train(
            self._xgb_params(best.params), self._dmatrix(matrix, labels),
            num_boost_round=self.n_rounds_,
        )
        log.info("trained %d trees, params %s, cv auc %.4f", self.n_rounds_, best.params,
                 best.cv_auc)
        return self

    def _check_monotone(self) -> None:
        unknown = sorted(set(self.monotone) - set(self.feature_names_))
        if unknown:
            raise ValueError(f"monotone: no such feature column: {', '.join(unknown[:5])}")
        categorical = sorted(name for name, value in self.monotone.items()
                             if value and name in self.categories_)
        if categorical:
            raise ValueError(f"monotone: categorical column cannot be constrained: {categorical[0]}")

    def _search(self, matrix: pd.DataFrame, labels: np.ndarray,
                groups: np.ndarray | None) -> list[Candidate]:
        sample = _stratified_sample(labels, self.search_rows, self.random_state)
        dtrain = self._dmatrix(matrix.iloc[sample], labels[sample])
        splitter = StratifiedGroupKFold if groups is not None else StratifiedKFold
        folds = list(splitter(self.cv_folds, shuffle=True, random_state=self.random_state).split(
            sample, labels[sample], None if groups is None else groups[sample]))
        results = []
        for params in self.candidates():
            history = xgb.cv(
                self._xgb_params(params), dtrain, num_boost_round=self.max_rounds,
                folds=folds, metrics="auc", early_stopping_rounds=self.early_stopping_rounds,
                seed=self.random_state,
            )
            results.append(Candidate(
                params=params, cv_auc=float(history["test-auc-mean"].iloc[-1]),
                cv_auc_std=float(history["test-auc-std"].iloc[-1]), n_rounds=len(history),
            ))
        return results

    def candidates(self) -> list[dict[str, Any]]:
        """The search's candidates, in order: the default, then distinct draws from the grid."""
        rng = np.random.default_rng(self.random_state)
        chosen = [dict(DEFAULT_CANDIDATE)]
        seen = {tuple(sorted(DEFAULT_CANDIDATE.items()))}
        attempts = 0
        while len(chosen) < self.search_budget and attempts < 50 * self.search_budget:
            attempts += 1
            draw = {name: values[int(rng.integers(len(values)))]
                    for name, values in SEARCH_GRID.items()}
            key = tuple(sorted(draw.items()))
            if key not in seen:
                seen.add(key)
                chosen.append(draw)
        return chosen

    def _xgb_params(self, candidate: Mapping[str, Any]) -> dict[str, Any]:
        constraints = tuple(self.monotone.get(name, 0) for name in self.feature_names_)
        return {
            **candidate,
            "objective": "binary:logistic",
            "eval_metric": "auc",
            "tree_method": "hist",
            "max_cat_to_onehot": 8,
            "monotone_constraints": "(" + ",".join(str(c) for c in constraints) + ")",
            "nthread": self._threads,
            "seed": self.random_state,
            "verbosity": 0,
        }

    def _dmatrix(self, matrix: pd.DataFrame, labels: np.ndarray | None = None) -> xgb.DMatrix:
        return xgb.DMatrix(matrix, label=labels, enable_categorical=True, missing=np.nan,
                           nthread=self._threads)

    @property
    def _threads(self) -> int:
        """XGBoost's nthread: 0 means all cores."""
        if self.n_jobs is None:
            return 1
        return 0 if self.n_jobs in (0, -1) else self.n_jobs

    # -- prediction ----------------------------------------------------------

    def _fitted_matrix(self, X: Frame) -> xgb.DMatrix:
        if not hasattr(self, "booster_"):
            raise RuntimeError("this ScoreTrainer is not fitted yet; call fit first")
        return self._dmatrix(model_matrix(X, self.feature_names_, self.categories_))

    def predict_margin(self, X: Frame) -> npt.NDArray[np.float64]:
        """The model's raw log-odds of bad (before calibration)."""
        return self.booster_.predict(self._fitted_matrix(X), output_margin=True).astype(float)

    def predict_proba(self, X: Frame) -> npt.NDArray[np.float64]:
        """P(bad) for each row (uncalibrated)."""
        return self.booster_.predict(self._fitted_matrix(X)).astype(float)

    def contributions(self, X: Frame) -> npt.NDArray[np.float64]:
        """Exact TreeSHAP contributions to the margin; the last column is the bias."""
        matrix = self._fitted_matrix(X)
        return self.booster_.predict(matrix, pred_contribs=True).astype(float)


def _binary_labels(y: npt.ArrayLike, n_rows: int) -> np.ndarray:
    labels = np.asarray(y)
    if labels.ndim != 1 or labels.size != n_rows:
        raise ValueError(f"y must be one label per row of X ({n_rows}), got shape {labels.shape}")
    if n_rows == 0:
        raise ValueError("X is empty")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("y must hold only 0 (good) and 1 (bad)")
    labels = labels.astype(np.int64)
    if labels.min() == labels.max():
        raise ValueError("y holds only one class; training needs goods and bads")
    return labels


def _stratified_sample(labels: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """Row indices: all of them, or a class-stratified sample of ``limit`` rows."""
    if labels.size <= limit:
        return np.arange(labels.size)
    rng = np.random.default_rng(seed)
    picks = []
    for value in (0, 1):
        rows = np.flatnonzero(labels == value)
        take = max(1, round(limit * rows.size / labels.size))
        picks.append(rng.choice(rows, size=min(take, rows.size), replace=False))
    return np.sort(np.concatenate(picks))
