"""Small real XGBoost models over the real feature catalogue, for the explanation tests.

The features are random but the label follows a few of them in their monotone
direction, and the model is trained with the catalogue's monotone
constraints, as the real trainer does.
"""

from __future__ import annotations

import numpy as np
import xgboost as xgb

from config.feature_definitions import load_feature_definitions
from scoring.points import ScoreModel

# Features that drive the synthetic risk (several of them actionable).
DRIVERS = ("repay_ontime_share_365d", "bill_ontime_share_365d", "balance_mean_90d",
           "repay_late30_count_365d", "credit_history_months", "contacts_delinquent_365d",
           "spend_gambling_share_365d", "identity_verified")


def feature_names() -> tuple[str, ...]:
    return tuple(load_feature_definitions().names)


def random_features(n: int, *, seed: int, missing: float = 0.1) -> np.ndarray:
    """An (n, features) float32 matrix in catalogue order, values in [0, 1], some missing."""
    rng = np.random.default_rng(seed)
    values = rng.random((n, len(feature_names()))).astype(np.float32)
    values[rng.random(values.shape) < missing] = np.nan
    flag = feature_names().index("identity_verified")
    values[:, flag] = np.round(values[:, flag])
    return values


def train_model(*, seed: int = 0, n: int = 1500, trees: int = 30, depth: int = 3,
                a: float = 0.9, b: float = 0.1, version: str = "test-v1") -> ScoreModel:
    """A real booster trained on random features with a known monotone risk."""
    definitions = load_feature_definitions()
    names = feature_names()
    values = random_features(n, seed=seed)
    rng = np.random.default_rng(seed + 1)
    log_odds = np.full(n, -2.0)
    for name in DRIVERS:
        column = np.nan_to_num(values[:, names.index(name)], nan=0.5)
        direction = definitions.get(name).direction or 1
        log_odds += 2.5 * direction * (column - 0.5)
    bad = (rng.random(n) < 1.0 / (1.0 + np.exp(-log_odds))).astype(int)
    constraints = "(" + ",".join(str(definitions.get(name).direction) for name in names) + ")"
    params = {"objective": "binary:logistic", "max_depth": depth, "eta": 0.3, "seed": seed,
              "monotone_constraints": constraints, "nthread": 1, "verbosity": 0}
    booster = xgb.train(params, xgb.DMatrix(values, label=bad, feature_names=list(names)), trees)
    return ScoreModel(booster=booster, feature_names=names, a=a, b=b, version=version)
