"""Everyday money: purchases, transfers in and out, and balance snapshots.

Weak signals of risk live here, none decisive: riskier users tilt their
spending towards gambling and luxury, borrow small sums from many people,
keep thinner and more often negative balances; a lost job stops the salary
that arrives like clockwork for employees and shrinks spending; a downturn
in the community cuts pay, spending and savings.
"""

from __future__ import annotations

import numpy as np

from features.events import Channel, Direction, Kind, MerchantCategory
from features.simulate_frame import COUNTERPARTY_WIDTH, USER_WIDTH, Codes, Ids, Part
from features.simulate_world import BANK_NORTH, WALLET, Context, _sigmoid

# MerchantCategory order: grocery dining transport travel utilities entertainment health
# education electronics clothing luxury gambling other
CATEGORY_SHARE = np.array([.25, .15, .12, .02, .04, .08, .05, .03, .04, .08, .015, .01, .115])
CATEGORY_RISK_TILT = np.array([0, .1, 0, -.2, 0, .1, -.1, -.4, .1, 0, .5, 1.1, 0])
CATEGORY_MEDIAN = np.array([60, 85, 25, 1800, 150, 120, 180, 600, 1500, 280, 4000, 300, 90.0])
CATEGORY_ONLINE = np.array([.2, .1, .1, .6, .3, .4, .2, .5, .6, .4, .3, .8, .3])
COUNTERPARTY_EMPLOYER = 10**9  # counterparty number spaces: employers, agencies, people
COUNTERPARTY_AGENCY = 1
PERSON_SPACE = 10**12


def emit_money(ctx: Context, distress: np.ndarray, counterparties: str) -> list[Part]:
    """Purchases, transfers and balances of every user of the block."""
    bank = BANK_NORTH + (ctx.rng.random(ctx.block.users) < 0.5)
    return [
        _payments(ctx, bank),
        _transfers_in(ctx, distress, bank, counterparties),
        _transfers_out(ctx, bank, counterparties),
        *_balances(ctx, distress, bank),
    ]


def _payments(ctx: Context, bank: np.ndarray) -> Part:
    b, rng = ctx.block, ctx.rng
    habit = np.exp(np.log(8) + 0.5 * rng.standard_normal(b.users)) * (b.income / 7000) ** 0.2
    months = ctx.emitted_months
    rate = (habit[:, None] * np.where(b.jobless[:, :months], 0.7, 1.0)
            * np.where(b.shock[:, :months], 0.8, 1.0))
    user, _month, day = ctx.scatter(rate)
    tilt = CATEGORY_RISK_TILT[None, :] * (-b.z[:, None] + 0.4 * rng.standard_normal((b.users, 1)))
    category = _draw_per_user(rng, CATEGORY_SHARE[None, :] * np.exp(tilt), user)
    amount = (CATEGORY_MEDIAN[category] * (b.income[user] / 7000) ** 0.4
              * rng.lognormal(0, 0.6, len(user)))
    pick = rng.random(len(user))
    online = CATEGORY_ONLINE[category]
    channel = np.where(pick < online, 0, np.where(pick < online + (1 - online) * 0.6, 2, 1))
    source = np.where(rng.random(len(user)) < 0.75, WALLET, bank[user])
    return Part(Kind.PAYMENT, user, source, ctx.instant(day, earliest_hour=7),
                {"amount": np.maximum(amount, 1.0), "currency": Codes.constant("CNY", len(user)),
                 "merchant_category": Codes.of(category, MerchantCategory),
                 "channel": Codes.of(channel, Channel)})


def _draw_per_user(rng: np.random.Generator, weights: np.ndarray,
                   user: np.ndarray) -> np.ndarray:
    """One category per row, with the weights of its user: one search in a stacked CDF.

    Each user's cumulative distribution is shifted by the user's position, so all
    of them line up in one increasing array and a single ``searchsorted`` serves
    every row.
    """
    users, categories = weights.shape
    cumulative = np.cumsum(weights, axis=1)
    cumulative /= cumulative[:, -1:]
    stacked = (cumulative + np.arange(users)[:, None]).ravel()
    position = np.searchsorted(stacked, user + rng.random(len(user)), side="right")
    return np.minimum(position - user * categories, categories - 1)


