"""Obligations: bills and their payment, credit accounts, installments, repayments, defaults.

Every user has a telecom account and most a utility one; renters pay rent;
four in five users hold credit products (the rest are thin-file). Each
account owes something every month; whether and when it is paid depends on
the user's latent risk, a personal habit, a lost job, and distress.

The bad path: a user whose latent onset month comes stops paying one account
(a microloan or BNPL first, a card, a loan; a thin-file user their phone or
rent) from that month's due date. Ninety days later the lender reports a
``default`` (dpd90 or charge-off), or, for three in ten credit users, the
user catches up with a repayment 90 to 120 days late. Either is the
label-defining bad event; its day is :attr:`BadPath.bad_day`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.events import BillerCategory, DefaultReason, Kind, Product
from features.simulate_frame import ACCOUNT_WIDTH, INT_NULL, Codes, Ids, Part
from features.simulate_world import (
    BANK_NORTH,
    BURN_IN,
    DAY_US,
    PAYLATER,
    QUICKLOAN,
    RENT,
    TELECOM,
    UTILITIES,
    Context,
    _sigmoid,
)

UTILITY, PHONE, RENT_BILL, INSURANCE, OTHER_BILL = range(5)  # BillerCategory order
CARD, PERSONAL, BNPL, AUTO, MORTGAGE, MICRO = range(6)  # Product order
BILL_SOURCE = np.array([UTILITIES, TELECOM, RENT, UTILITIES, UTILITIES])
DEFAULT_PRIORITY = np.array([4, 3, 5, 2, 1, 6])  # which account a user in trouble stops paying
CATCH_UP_SHARE = 0.3  # credit users who end the path with a 90+ days late repayment instead


@dataclass
class Schedule:
    """What accounts owe: one row per account and latent month."""

    user: np.ndarray
    account: np.ndarray    # account number within the block
    kind: np.ndarray       # biller category or product code
    month: np.ndarray      # latent month
    issue: np.ndarray      # day the bill or statement is issued
    due: np.ndarray        # due day
    amount: np.ndarray     # CNY owed
    source: np.ndarray
    number: np.ndarray     # installment number (0 for bills)
    remaining: np.ndarray  # installments left after this one (0 for bills and cards)

    def rows(self, mask: np.ndarray) -> Schedule:
        return Schedule(**{name: value[mask] for name, value in vars(self).items()})


@dataclass
class BadPath:
    """Per user: the account left unpaid, and when the label-defining bad event happens."""

    account: np.ndarray    # -1: not on the path (within the window)
    credit: np.ndarray     # the account is a credit account (else a bill account)
    first_due: np.ndarray  # due day of the first missed payment
    bad_day: np.ndarray    # day of the first bad event (may be after the window)
    catch_up: np.ndarray   # ends in a 90+ days late repayment rather than a default

    def distress(self, ctx: Context) -> np.ndarray:
        """(users, latent months): the user is on the path and not yet past its bad event."""
        starts = ctx.timeline.month_starts[:-1]
        on = self.account >= 0
        return on[:, None] & (starts[None, :] + 31 > self.first_due[:, None]) & (
            starts[None, :] <= self.bad_day[:, None])


def emit_obligations(ctx: Context, account_prefix: str) -> tuple[list[Part], BadPath]:
    """Parts for bills, payments of bills, credit accounts and their dues, and the bad path."""
    b = ctx.block
    habit = 0.3 * ctx.rng.standard_normal(b.users)
    bills = _bill_schedule(ctx)
    first_credit = int(bills.account.max()) + 1 if len(bills.account) else 0
    credit, dues = _credit(ctx, first_credit)
    path = _bad_path(ctx, bills, dues)
    distress = path.distress(ctx)
    account_ids = Ids(account_prefix, np.zeros(0, dtype=np.int64), ACCOUNT_WIDTH)
    parts = [
        *_bill_parts(ctx, bills, path, habit, distress, account_ids),
        credit.with_ids(account_ids),
        *_credit_parts(ctx, dues, path, habit, distress, account_ids),
    ]
    return [part for part in parts if len(part)], path


# -- bills ----------------------------------------------------------------------


def _bill_schedule(ctx: Context) -> Schedule:
    b, rng = ctx.block, ctx.rng
    held = np.column_stack([
        rng.random(b.users) < 0.9,
        np.ones(b.users, dtype=bool),
        b.renter,
        rng.random(b.users) < _sigmoid(np.log(b.income / 9000) - 0.8),
        rng.random(b.users) < 0.1,
    ])
    user, category = np.nonzero(held)
    n = len(user)
    scale = np.array([170.0, 90.0, 0.0, 260.0, 110.0])[category]
    scale = np.where(category == RENT_BILL, np.clip(0.28 * b.income[user], 600, 15000), scale)
    scale = scale * np.where(category == PHONE, (b.income[user] / 7000) ** 0.25, 1.0)
    base = scale * rng.lognormal(0.0, 0.3, n)
    issue_offset, gap = rng.integers(0, 28, n), rng.integers(12, 22, n)
    months = ctx.emitted_months
    starts = ctx.timeline.month_starts[:months]
    issue = starts[None, :] + issue_offset[:, None]
    winter = 1 + 0.25 * np.cos(2 * np.pi * _calendar_month(starts) / 12)
    seasonal = np.where(category[:, None] == UTILITY, winter[None, :], 1.0)
    amount = base[:, None] * seasonal * rng.lognormal(0.0, 0.1, (n, months))
    rows = issue < ctx.timeline.end_day
    account = np.broadcast_to(np.arange(n)[:, None], rows.shape)
    return Schedule(
        user=np.broadcast_to(user[:, None], rows.shape)[rows],
        account=account[rows],
        kind=np.broadcast_to(category[:, None], rows.shape)[rows],
        month=np.broadcast_to(np.arange(months)[None, :], rows.shape)[rows],
        issue=issue[rows], due=(issue + gap[:, None])[rows], amount=amount[rows],
        source=BILL_SOURCE[np.broadcast_to(category[:, None], rows.shape)[rows]],
        number=np.zeros(int(rows.sum()), dtype=np.int64),
        remaining=np.zeros(int(rows.sum()), dtype=np.int64),
    )


def _bill_parts(ctx: Context, bills: Schedule, path: BadPath, habit: np.ndarray,
                distress: np.ndarray, account_ids: Ids) -> list[Part]:
    paid_day, unpaid, cut_off, owed = _settle(ctx, bills, path, habit, distress, intercept=-3.0,
                                              credit=False)
    shown = ctx.in_window(bills.issue) & ~cut_off
    issued = bills.rows(shown)
    category = Codes.of(issued.kind, BillerCategory)
    bill = Part(Kind.BILL, issued.user, issued.source, ctx.instant(issued.issue, earliest_hour=1),
                {"amount": owed[shown], "currency": Codes.constant("CNY", len(issued.user)),
                 "biller_category": category, "due_date": issued.due,
                 "account_id": _account(account_ids, issued.account)})
    keep = ~unpaid & ctx.in_window(paid_day)
    paid = bills.rows(keep)
    payment = Part(Kind.BILL_PAYMENT, paid.user, paid.source, ctx.instant(paid_day[keep]),
                   {"amount": paid.amount, "currency": Codes.constant("CNY", len(paid.user)),
                    "biller_category": Codes.of(paid.kind, BillerCategory), "due_date": paid.due,
                    "paid_date": paid_day[keep], "account_id": _account(account_ids, paid.account)})
    return [bill, payment, _defaults(ctx, bills, path, credit=False, account_ids=account_ids)]


# -- credit ---------------------------------------------------------------------


@dataclass
class CreditAccounts:
    user: np.ndarray
    account: np.ndarray
    product: np.ndarray
    source: np.ndarray
    opened: np.ndarray  # day
    limit: np.ndarray
    term: np.ndarray    # months, INT_NULL for revolving
    rows: np.ndarray    # which of these have been opened before the window's end

    def with_ids(self, account_ids: Ids) -> Part:
        keep = self.rows
        n = int(keep.sum())
        return Part(Kind.CREDIT_OPENED, self.user[keep], self.source[keep],
                    self.opened[keep].astype(np.int64) * DAY_US + DAY_US // 2,
                    {"account_id": _account(account_ids, self.account[keep]),
                     "product": Codes.of(self.product[keep], Product),
                     "credit_limit": self.limit[keep], "currency": Codes.constant("CNY", n),
                     "term_months": self.term[keep]})


def _credit(ctx: Context, first_account: int) -> tuple[CreditAccounts, Schedule]:
    b, rng, timeline = ctx.block, ctx.rng, ctx.timeline
    wealth = np.log(b.income / 7000)
    held = ~b.thin_file
    before = np.where(held, np.minimum(1 + rng.poisson(np.clip(0.5 + 0.4 * wealth, 0.1, 3)), 6),
                      0)
    months = ctx.emitted_months
    rate = 0.012 * np.exp(0.5 * -b.z)
    later = np.where(held[:, None], rng.poisson(rate[:, None], (b.users, months)), 0)
    later[:, :BURN_IN] = 0  # openings before the window are in `before`
    user = np.concatenate([np.repeat(np.arange(b.users), before),
                           np.repeat(np.arange(b.users), later.sum(axis=1))])
    opened_month = np.nonzero(later)[1].repeat(later[later > 0])
    n_before = int(before.sum())
    opened = np.concatenate([
        timeline.start_day - rng.integers(20, 2500, n_before),
        timeline.month_starts[opened_month] + rng.integers(0, 28, len(opened_month)),
    ])
    n = len(user)
    weights = (np.array([0.40, 0.14, 0.18, 0.06, 0.07, 0.15])
               * np.exp(np.outer(-b.z[user], [0, 0.1, 0.4, -0.2, -0.4, 0.8]))
               * np.exp(np.outer(wealth[user], [0.3, 0.2, -0.2, 0.8, 1.2, -0.6])))
    cumulative = np.cumsum(weights, axis=1)
    product = (cumulative < (rng.random(n) * cumulative[:, -1])[:, None]).sum(axis=1)
    limit, term, yearly = _terms(rng, product, b.income[user])
    source = np.array([BANK_NORTH, BANK_NORTH, PAYLATER, BANK_NORTH, BANK_NORTH, QUICKLOAN])
    source = source[product] + ((source[product] == BANK_NORTH) & (rng.random(n) < 0.5))
    accounts = CreditAccounts(user=user, account=first_account + np.arange(n), product=product,
                              source=source, opened=opened, limit=limit, term=term,
                              rows=opened < timeline.end_day)
    return accounts, _dues(ctx, accounts, yearly)


def _terms(rng: np.random.Generator, product: np.ndarray,
           income: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Limit or principal (CNY), term (months) and yearly interest of each account."""
    n = len(product)
    low = np.array([1.5, 2.0, 0.0, 0.0, 0.0, 0.0])[product] * income
    high = np.array([5.0, 12.0, 0.0, 0.0, 0.0, 0.0])[product] * income
    fixed_low = np.array([0, 0, 300, 40_000, 300_000, 500])[product]
    fixed_high = np.array([0, 0, 6_000, 250_000, 2_500_000, 8_000])[product]
    amount = np.where(product <= PERSONAL, rng.uniform(low, high),
                      rng.uniform(fixed_low, np.maximum(fixed_high, fixed_low + 1)))
    amount = np.where(product == MORTGAGE, amount * np.clip(income / 10_000, 0.3, 3), amount)
    terms = np.array([[INT_NULL] * 3, [12, 24, 36], [3, 6, 12], [36, 48, 60],
                      [240, 300, 360], [3, 6, 12]])
    term = terms[product, rng.integers(0, 3, n)]
    yearly = np.array([0.18, 0.08, 0.0, 0.06, 0.045, 0.24])[product]
    return np.round(amount, -2), term, yearly


