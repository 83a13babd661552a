"""Drift: how far today's population has moved from the one the champion learnt on.

The reference is a *profile* of the champion's training data: for the score
and for every feature, the training deciles' edges and the share of rows in
each bin, plus the share of missing values as a bin of its own (a feature
that starts arriving empty is drift too). Today's snapshot is binned on the
same edges and compared by PSI. Profiles are small JSON files kept per model
version; each monitor run's report is kept too, and the newest report's
alarm is what readiness and the promotion gate read.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from config.settings import Settings
from scoring.metrics import psi_from_shares

SCORE = "score"
OK, WARN, ALARM = "ok", "warn", "alarm"


@dataclass(frozen=True)
class Distribution:
    """Bin edges (between deciles) and the shares of rows per bin, missing values last."""

    edges: list[float]
    shares: list[float]

    @classmethod
    def of(cls, values: npt.ArrayLike, *, bins: int = 10) -> Distribution:
        data = np.asarray(values, dtype=float).ravel()
        present = data[~np.isnan(data)]
        if present.size:
            edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1]))
        else:
            edges = np.array([], dtype=float)
        return cls(edges=edges.tolist(), shares=_shares(data, edges))

    def binned(self, values: npt.ArrayLike) -> list[float]:
        """Shares of ``values`` in this distribution's bins."""
        return _shares(np.asarray(values, dtype=float).ravel(), np.asarray(self.edges, dtype=float))


def _shares(data: npt.NDArray[np.float64], edges: npt.NDArray[np.float64]) -> list[float]:
    missing = np.isnan(data)
    counts = np.bincount(np.searchsorted(edges, data[~missing], side="right"), minlength=edges.size + 1)
    all_counts = np.append(counts, missing.sum()).astype(float)
    total = all_counts.sum()
    return (all_counts / total).tolist() if total else [0.0] * all_counts.size


@dataclass(frozen=True)
class Profile:
    """The reference distributions of one model version."""

    model_version: str
    columns: dict[str, Distribution]

    def to_json(self) -> str:
        return json.dumps({"model_version": self.model_version,
                           "columns": {name: asdict(dist) for name, dist in self.columns.items()}})

    @classmethod
    def from_json(cls, text: str) -> Profile:
        document = json.loads(text)
        columns = {name: Distribution(**dist) for name, dist in document["columns"].items()}
        return cls(model_version=document["model_version"], columns=columns)


def build_profile(model_version: str, columns: dict[str, npt.ArrayLike]) -> Profile:
    """A profile of named value arrays (the score under ``"score"``, features by name)."""
    return Profile(model_version, {name: Distribution.of(values) for name, values in columns.items()})


@dataclass
class DriftReport:
    as_of: str
    model_version: str
    created_at: str
    warn_threshold: float
    alarm_threshold: float
    score_psi: float | None
    features: dict[str, float] = field(default_factory=dict)
    status: str = OK

    @property
    def alarm(self) -> bool:
        return self.status == ALARM

    def worst(self, count: int = 5) -> list[tuple[str, float]]:
        return sorted(self.features.items(), key=lambda item: -item[1])[:count]


def compare(profile: Profile, columns: dict[str, npt.ArrayLike], *, as_of: date,
            warn: float, alarm: float) -> DriftReport:
    """PSI of each current column against the profile, and the verdict of the worst one."""
    if not 0 < warn < alarm:
        raise ValueError(f"thresholds must satisfy 0 < warn < alarm, got warn={warn}, alarm={alarm}")
    values = {}
    for name, reference in profile.columns.items():
        if name in columns:
            values[name] = psi_from_shares(reference.shares, reference.binned(columns[name]))
    score_psi = values.pop(SCORE, None)
    worst = max([*values.values(), *([score_psi] if score_psi is not None else [])], default=0.0)
    status = ALARM if worst > alarm else WARN if worst > warn else OK
    return DriftReport(as_of=as_of.isoformat(), model_version=profile.model_version,
                       created_at=datetime.now(UTC).isoformat(timespec="microseconds"),
                       warn_threshold=warn, alarm_threshold=alarm, score_psi=score_psi,
                       features={name: _finite(value) for name, value in values.items()}, status=status)


def _finite(value: float) -> float:
    return value if math.isfinite(value) else float("inf")


# -- where profiles and reports live ---------------------------------------------


def profile_path(settings: Settings, model_version: str) -> Path:
    return settings.path("drift", "profiles", f"{model_version}.json")


def save_profile(settings: Settings, profile: Profile) -> Path:
    path = profile_path(settings, profile.model_version)
    _write_atomic(path, profile.to_json())
    return path


def load_profile(settings: Settings, model_version: str) -> Profile | None:
    path = profile_path(settings, model_version)
    return Profile.from_json(path.read_text(encoding="utf-8")) if path.exists() else None


def save_report(settings: Settings, report: DriftReport) -> Path:
    path = settings.path("drift", "reports", f"{report.as_of}_{report.model_version}.json")
    _write_atomic(path, json.dumps(asdict(report)))
    return path


def latest_report(settings: Settings) -> DriftReport | None:
    """The report written last (by creation time), or None before the first run."""
    folder = settings.path("drift", "reports")
    if not folder.is_dir():
        return None
    reports = [DriftReport(**json.loads(path.read_text(encoding="utf-8")))
               for path in folder.glob("*.json")]
    return max(reports, key=lambda report: report.created_at, default=None)


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    draft.write_text(text, encoding="utf-8")
    os.replace(draft, path)


def readiness(settings: Settings) -> tuple[bool, str]:
    """The readiness verdict: not ready while the newest drift report is an alarm."""
    report = latest_report(settings)
    if report is None:
        return True, "no drift report yet"
    if report.alarm:
        worst = ", ".join(f"{name} {value:.2f}" for name, value in report.worst(3))
        return False, f"drift alarm as of {report.as_of} (PSI: {worst}; score {report.score_psi})"
    return True, f"{report.status} as of {report.as_of}"


def details(report: DriftReport) -> dict[str, Any]:
    """What the job ledger keeps of a report: the verdict and the worst columns."""
    return {"status": report.status, "score_psi": report.score_psi,
            "worst_features": dict(report.worst(10)), "model_version": report.model_version}
