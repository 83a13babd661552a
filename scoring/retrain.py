"""Monthly retraining: train a challenger, then promote it only through the gates.

Automatic promotion is more careful than an operator's: besides the
registry's gates (out-of-time AUC, score PSI against the champion), it stops
while the drift monitor's newest report is an alarm, because a model judged
on a population that has moved away is judged on the wrong people. An
operator can still promote by hand (``altcredit model promote``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

from config.settings import Settings
from scoring import drift
from scoring.registry import RegistryError, promote
from scoring.training import train_model

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrainOutcome:
    version: str
    promoted: bool
    reason: str
    oot_auc: float | None


def retrain_and_propose(settings: Settings, *, as_of: date | None = None) -> RetrainOutcome:
    """Train a new version; promote it when it is the first, or when every gate lets it pass."""
    outcome = train_model(settings)
    auc = outcome.oot.get("auc")
    if outcome.role == "champion":
        return RetrainOutcome(outcome.version, True, "first model: champion", auc)
    return propose(settings, outcome.version, oot_auc=auc)


def propose(settings: Settings, version: str, *, oot_auc: float | None = None) -> RetrainOutcome:
    """Promote challenger ``version`` automatically, unless drift or a registry gate says no."""
    report = drift.latest_report(settings)
    if report is not None and report.alarm:
        reason = f"not promoted: drift alarm as of {report.as_of}"
        logger.warning("%s stays a challenger: %s", version, reason)
        return RetrainOutcome(version, False, reason, oot_auc)
    try:
        result = promote(settings, version, note="automatic promotion after retraining")
    except RegistryError as exc:
        logger.warning("%s stays a challenger: %s", version, exc)
        return RetrainOutcome(version, False, str(exc), oot_auc)
    return RetrainOutcome(result.version, True, f"promoted over {result.previous}", oot_auc)