def _dues(ctx: Context, accounts: CreditAccounts, yearly: np.ndarray) -> Schedule:
    rng, months = ctx.rng, ctx.emitted_months
    starts = ctx.timeline.month_starts[:months]
    n = len(accounts.user)
    due = starts[None, :] + rng.integers(0, 28, n)[:, None]
    number = _month_number(starts)[None, :] - _month_number(accounts.opened + 25)[:, None]
    revolving = accounts.term == INT_NULL
    active = (number >= 0) & (revolving[:, None] | (number < accounts.term[:, None]))
    active &= due - 15 < ctx.timeline.end_day
    monthly = yearly / 12
    term = np.where(revolving, 1, accounts.term).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        annuity = np.where(monthly > 0, accounts.limit * monthly / (1 - (1 + monthly) ** -term),
                           accounts.limit / term)
    user = np.broadcast_to(accounts.user[:, None], due.shape)
    b = ctx.block
    usage = _sigmoid(-1.0 - 0.8 * b.z[:, None] + 0.9 * b.jobless[:, :months]
                     + 0.5 * rng.standard_normal((b.users, months)))
    statement = accounts.limit[:, None] * usage[accounts.user]
    amount = np.where(revolving[:, None], statement, annuity[:, None])
    active &= ~revolving[:, None] | (statement > 0.03 * accounts.limit[:, None])
    remaining = np.where(revolving[:, None], 0, accounts.term[:, None] - number - 1)
    grid = np.broadcast_to
    return Schedule(
        user=user[active], account=grid(accounts.account[:, None], due.shape)[active],
        kind=grid(accounts.product[:, None], due.shape)[active],
        month=grid(np.arange(months)[None, :], due.shape)[active], issue=(due - 15)[active],
        due=due[active], amount=amount[active],
        source=grid(accounts.source[:, None], due.shape)[active], number=number[active],
        remaining=remaining[active],
    )


