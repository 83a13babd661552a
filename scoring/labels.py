"""Labels from outcomes: who went bad in the 12 months after an as-of date.

bad(user, D) = 1 when, as known at the labelling time T, the user has

* a ``default`` event with ``event_time`` in [D, D + horizon), or
* a ``repayment`` at least ``bad_days_late`` days late whose delinquency
  became visible in [D, D + horizon). A repayment 90 days late was first
  *visibly* 90 days past due at ``due_date + 90 days``, whenever it was paid,
  so that instant (not the payment date, not the due date) is the one we
  place in the window. It is the earliest moment anyone could have known, and
  it treats a payment made on day 200 like one made on day 91.

Only users seen before D (any event with ``event_time < D``) are labelled, so
a label row always has a feature snapshot to join. Users already bad before D
are left out (they are collections cases, not applicants). An as-of date whose
outcome window is not complete — D + horizon later than T or than the data's
last event — is refused: its users are excluded, never labelled good.
"""

from __future__ import annotations

import calendar
import logging
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta

import polars as pl

from config.scorecard import LabelDefinition, load_scorecard
from config.settings import Settings
from features import lake

log = logging.getLogger(__name__)


class LabelError(ValueError):
    """Labels cannot be built as asked; ``str()`` is one line for the user."""


def add_months(day: date, months: int) -> date:
    """The same day ``months`` later (or earlier), clamped to the month's last day."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def instant(day: date) -> datetime:
    """Midnight UTC at the start of ``day``."""
    return datetime.combine(day, time(0), tzinfo=UTC)


def data_end(events: pl.LazyFrame) -> datetime | None:
    """The latest event_time among the events (None when there are none)."""
    value = events.select(pl.col("event_time").max()).collect().item()
    return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)


def latest_complete_as_of(end: datetime, definition: LabelDefinition) -> date:
    """The latest first-of-month as-of date whose whole outcome window ends by ``end``."""
    candidate = add_months(end.astimezone(UTC).date(), -definition.horizon_months)
    first = candidate.replace(day=1)
    if instant(add_months(first, definition.horizon_months)) > end:
        first = add_months(first, -1)
    return first


def training_as_of_dates(end: datetime, count: int, definition: LabelDefinition) -> list[date]:
    """``count`` monthly as-of dates, oldest first, the last the latest complete one."""
    if count < 1:
        raise LabelError(f"need at least one as-of date, got {count}")
    last = latest_complete_as_of(end, definition)
    return [add_months(last, -offset) for offset in range(count - 1, -1, -1)]


def bad_events(events: pl.LazyFrame, definition: LabelDefinition) -> pl.LazyFrame:
    """(user_id, bad_at): the instant each outcome event made a user bad."""
    late = timedelta(days=definition.bad_days_late)
    visible = _utc(pl.col("due_date")) + late
    return (
        events.filter(
            (pl.col("kind") == "default")
            | ((pl.col("kind") == "repayment") & (pl.col("days_late") >= definition.bad_days_late))
        )
        .select(
            "user_id",
            pl.when(pl.col("kind") == "default").then(pl.col("event_time"))
            .otherwise(visible).alias("bad_at"),
        )
        .drop_nulls("bad_at")
    )


def label_frame(
    events: pl.LazyFrame,
    as_of_dates: Sequence[date],
    *,
    known_until: datetime,
    definition: LabelDefinition | None = None,
) -> pl.DataFrame:
    """Labels (user_id, as_of, bad, bad_at) from resolved events, for every as-of date.

    ``known_until`` is the knowledge time of ``events``; every as-of date's
    window must end by it and by the data's last event.
    """
    definition = definition or load_scorecard().label
    if not as_of_dates:
        raise LabelError("no as-of dates given")
    end = data_end(events)
    if end is None:
        raise LabelError("no events to label from: the event lake is empty")
    limit = min(end, known_until)
    for as_of in as_of_dates:
        window_end = instant(add_months(as_of, definition.horizon_months))
        if window_end > limit:
            raise LabelError(
                f"as-of {as_of.isoformat()}: the {definition.horizon_months}-month outcome window "
                f"ends {window_end.date().isoformat()}, after the data known so far "
                f"({limit.date().isoformat()}); its users cannot be labelled yet"
            )
    dates = pl.DataFrame({"as_of": sorted(set(as_of_dates))}, schema={"as_of": pl.Date}).with_columns(
        _utc(pl.col("as_of")).alias("start"),
        _utc(pl.col("as_of").dt.offset_by(f"{definition.horizon_months}mo")).alias("stop"),
    ).lazy()
    first_seen = events.group_by("user_id").agg(pl.col("event_time").min().alias("first_seen"))
    population = first_seen.join(dates, how="cross").filter(pl.col("first_seen") < pl.col("start"))
    outcomes = (
        bad_events(events, definition).join(dates, how="cross")
        .group_by("user_id", "as_of")
        .agg(
            (pl.col("bad_at") < pl.col("start")).any().alias("bad_before"),
            pl.col("bad_at").filter((pl.col("bad_at") >= pl.col("start"))
                                    & (pl.col("bad_at") < pl.col("stop"))).min().alias("bad_at"),
        )
    )
    labelled = (
        population.join(outcomes, on=["user_id", "as_of"], how="left")
        .filter(~pl.col("bad_before").fill_null(False))
        .select("user_id", "as_of", pl.col("bad_at").is_not_null().cast(pl.Int8).alias("bad"),
                "bad_at")
        .sort("as_of", "user_id")
    )
    return labelled.collect()


def _utc(day: pl.Expr) -> pl.Expr:
    """A date column as midnight UTC."""
    return day.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


def build_labels(
    settings: Settings,
    as_of_dates: Sequence[date],
    *,
    as_known_at: datetime | None = None,
) -> pl.DataFrame:
    """Labels from the event lake as known at ``as_known_at`` (default: everything ingested)."""
    mark = lake.watermark(settings)
    if mark is None:
        raise LabelError("the event lake is empty: ingest events before building labels")
    known = as_known_at or mark
    events = lake.scan_events(settings, as_known_at=known, watermark=mark)
    labels = label_frame(events, as_of_dates, known_until=known)
    log.info("labelled %d user-dates, %d bad", labels.height, int(labels["bad"].sum()))
    return labels