def _transfers_in(ctx: Context, distress: np.ndarray, bank: np.ndarray,
                  counterparties: str) -> Part:
    b, rng = ctx.block, ctx.rng
    months = ctx.emitted_months
    jobless = b.jobless[:, :months]
    salaried = np.isin(b.occupation, (0, 1, 4))[:, None] & ~jobless  # employees, pensions
    user, day = _paydays(ctx, salaried)
    month = ctx.timeline.month_of(day)
    employer = np.where(b.occupation[user] == 4, COUNTERPARTY_AGENCY,
                        COUNTERPARTY_EMPLOYER + b.index * 1000 + b.community[user])
    hours_cut = np.where(b.shock[user, month], 0.75, 1.0)  # a local downturn cuts pay
    salary = b.income[user] * hours_cut * rng.uniform(0.98, 1.02, len(user))
    irregular = np.where(np.isin(b.occupation, (2, 3, 5, 6)), 3.0, 0.0)[:, None] * ~jobless
    benefit = 0.6 * jobless
    borrowing = (0.15 * np.exp(0.8 * -b.z)[:, None] + 0.6 * distress[:, :months]
                 + 0.3 * jobless)
    parts = [(user, day, salary, employer, bank[user])]
    for rate, share, counterparty in ((irregular, 1 / 3, None), (benefit, 0.25, 1),
                                      (borrowing, None, None)):
        u, _m, d = ctx.scatter(rate)
        if share is None:
            amount = np.exp(np.log(1500) + 0.6 * rng.standard_normal(len(u)))
        else:
            amount = b.income[u] * share * rng.lognormal(0, 0.5 if counterparty else 0.8, len(u))
        who = (np.full(len(u), COUNTERPARTY_AGENCY) if counterparty
               else rng.integers(2, PERSON_SPACE, len(u)))
        parts.append((u, d, amount, who, np.where(rng.random(len(u)) < 0.6, WALLET, bank[u])))
    user, day, amount, who, source = (np.concatenate(column) for column in zip(*parts,
                                                                               strict=True))
    return _transfer(ctx, user, day, amount, who, source, Direction.IN, counterparties)


def _paydays(ctx: Context, paid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One salary per paid user-month on the user's payday (give or take a day)."""
    rng = ctx.rng
    payday = rng.integers(0, 28, ctx.block.users)
    user, month = np.nonzero(paid)
    day = ctx.timeline.month_starts[month] + payday[user] + rng.integers(-1, 2, len(user))
    keep = ctx.in_window(day)
    return user[keep], day[keep]


def _transfers_out(ctx: Context, bank: np.ndarray, counterparties: str) -> Part:
    b, rng = ctx.block, ctx.rng
    rate = np.broadcast_to((1.0 + 2.0 * rng.random(b.users))[:, None],
                           (b.users, ctx.emitted_months))
    user, _month, day = ctx.scatter(rate)
    amount = b.income[user] * 0.08 * rng.lognormal(0, 0.8, len(user))
    # people send money to the same few people: a user's counterparties come from a small set
    who = (b.first_user + user) * 8 + rng.integers(0, 8, len(user)) + PERSON_SPACE
    source = np.where(rng.random(len(user)) < 0.7, WALLET, bank[user])
    return _transfer(ctx, user, day, amount, who, source, Direction.OUT, counterparties)


def _transfer(ctx: Context, user: np.ndarray, day: np.ndarray, amount: np.ndarray,
              who: np.ndarray, source: np.ndarray, direction: Direction,
              counterparties: str) -> Part:
    n = len(user)
    code = list(Direction).index(direction)
    return Part(Kind.TRANSFER, user, source, ctx.instant(day, earliest_hour=6),
                {"direction": Codes.of(np.full(n, code), Direction),
                 "amount": np.maximum(np.round(amount, 2), 1.0),
                 "currency": Codes.constant("CNY", n),
                 "counterparty": Ids(counterparties, who.astype(np.int64), COUNTERPARTY_WIDTH)})


def _balances(ctx: Context, distress: np.ndarray, bank: np.ndarray) -> list[Part]:
    """A bank balance at each month's end and a wallet balance mid-month."""
    b, rng = ctx.block, ctx.rng
    months = ctx.emitted_months
    buffer = b.income * np.exp(0.3 + 0.8 * b.z + 0.6 * rng.standard_normal(b.users))
    jobless, troubled = b.jobless[:, :months], distress[:, :months]
    level = (buffer[:, None] * rng.lognormal(0, 0.2, (b.users, months))
             * np.where(jobless, 0.4, 1.0) * np.where(troubled, 0.3, 1.0)
             * np.where(b.shock[:, :months], 0.6, 1.0))
    overdrawn = rng.random((b.users, months)) < _sigmoid(-4.5 - 1.2 * b.z[:, None]
                                                         + 1.5 * troubled + jobless)
    level = np.where(overdrawn, -rng.uniform(100, 5000, (b.users, months)), level)
    starts = ctx.timeline.month_starts
    parts = []
    for day_of, scale, source, account in ((starts[1:months + 1] - 1, 1.0, None, True),
                                           (starts[:months] + 14, 0.15, WALLET, False)):
        day = np.broadcast_to(day_of[None, :], level.shape)
        keep = ctx.in_window(day)
        user = np.nonzero(keep)[0]
        amount = level[keep] * scale * (rng.lognormal(0, 0.5, len(user)) if scale < 1 else 1)
        payload = {"amount": np.round(amount, 2), "currency": Codes.constant("CNY", len(user))}
        if account:
            payload["account_id"] = Ids("bk", b.first_user + user, USER_WIDTH)
        sources = bank[user] if source is None else np.full(len(user), source)
        parts.append(Part(Kind.BALANCE, user, sources,
                          ctx.instant(day[keep], earliest_hour=22), payload))
    return parts