def _credit_parts(ctx: Context, dues: Schedule, path: BadPath, habit: np.ndarray,
                  distress: np.ndarray, account_ids: Ids) -> list[Part]:
    paid_day, unpaid, cut_off, owed = _settle(ctx, dues, path, habit, distress, intercept=-3.3,
                                              credit=True)
    shown = ctx.in_window(dues.issue) & ~cut_off
    issued = dues.rows(shown)
    installment = Part(Kind.INSTALLMENT_DUE, issued.user, issued.source,
                       ctx.instant(issued.issue, earliest_hour=2, latest_hour=6),
                       {"account_id": _account(account_ids, issued.account), "amount": owed[shown],
                        "currency": Codes.constant("CNY", len(issued.user)),
                        "due_date": issued.due})
    keep = ~unpaid & ctx.in_window(paid_day)
    paid = dues.rows(keep)
    b = ctx.block
    full = ctx.rng.random(len(paid.user)) < _sigmoid(1.2 + 1.3 * b.z[paid.user]
                                                     - b.jobless[paid.user, paid.month])
    partial = np.maximum(0.1, ctx.rng.random(len(paid.user))) * paid.amount
    amount = np.where((paid.kind == CARD) & ~full, partial, paid.amount)
    repayment = Part(Kind.REPAYMENT, paid.user, paid.source, ctx.instant(paid_day[keep]),
                     {"account_id": _account(account_ids, paid.account), "amount": amount,
                      "amount_due": paid.amount,
                      "currency": Codes.constant("CNY", len(paid.user)),
                      "due_date": paid.due, "paid_date": paid_day[keep]})
    return [installment, repayment, _defaults(ctx, dues, path, credit=True,
                                              account_ids=account_ids)]


