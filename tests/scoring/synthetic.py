"""Small synthetic credit populations with a known risk, for the scoring tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

# Feature -> (weight on the log-odds of bad, monotone direction).
RISK_WEIGHTS = {"late_count": 0.9, "utilisation": 1.2, "tenure_years": -0.35, "noise": 0.0}


def population(
    n: int = 2000, *, seed: int = 0, base_log_odds: float = -3.0
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """(features, bad labels, true probability of bad) with some missing values."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "late_count": rng.poisson(0.6, n).astype(float),
        "utilisation": rng.beta(2, 3, n),
        "tenure_years": rng.gamma(2.0, 2.0, n),
        "noise": rng.normal(size=n),
    })
    log_odds = base_log_odds + sum(w * frame[c].to_numpy() for c, w in RISK_WEIGHTS.items())
    truth = 1.0 / (1.0 + np.exp(-log_odds))
    bad = (rng.random(n) < truth).astype(np.int64)
    frame.loc[rng.random(n) < 0.1, "tenure_years"] = np.nan
    return frame, bad, truth


def monotone() -> dict[str, int]:
    return {name: int(np.sign(weight)) for name, weight in RISK_WEIGHTS.items()}
