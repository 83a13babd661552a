"""Drift: profiles, PSI against them, verdicts, and the readiness check."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.settings import Settings
from scoring.drift import (
    ALARM,
    OK,
    WARN,
    Distribution,
    Profile,
    build_profile,
    compare,
    latest_report,
    readiness,
    save_report,
)

AS_OF = date(2026, 11, 1)


def _population(seed: int, shift: float = 0.0, missing: float = 0.0, size: int = 5_000) -> dict:
    rng = np.random.default_rng(seed)
    utilisation = rng.beta(2, 5, size) + shift
    utilisation[rng.random(size) < missing] = np.nan
    return {"score": rng.normal(620 + 100 * shift, 60, size), "utilisation": utilisation,
            "late_count": rng.poisson(0.3 + shift, size).astype(float)}


def test_the_same_population_shows_no_drift() -> None:
    profile = build_profile("v1", _population(1))
    report = compare(profile, _population(2), as_of=AS_OF, warn=0.1, alarm=0.25)
    assert report.status == OK
    assert report.score_psi is not None and report.score_psi < 0.02
    assert all(value < 0.02 for value in report.features.values())


def test_a_shifted_population_raises_the_alarm() -> None:
    profile = build_profile("v1", _population(1))
    report = compare(profile, _population(2, shift=0.5), as_of=AS_OF, warn=0.1, alarm=0.25)
    assert report.status == ALARM
    assert report.worst(1)[0][0] in {"utilisation", "late_count"}


def test_missing_values_that_start_arriving_count_as_drift() -> None:
    profile = build_profile("v1", _population(1))
    report = compare(profile, _population(2, missing=0.3), as_of=AS_OF, warn=0.1, alarm=0.25)
    assert report.features["utilisation"] > 0.25
    assert report.features["late_count"] < 0.02


def test_a_moderate_shift_only_warns() -> None:
    profile = build_profile("v1", _population(1))
    report = compare(profile, _population(2, shift=0.05), as_of=AS_OF, warn=0.1, alarm=0.25)
    assert report.status == WARN
    assert 0.1 < report.worst(1)[0][1] <= 0.25


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6) | st.just(float("nan")), min_size=1, max_size=200))
def test_binned_shares_always_sum_to_one(values: list[float]) -> None:
    distribution = Distribution.of(values)
    assert sum(distribution.shares) == pytest.approx(1.0)
    assert sum(distribution.binned(values)) == pytest.approx(1.0)
    assert distribution.binned(values) == pytest.approx(distribution.shares)


def test_profiles_round_trip_through_json() -> None:
    profile = build_profile("v7", _population(3))
    assert Profile.from_json(profile.to_json()) == profile


def test_bad_thresholds_are_refused() -> None:
    with pytest.raises(ValueError, match="warn"):
        compare(build_profile("v1", _population(1)), _population(2), as_of=AS_OF, warn=0.3, alarm=0.2)


def test_readiness_follows_the_newest_report(settings: Settings) -> None:
    assert readiness(settings) == (True, "no drift report yet")
    profile = build_profile("v1", _population(1))
    save_report(settings, compare(profile, _population(2, shift=0.5), as_of=AS_OF, warn=0.1, alarm=0.25))
    ready, detail = readiness(settings)
    assert not ready and "drift alarm" in detail
    calm = compare(profile, _population(2), as_of=date(2026, 11, 2), warn=0.1, alarm=0.25)
    save_report(settings, calm)
    assert latest_report(settings).as_of == "2026-11-02"
    assert readiness(settings)[0]
