"""When the platform hears of an event: reporting delays, late back-fills and corrections.

Every furnisher reports most events within days, a share weeks late and a
few months late (rates per source in :mod:`features.simulate_world`). Events
not yet reported by the end of the timeline are left out: the files hold what
furnishers had reported by then. A few reported events were wrong and are
corrected later (an amount, or a paid date reported too late), and a few
were sent twice and the duplicate is voided, so that a backtest as of an
earlier knowledge time sees the errors and a later one does not.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from features.events import Kind
from features.simulate_frame import Part
from features.simulate_world import (
    DAY_US,
    REPORT_DELAY_DAYS,
    REPORT_MONTHS_LATE,
    REPORT_WEEKS_LATE,
    Context,
)

AMEND_RATE = 0.004  # share of reported events of an amendable kind later corrected
VOID_RATE = 0.001   # share of reported events of a duplicable kind sent twice, then voided
AMENDED_FIELD = {
    Kind.BILL: "amount", Kind.INSTALLMENT_DUE: "amount", Kind.PAYMENT: "amount",
    Kind.BALANCE: "amount", Kind.BILL_PAYMENT: "paid_date", Kind.REPAYMENT: "paid_date",
}
DUPLICABLE = (Kind.PAYMENT, Kind.BILL_PAYMENT, Kind.TRANSFER)


def report(ctx: Context, parts: list[Part]) -> tuple[list[Part], int]:
    """Number the events, date their reports, drop the unreported, add corrections.

    Returns the parts to write (originals first, then corrections) and the
    number of event ids used, which name the block's events ``0 .. n-1``.
    """
    end_us = ctx.timeline.end_day * DAY_US
    numbered, next_row = [], 0
    for part in parts:
        rows = np.arange(next_row, next_row + len(part), dtype=np.int64)
        next_row += len(part)
        dated = replace(part, row=rows, reported_at=_reported(ctx, part))
        numbered.append(dated.take(dated.reported_at < end_us))
    corrections: list[Part] = []
    for part in numbered:
        if part.kind in AMENDED_FIELD and len(part):
            amendment, next_row = _amend(ctx, part, next_row)
            corrections.append(amendment)
        if part.kind in DUPLICABLE and len(part):
            duplicate, void, next_row = _duplicate(ctx, part, next_row)
            corrections.extend([duplicate, void])
    kept = [part.take(part.reported_at < end_us) for part in corrections]
    return [part for part in numbered + kept if len(part)], next_row


def _reported(ctx: Context, part: Part) -> np.ndarray:
    rng, source, n = ctx.rng, part.source, len(part)
    days = rng.exponential(REPORT_DELAY_DAYS[source], n)
    pick = rng.random(n)
    weeks = pick < REPORT_WEEKS_LATE[source]
    months = ~weeks & (pick < REPORT_WEEKS_LATE[source] + REPORT_MONTHS_LATE[source])
    days = np.where(weeks, rng.uniform(14, 60, n), days)
    days = np.where(months, rng.uniform(60, 180, n), days)
    return part.event_time + 60_000_000 + (days * DAY_US).astype(np.int64)


def _amend(ctx: Context, part: Part, next_row: int) -> tuple[Part, int]:
    """Corrections carrying the true payload; the originals' reported values are made wrong."""
    rng, n = ctx.rng, len(part)
    field = AMENDED_FIELD[part.kind]
    chosen = rng.random(n) < AMEND_RATE
    if field == "paid_date":  # only an on-time or slightly late payment is reported later than it was
        chosen &= part.payload["paid_date"] - part.payload["due_date"] < 30
    rows = np.nonzero(chosen)[0]
    truth = part.take(rows)
    wrong = part.payload[field].copy()
    if field == "amount":
        wrong[rows] = np.round(wrong[rows] * rng.uniform(0.5, 1.5, len(rows)), 2)
    else:
        wrong[rows] = wrong[rows] + rng.integers(10, 41, len(rows))
    part.payload[field] = wrong
    delay = (rng.uniform(7, 90, len(rows)) * DAY_US).astype(np.int64)
    correction = replace(truth, corrects=truth.row,
                         row=np.arange(next_row, next_row + len(rows), dtype=np.int64),
                         reported_at=truth.reported_at + delay)
    return correction, next_row + len(rows)


def _duplicate(ctx: Context, part: Part, next_row: int) -> tuple[Part, Part, int]:
    """Events sent twice under a new id, and the voids that retract the copies later."""
    rng = ctx.rng
    rows = np.nonzero(rng.random(len(part)) < VOID_RATE)[0]
    count = len(rows)
    copy = part.take(rows)
    copy = replace(copy, row=np.arange(next_row, next_row + count, dtype=np.int64),
                   reported_at=copy.reported_at + (rng.uniform(0, 2, count) * DAY_US).astype(
                       np.int64))
    void = replace(copy, payload={}, corrects=copy.row, void=True,
                   row=np.arange(next_row + count, next_row + 2 * count, dtype=np.int64),
                   reported_at=copy.reported_at + (rng.uniform(3, 60, count) * DAY_US).astype(
                       np.int64))
    return copy, void, next_row + 2 * count
