"""Life around the money: agreements, profile changes, app use, and the social graph.

The social graph is chunk-local by construction: a user's contacts are drawn
from their own community (four in five) or elsewhere in their block of users,
never from another block, so a block is generated without looking at any
other. Communities share part of their members' latent risk and their shocks,
so risk clusters along contacts (homophily) without any contact causing risk.
"""

from __future__ import annotations

import numpy as np

from features.events import (
    AgreementType,
    ContactAction,
    Education,
    Gender,
    Kind,
    Occupation,
    Outcome,
    Relation,
)
from features.simulate_frame import Codes, Ids, Part
from features.simulate_world import (
    BURN_IN,
    PAYLATER,
    RENT,
    TELECOM,
    WALLET,
    Context,
    _sigmoid,
)

AGREEMENT_SOURCE = np.array([RENT, PAYLATER, RENT, WALLET])  # AgreementType order
AGREEMENT_MEDIAN = np.array([2000.0, 800.0, 3000.0, 500.0])
WITHIN_COMMUNITY = 0.8
RELATION_WITHIN = np.array([0.3, 0.5, 0.1, 0.1])  # Relation order: family friend colleague other
RELATION_ACROSS = np.array([0.05, 0.35, 0.45, 0.15])
UNEMPLOYED = list(Occupation).index(Occupation.UNEMPLOYED)


def emit_life(ctx: Context, distress: np.ndarray, users: Ids) -> list[Part]:
    """Agreements, profile events, app activity and contacts of the block's users."""
    return [
        _agreements(ctx, distress),
        *_profiles(ctx),
        _app_activity(ctx),
        *_contacts(ctx, users),
    ]


def _agreements(ctx: Context, distress: np.ndarray) -> Part:
    b, rng = ctx.block, ctx.rng
    months = ctx.emitted_months
    appetite = 0.05 * np.exp(0.5 * rng.standard_normal(b.users))
    user, month, day = ctx.scatter(np.broadcast_to(appetite[:, None], (b.users, months)))
    kind = np.searchsorted(np.cumsum([0.35, 0.35, 0.2, 0.1]), rng.random(len(user)))
    broken = rng.random(len(user)) < _sigmoid(-3.3 - 1.1 * b.z[user] + b.jobless[user, month]
                                              + 2.0 * distress[user, month])
    amount = AGREEMENT_MEDIAN[kind] * rng.lognormal(0, 0.5, len(user))
    return Part(Kind.AGREEMENT, user, AGREEMENT_SOURCE[kind], ctx.instant(day),
                {"agreement_type": Codes.of(kind, AgreementType),
                 "outcome": Codes.of(broken.astype(np.int16), Outcome),
                 "amount": np.round(amount, 2), "currency": Codes.constant("CNY", len(user))})


def _profiles(ctx: Context) -> list[Part]:
    """Sign-up facts, phone tenure, later verification, moves, and job changes people report."""
    b, rng, timeline = ctx.block, ctx.rng, ctx.timeline
    users = np.arange(b.users)
    signup = timeline.start_day - rng.integers(60, 2200, b.users)
    verified = rng.random(b.users) < _sigmoid(1.6 + 0.5 * b.z)
    end_year = int(np.datetime64(timeline.end_day, "D").astype("datetime64[Y]").astype(int)) + 1970
    signed_up = Part(Kind.PROFILE, users, np.full(b.users, WALLET), ctx.instant(signup), {
        "identity_verified": verified,
        "education": Codes.of(b.education, Education),
        "occupation": Codes.of(b.occupation, Occupation),
        "birth_year": (end_year - b.age).astype(np.int32),
        "gender": Codes.of(b.gender, Gender),
    })
    years = np.minimum(b.age - 16, rng.exponential(6.0, b.users) * np.exp(0.25 * b.z))
    phone_since = timeline.end_day - (years * 365.25).astype(np.int64)
    told = np.maximum(signup, phone_since) + rng.integers(0, 30, b.users)
    phone = Part(Kind.PROFILE, users, np.full(b.users, TELECOM), ctx.instant(told),
                 {"phone_since": phone_since})
    window = timeline.end_day - timeline.start_day
    late = ~verified & (rng.random(b.users) < 0.35)
    verify_day = timeline.start_day + rng.integers(0, window, b.users)
    verification = Part(Kind.PROFILE, users[late], np.full(int(late.sum()), WALLET),
                        ctx.instant(verify_day[late]),
                        {"identity_verified": np.ones(int(late.sum()), dtype=bool)})
    return [signed_up, phone, verification, _moves(ctx), _job_news(ctx)]