# -- the bad path and settlement -------------------------------------------------


def _bad_path(ctx: Context, bills: Schedule, dues: Schedule) -> BadPath:
    b, rng = ctx.block, ctx.rng
    onset = np.where(b.onset < ctx.emitted_months, b.onset, -1)
    at_onset = (onset[dues.user] >= 0) & (dues.month == onset[dues.user])
    credit_rows = _first_per_user(dues.user, at_onset,
                                  DEFAULT_PRIORITY[dues.kind] + rng.random(len(dues.user)), b.users)
    wants_rent = b.renter & (rng.random(b.users) < 0.5)
    preferred = np.where(wants_rent[bills.user], RENT_BILL, PHONE)
    bill_at_onset = ((onset[bills.user] >= 0) & (bills.month == onset[bills.user])
                     & (bills.kind == preferred))
    bill_rows = _first_per_user(bills.user, bill_at_onset, np.ones(len(bills.user)), b.users)
    credit = credit_rows >= 0
    account = np.where(credit, _pick(dues.account, credit_rows),
                       _pick(bills.account, bill_rows))
    first_due = np.where(credit, _pick(dues.due, credit_rows), _pick(bills.due, bill_rows))
    catch_up = credit & (rng.random(b.users) < CATCH_UP_SHARE)
    delay = np.where(catch_up, rng.integers(90, 121, b.users), 90 + rng.integers(0, 8, b.users))
    bad_day = np.where(account >= 0, first_due + delay, -1)
    return BadPath(account=account, credit=credit, first_due=first_due, bad_day=bad_day,
                   catch_up=catch_up)


