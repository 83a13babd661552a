"""Platt calibration on the model's margin: log-odds of bad = a * margin + b.

Linear in the margin on purpose: the score ``A - B * (a * margin + b)`` then
stays an exact sum of per-feature points, which isotonic or binned
calibration would break. Fitted by Newton's method on the logistic
log-likelihood (two parameters, a tiny ridge for stability when the classes
separate).
"""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt

from scoring.scale import calibrated_log_odds, probability_from_log_odds

log = logging.getLogger(__name__)


class PlattCalibrator:
    """Learn (a, b) so that sigmoid(a * margin + b) matches the observed bad rate.

    Parameters
    ----------
    max_iter: Newton steps at most.
    tol: stop when no parameter moves by more than this.
    ridge: L2 penalty on (a - 1, b), keeping a fit on separable data finite.
    """

    def __init__(self, *, max_iter: int = 100, tol: float = 1e-10, ridge: float = 1e-6) -> None:
        if max_iter < 1:
            raise ValueError(f"max_iter must be at least 1, got {max_iter!r}")
        if tol <= 0:
            raise ValueError(f"tol must be positive, got {tol!r}")
        if ridge < 0:
            raise ValueError(f"ridge must be non-negative, got {ridge!r}")
        self.max_iter = max_iter
        self.tol = tol
        self.ridge = ridge

    def fit(self, margin: npt.ArrayLike, y: npt.ArrayLike) -> PlattCalibrator:
        x = np.asarray(margin, dtype=float).ravel()
        labels = np.asarray(y).ravel()
        if x.size != labels.size or x.size == 0:
            raise ValueError("margin and y must be non-empty and of the same length")
        if not np.isin(labels, (0, 1)).all():
            raise ValueError("y must hold only 0 (good) and 1 (bad)")
        if not np.isfinite(x).all():
            raise ValueError("margin holds non-finite values")
        target = labels.astype(float)
        params = np.array([1.0, 0.0])
        design = np.column_stack([x, np.ones_like(x)])
        self.n_iter_ = 0
        while self.n_iter_ < self.max_iter:
            self.n_iter_ += 1
            p = probability_from_log_odds(design @ params)
            gradient = design.T @ (p - target) + self.ridge * (params - [1.0, 0.0])
            weights = np.clip(p * (1.0 - p), 1e-12, None)
            hessian = (design * weights[:, None]).T @ design + self.ridge * np.eye(2)
            step = np.linalg.solve(hessian, gradient)
            params = params - step
            if np.max(np.abs(step)) < self.tol:
                break
        self.a_, self.b_ = float(params[0]), float(params[1])
        if self.a_ <= 0:
            log.warning("calibration slope %.4f is not positive: the margin does not rank risk",
                        self.a_)
        return self

    def log_odds(self, margin: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Calibrated log-odds of bad."""
        self._check_fitted()
        return calibrated_log_odds(np.asarray(margin, dtype=float), self.a_, self.b_)

    def predict_proba(self, margin: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Calibrated P(bad)."""
        return probability_from_log_odds(self.log_odds(margin))

    def _check_fitted(self) -> None:
        if not hasattr(self, "a_"):
            raise RuntimeError("this PlattCalibrator is not fitted yet; call fit first")
