from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl
import pytest

from config.scorecard import load_scorecard
from scoring.labels import (
    LabelError,
    add_months,
    label_frame,
    latest_complete_as_of,
    training_as_of_dates,
)

AS_OF = date(2024, 1, 1)
KNOWN = datetime(2025, 6, 1, tzinfo=UTC)
LABEL = load_scorecard().label


def _events(rows: list[dict]) -> pl.LazyFrame:
    base = {"kind": "payment", "due_date": None, "days_late": None}
    schema = {"user_id": pl.String, "kind": pl.String, "event_time": pl.Datetime("us", "UTC"),
              "due_date": pl.Date, "days_late": pl.Int32}
    return pl.DataFrame([{**base, **row} for row in rows], schema=schema).lazy()


def _at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def _history(user: str) -> dict:
    return {"user_id": user, "event_time": _at(2023, 6, 1)}


def _label(rows: list[dict]) -> dict[str, int]:
    events = _events([*rows, {"user_id": "filler", "event_time": _at(2025, 5, 1)}])
    frame = label_frame(events, [AS_OF], known_until=KNOWN)
    return dict(zip(frame["user_id"], frame["bad"], strict=True))


def test_a_default_inside_the_window_is_bad_and_outside_is_not() -> None:
    labels = _label([
        _history("in"), {"user_id": "in", "kind": "default", "event_time": _at(2024, 12, 31)},
        _history("after"), {"user_id": "after", "kind": "default", "event_time": _at(2025, 1, 1)},
        _history("clean"),
    ])
    assert labels == {"in": 1, "after": 0, "clean": 0}


def test_a_late_repayment_counts_when_its_delinquency_became_visible() -> None:
    labels = _label([
        # due 2023-11-01: 90 days past due on 2024-01-30, inside the window
        _history("due_before"), {"user_id": "due_before", "kind": "repayment",
                                 "event_time": _at(2024, 3, 1), "due_date": date(2023, 11, 1),
                                 "days_late": 121},
        # due 2023-09-01: visible 2023-11-30, before the as-of date: already bad, left out
        _history("old"), {"user_id": "old", "kind": "repayment", "event_time": _at(2024, 2, 1),
                          "due_date": date(2023, 9, 1), "days_late": 153},
        # 89 days late is not bad
        _history("nearly"), {"user_id": "nearly", "kind": "repayment",
                             "event_time": _at(2024, 5, 1), "due_date": date(2024, 2, 2),
                             "days_late": 89},
    ])
    assert labels["due_before"] == 1
    assert "old" not in labels
    assert labels["nearly"] == 0


def test_users_first_seen_after_the_as_of_date_are_not_labelled() -> None:
    labels = _label([{"user_id": "newcomer", "event_time": _at(2024, 2, 1)}])
    assert "newcomer" not in labels


def test_an_incomplete_outcome_window_is_refused_not_labelled_good() -> None:
    events = _events([_history("a"), {"user_id": "a", "event_time": _at(2024, 11, 1)}])
    with pytest.raises(LabelError, match="outcome window ends 2025-01-01"):
        label_frame(events, [AS_OF], known_until=KNOWN)


def test_the_knowledge_time_also_bounds_the_window() -> None:
    events = _events([_history("a"), {"user_id": "a", "event_time": _at(2025, 5, 1)}])
    with pytest.raises(LabelError, match="cannot be labelled yet"):
        label_frame(events, [AS_OF], known_until=_at(2024, 12, 1))


def test_add_months_clamps_to_the_month_end() -> None:
    assert add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)
    assert add_months(date(2024, 3, 15), -14) == date(2023, 1, 15)


def test_training_dates_end_at_the_latest_complete_window() -> None:
    end = _at(2025, 6, 15, 12)
    dates = training_as_of_dates(end, 3, LABEL)
    assert dates == [date(2024, 4, 1), date(2024, 5, 1), date(2024, 6, 1)]
    assert latest_complete_as_of(_at(2025, 6, 1), LABEL) == date(2024, 6, 1)
    assert latest_complete_as_of(_at(2025, 5, 31, 23), LABEL) == date(2024, 5, 1)