def _first_per_user(user: np.ndarray, eligible: np.ndarray, priority: np.ndarray,
                    users: int) -> np.ndarray:
    """Per user of the block, the eligible row of highest priority (-1 where none)."""
    rows = np.nonzero(eligible)[0]
    order = rows[np.lexsort((-priority[rows], user[rows]))]
    found, first = np.unique(user[order], return_index=True)
    chosen = np.full(users, -1)
    chosen[found] = order[first]
    return chosen


def _pick(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``values[rows]`` where a row was found, -1 where none was (rows of -1)."""
    picked = np.full(len(rows), -1, dtype=np.int64)
    found = rows >= 0
    picked[found] = values[rows[found]]
    return picked


def _settle(ctx: Context, schedule: Schedule, path: BadPath, habit: np.ndarray,
            distress: np.ndarray, *, intercept: float,
            credit: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Paid day of each due, which stay unpaid, which are never issued (cut off), and
    the amount each statement asks for: the due plus the arrears of the missed ones."""
    b, rng = ctx.block, ctx.rng
    user, month, n = schedule.user, schedule.month, len(schedule.user)
    logit = (intercept - 1.3 * b.z[user] + 1.0 * b.jobless[user, month]
             + 0.7 * b.shock[user, month] + 2.0 * distress[user, month] + habit[user])
    late = rng.random(n) < _sigmoid(logit)
    long = rng.random(n) < 0.1
    days = np.minimum(np.where(long, 30 + rng.geometric(0.06, n), rng.geometric(0.15, n)), 85)
    paid_day = np.where(late, schedule.due + days, schedule.due - rng.integers(0, 8, n))
    on_path = (path.account[user] == schedule.account) & (path.credit[user] == credit)
    missed = on_path & (schedule.due >= path.first_due[user])
    catch_up = missed & path.catch_up[user] & (schedule.due < path.bad_day[user])
    paid_day = np.where(catch_up, path.bad_day[user], paid_day)
    unpaid = missed & ~catch_up
    cut_off = on_path & ~path.catch_up[user] & (schedule.issue > path.bad_day[user])
    behind = np.where(missed, np.round((schedule.due - path.first_due[user]) / 30.44), 0)
    return paid_day, unpaid, cut_off, schedule.amount * (1 + behind)


def _defaults(ctx: Context, schedule: Schedule, path: BadPath, *, credit: bool,
              account_ids: Ids) -> Part:
    """The default events of users whose path ends in a default on this kind of account."""
    users = np.nonzero((path.account >= 0) & (path.credit == credit) & ~path.catch_up)[0]
    mine = np.isin(schedule.account, path.account[users]) & (
        schedule.due >= path.first_due[schedule.user]) & (
        schedule.due <= path.bad_day[schedule.user])
    owed = np.bincount(schedule.user[mine], weights=schedule.amount[mine],
                       minlength=ctx.block.users)
    first = mine & (schedule.due == path.first_due[schedule.user])
    left = np.bincount(schedule.user[first], weights=(schedule.remaining * schedule.amount)[first],
                       minlength=ctx.block.users)
    source = np.zeros(ctx.block.users, dtype=np.int64)
    source[schedule.user[first]] = schedule.source[first]
    day = path.bad_day[users]
    keep = ctx.in_window(day)
    users, day = users[keep], day[keep]
    reason = np.where(ctx.rng.random(len(users)) < 0.25, 0, 1)  # charge_off, dpd90
    return Part(Kind.DEFAULT, users, source[users], ctx.instant(day, earliest_hour=3),
                {"account_id": _account(account_ids, path.account[users]),
                 "amount": owed[users] + left[users],
                 "currency": Codes.constant("CNY", len(users)),
                 "default_reason": Codes.of(reason, DefaultReason)})


def _month_number(days: np.ndarray) -> np.ndarray:
    """Months since January 1970 of each day number."""
    return days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)


def _calendar_month(days: np.ndarray) -> np.ndarray:
    """0 for January ... 11 for December."""
    return _month_number(days) % 12


def _account(prefix: Ids, accounts: np.ndarray) -> Ids:
    """Account ids of the given block account numbers."""
    return Ids(prefix.prefix, accounts.astype(np.int64), ACCOUNT_WIDTH)