def _moves(ctx: Context) -> Part:
    b = ctx.block
    moved = b.moved[:, :ctx.emitted_months].copy()
    moved[:, :BURN_IN] = False
    user, month = np.nonzero(moved)
    starts = ctx.timeline.month_starts
    day = starts[month] + (ctx.rng.random(len(user)) * (starts[month + 1] - starts[month])).astype(
        np.int64)
    keep = ctx.in_window(day)
    user, day = user[keep], day[keep]
    n = len(user)
    return Part(Kind.PROFILE, user, np.full(n, WALLET), ctx.instant(day),
                {"address_changed": np.ones(n, dtype=bool)})


def _job_news(ctx: Context) -> Part:
    """Some who lose a job say so (weeks later); some who find one say that too."""
    b, rng = ctx.block, ctx.rng
    months = ctx.emitted_months
    jobless = b.jobless[:, :months]
    change = np.zeros_like(jobless)
    change[:, 1:] = jobless[:, 1:] != jobless[:, :-1]
    change &= rng.random(change.shape) < 0.35
    change[:, :BURN_IN] = False
    user, month = np.nonzero(change)
    day = ctx.timeline.month_starts[month] + rng.integers(0, 60, len(user))
    keep = ctx.in_window(day)
    user, month, day = user[keep], month[keep], day[keep]
    occupation = np.where(jobless[user, month], UNEMPLOYED, b.occupation[user])
    return Part(Kind.PROFILE, user, np.full(len(user), WALLET), ctx.instant(day),
                {"occupation": Codes.of(occupation, Occupation)})


def _app_activity(ctx: Context) -> Part:
    """Twice a month, a summary of the sessions since the last one."""
    b, rng = ctx.block, ctx.rng
    months = ctx.emitted_months
    engagement = np.exp(np.log(20) + 0.15 * b.z + 0.7 * rng.standard_normal(b.users))
    starts = ctx.timeline.month_starts
    day = np.stack([starts[:months] + 14, starts[1:months + 1] - 1], axis=1).reshape(-1)
    grid = np.broadcast_to(day[None, :], (b.users, 2 * months))
    keep = ctx.in_window(grid)
    user, slot = np.nonzero(keep)
    month = slot // 2
    rate = engagement[user] / 2 * np.where(b.jobless[user, month], 1.3, 1.0)
    sessions = rng.poisson(rate)
    minutes = np.round(sessions * rng.gamma(2.0, 3.0, len(user)))
    return Part(Kind.APP_ACTIVITY, user, np.full(len(user), WALLET),
                ctx.instant(grid[keep], earliest_hour=23),
                {"sessions": sessions.astype(np.int32), "active_minutes": minutes.astype(np.int32)})


def _contacts(ctx: Context, users: Ids) -> list[Part]:
    """Contacts added (most before the window) and some removed, drawn within the block."""
    b, rng, timeline = ctx.block, ctx.rng, ctx.timeline
    if b.users < 2:
        return []
    degree = np.minimum(1 + rng.poisson(5, b.users), 20)
    user = np.repeat(np.arange(b.users), degree)
    n = len(user)
    community = b.community[user]
    start, size = b.community_start[community], b.community_size[community]
    near = start + (user - start + 1 + rng.integers(0, 2**31, n) % np.maximum(size - 1, 1)) % size
    far = (user + 1 + rng.integers(0, b.users - 1, n)) % b.users
    within = (rng.random(n) < WITHIN_COMMUNITY) & (size > 1)
    other = np.where(within, near, far)
    _, first = np.unique(user * b.users + other, return_index=True)
    first = first[other[first] != user[first]]
    user, other, within = user[first], other[first], within[first]
    n = len(user)
    shares = np.where(within[:, None], RELATION_WITHIN, RELATION_ACROSS)
    relation = (np.cumsum(shares, axis=1) < rng.random(n)[:, None]).sum(axis=1)
    window = timeline.end_day - timeline.start_day
    history = rng.random(n) < 0.75
    added = np.where(history, timeline.start_day - rng.integers(1, 1500, n),
                     timeline.start_day + rng.integers(0, window, n))
    removed = rng.random(n) < np.where(relation == 0, 0.02, 0.12)
    removal = np.maximum(added, timeline.start_day) + rng.integers(1, window + 1, n)
    removed &= removal < timeline.end_day
    parts = []
    for action, rows, day in ((0, added < timeline.end_day, added), (1, removed, removal)):
        count = int(rows.sum())
        parts.append(Part(Kind.CONTACT, user[rows], np.full(count, WALLET),
                          ctx.instant(day[rows]),
                          {"contact_user_id": users.take(other[rows]),
                           "contact_action": Codes.of(np.full(count, action), ContactAction),
                           "relation": Codes.of(relation[rows], Relation)}))
    return parts
