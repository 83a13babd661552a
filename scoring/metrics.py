"""Quality measures of a score, as pure functions of labels and predictions.

``y`` is 1 for bad and 0 for good; ``p`` is a predicted probability of bad (or
any score that rises with risk, for the ranking measures). scikit-learn does
the work where it has the measure.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from sklearn import metrics as skm

Array = npt.ArrayLike

_EPSILON = 1e-6


def _pair(y: Array, p: Array) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    labels = np.asarray(y).astype(np.int64).ravel()
    predictions = np.asarray(p, dtype=float).ravel()
    if labels.shape != predictions.shape:
        raise ValueError(f"y and p differ in length ({labels.size} vs {predictions.size})")
    if labels.size == 0:
        raise ValueError("y is empty")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("y must hold only 0 (good) and 1 (bad)")
    return labels, predictions


def _both_classes(labels: npt.NDArray[np.int64]) -> None:
    if labels.min() == labels.max():
        raise ValueError("y holds only one class; ranking measures need goods and bads")


def auc(y: Array, p: Array) -> float:
    """Area under the ROC curve."""
    labels, predictions = _pair(y, p)
    _both_classes(labels)
    return float(skm.roc_auc_score(labels, predictions))


def gini(y: Array, p: Array) -> float:
    """Accuracy ratio, 2 * AUC - 1."""
    return 2.0 * auc(y, p) - 1.0


def ks(y: Array, p: Array) -> float:
    """Kolmogorov-Smirnov: the largest gap between the bads' and goods' cumulative shares."""
    labels, predictions = _pair(y, p)
    _both_classes(labels)
    false_positive, true_positive, _ = skm.roc_curve(labels, predictions)
    return float(np.max(true_positive - false_positive))


def brier(y: Array, p: Array) -> float:
    """Mean squared error of the probability."""
    labels, predictions = _pair(y, p)
    return float(skm.brier_score_loss(labels, np.clip(predictions, 0.0, 1.0)))


def log_loss(y: Array, p: Array) -> float:
    """Mean negative log-likelihood, probabilities clipped away from 0 and 1."""
    labels, predictions = _pair(y, p)
    clipped = np.clip(predictions, _EPSILON, 1.0 - _EPSILON)
    return float(skm.log_loss(labels, clipped, labels=[0, 1]))


def roc_points(y: Array, p: Array) -> tuple[list[float], list[float]]:
    """The ROC curve as (false positive rates, true positive rates)."""
    labels, predictions = _pair(y, p)
    _both_classes(labels)
    false_positive, true_positive, _ = skm.roc_curve(labels, predictions, drop_intermediate=True)
    return false_positive.tolist(), true_positive.tolist()


def calibration_table(y: Array, p: Array, *, bins: int = 10) -> list[dict[str, float]]:
    """Mean predicted vs observed bad rate in ``bins`` equal-count bins of the prediction."""
    if bins < 1:
        raise ValueError("bins must be at least 1")
    labels, predictions = _pair(y, p)
    order = np.argsort(predictions, kind="stable")
    rows = []
    for index, chunk in enumerate(np.array_split(order, min(bins, labels.size))):
        rows.append({
            "bin": index + 1,
            "n": int(chunk.size),
            "predicted": float(predictions[chunk].mean()),
            "observed": float(labels[chunk].mean()),
        })
    return rows


def psi(expected: Array, actual: Array, *, bins: int = 10) -> float:
    """Population stability index of ``actual`` against ``expected``.

    Bins are the ``expected`` deciles (or fewer, where values repeat); empty
    shares are floored at a small epsilon so that the index stays finite.
    """
    if bins < 2:
        raise ValueError("bins must be at least 2")
    reference = np.asarray(expected, dtype=float).ravel()
    current = np.asarray(actual, dtype=float).ravel()
    if reference.size == 0 or current.size == 0:
        raise ValueError("psi needs non-empty expected and actual values")
    inner = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    return psi_from_shares(_shares(reference, inner), _shares(current, inner))


def psi_from_shares(expected: Array, actual: Array) -> float:
    """PSI of two share vectors over the same bins: sum((a - e) * ln(a / e))."""
    e = np.clip(np.asarray(expected, dtype=float), 1e-4, None)
    a = np.clip(np.asarray(actual, dtype=float), 1e-4, None)
    return float(np.sum((a - e) * np.log(a / e)))


def _shares(values: npt.NDArray[np.float64], inner_edges: npt.NDArray[np.float64]) -> np.ndarray:
    counts = np.bincount(np.searchsorted(inner_edges, values, side="right"),
                         minlength=inner_edges.size + 1)
    return counts / counts.sum()


def summary(y: Array, p: Array) -> dict[str, float]:
    """The headline measures at once: auc, gini, ks, brier, log_loss, bad_rate, mean_predicted."""
    labels, predictions = _pair(y, p)
    return {
        "auc": auc(labels, predictions),
        "gini": gini(labels, predictions),
        "ks": ks(labels, predictions),
        "brier": brier(labels, predictions),
        "log_loss": log_loss(labels, predictions),
        "bad_rate": float(labels.mean()),
        "mean_predicted": float(np.clip(predictions, 0, 1).mean()),
        "n": float(labels.size),
    }
