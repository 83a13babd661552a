"""The simulated world: a timeline, a population block with latent risk, and its ground truth.

Everything the event emitters need to know about a user lives here, drawn once
per block of users from the block's own random stream, so a block's users are
the same whatever else is simulated. Risk is one latent creditworthiness ``z``
(a community part plus an individual part, so risk clusters in the social
graph), moved month by month by shocks (job loss, community shocks). The
monthly hazard of *entering* serious delinquency is a logistic function of
that state; the label-defining bad event (90 days past due) follows the onset
by about three months, which is why the world starts ``BURN_IN`` months before
the timeline and looks ``FORWARD`` months beyond it (for the oracle).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

import numpy as np

BURN_IN = 3  # latent months simulated before the first calendar month
FORWARD = 9  # latent months after the last one: a bad event within 12 months needs an onset in 9
DAY_US = 86_400_000_000
EPOCH = date(1970, 1, 1)

GENDERS = ("female", "male", "other")
EDUCATIONS = ("none", "secondary", "vocational", "bachelor", "master", "doctorate")
OCCUPATIONS = (
    "employee", "civil_servant", "self_employed", "student", "retired", "unemployed", "other",
)
EMPLOYED = (0, 1, 2)  # occupations whose income a job loss can stop


@dataclass(frozen=True)
class World:
    """The constants of the simulated world; the one place its effect sizes are written down."""

    community_mean: int = 30         # mean community size (communities never cross a block)
    community_loading: float = 0.7   # sqrt of the share of z's variance shared by a community
    beta_z: float = 1.0              # log-odds of onset per unit of -z
    beta_job: float = 1.1            # log-odds added while a job is lost
    beta_shock: float = 1.2          # log-odds added while the community is in a shock
    beta_young: float = 0.25         # log-odds added under 25
    job_loss: float = 0.006          # monthly job-loss probability at z = 0 (employed only)
    job_loss_z: float = 0.5          # log-odds of job loss per unit of -z
    job_recover: float = 0.22        # monthly probability of finding work again
    shock_start: float = 0.02        # monthly probability a community shock begins
    shock_end: float = 0.25          # monthly probability it ends
    move_rate: float = 0.012         # monthly probability of moving home at z = 0
    thin_file_logit: float = -1.55   # intercept of P(no credit product); ~20% of users
    calibration_users: int = 40_000  # sample on which the onset intercept is solved


WORLD = World()


@dataclass(frozen=True)
class Timeline:
    """Calendar months covering [start, end): day numbers since 1970-01-01, UTC.

    ``month_starts`` has one entry per latent month (``BURN_IN`` before the
    first calendar month, ``FORWARD`` after the last) plus the boundary after
    the last one; calendar month ``k`` is latent month ``k + BURN_IN``.
    """

    start_day: int
    end_day: int
    months: int                  # calendar months touched by the window
    month_starts: np.ndarray     # int64 day numbers, length BURN_IN + months + FORWARD + 1

    @classmethod
    def ending(cls, end: date, months: int) -> Timeline:
        start = _months_before(end, months)
        first = np.datetime64(start, "M")
        last = np.datetime64(end - timedelta(days=1), "M")
        calendar = int((last - first).astype(int)) + 1
        latent = np.arange(first - BURN_IN, last + FORWARD + 2, dtype="datetime64[M]")
        return cls(
            start_day=(start - EPOCH).days,
            end_day=(end - EPOCH).days,
            months=calendar,
            month_starts=latent.astype("datetime64[D]").astype(np.int64),
        )

    @property
    def latent_months(self) -> int:
        return len(self.month_starts) - 1

    def calendar_starts(self) -> np.ndarray:
        """First day of each calendar month of the window."""
        return self.month_starts[BURN_IN:BURN_IN + self.months]

    def month_of(self, days: np.ndarray) -> np.ndarray:
        """Latent month index of each day number."""
        return np.searchsorted(self.month_starts, days, side="right") - 1


def _months_before(end: date, months: int) -> date:
    index = end.year * 12 + end.month - 1 - months
    year, month = divmod(index, 12)
    month += 1
    day = min(end.day, _month_length(year, month))
    return date(year, month, day)


def _month_length(year: int, month: int) -> int:
    following = date(year + month // 12, month % 12 + 1, 1)
    return (following - date(year, month, 1)).days


@dataclass
class Block:
    """One block of users: who they are and the latent path of their risk."""

    index: int                 # block number; users are index * block_users + position
    first_user: int
    community: np.ndarray      # block-local community of each user
    community_start: np.ndarray  # first position of each community (users are grouped)
    community_size: np.ndarray
    z: np.ndarray              # latent creditworthiness, higher is safer
    age: np.ndarray
    gender: np.ndarray         # index into GENDERS
    education: np.ndarray      # index into EDUCATIONS
    occupation: np.ndarray     # index into OCCUPATIONS
    income: np.ndarray         # monthly, CNY
    thin_file: np.ndarray      # no credit product at all
    renter: np.ndarray
    job_loss_p: np.ndarray     # monthly job-loss probability (0 when not employed)
    jobless: np.ndarray        # (users, latent months) bool
    shock: np.ndarray          # (users, latent months) bool: the community is in a shock
    moved: np.ndarray          # (users, latent months) bool
    hazard: np.ndarray         # (users, latent months) P(onset of serious delinquency)
    onset: np.ndarray          # latent month of onset, -1 for none

    @property
    def users(self) -> int:
        return len(self.z)

    @property
    def user_index(self) -> np.ndarray:
        return self.first_user + np.arange(self.users, dtype=np.int64)


def draw_block(rng: np.random.Generator, *, index: int, first_user: int, users: int,
               latent_months: int, intercept: float, world: World = WORLD) -> Block:
    """Draw a block's users and their latent monthly states (vectorised over users)."""
    community, starts, sizes = _communities(rng, users, world.community_mean)
    shared = rng.standard_normal(len(sizes))
    loading = world.community_loading
    z = loading * shared[community] + np.sqrt(1 - loading**2) * rng.standard_normal(users)
    age = np.clip(18 + rng.gamma(3.0, 6.0, users), 18, 85).astype(np.int64)
    gender = _categorical(rng, np.array([0.49, 0.50, 0.01]), users)
    education = _education(rng, z, age)
    occupation = _occupation(rng, z, age)
    income = _income(rng, z, education, occupation)
    young = age < 25
    thin_logit = (world.thin_file_logit + 1.0 * young + 0.8 * (occupation == 3)
                  - 0.35 * z + 0.4 * rng.standard_normal(users))
    thin_file = rng.random(users) < _sigmoid(thin_logit)
    renter = rng.random(users) < np.where(age < 35, 0.55, 0.25)
    employed = np.isin(occupation, EMPLOYED)
    job_loss_p = np.where(employed, _sigmoid(_logit(world.job_loss) - world.job_loss_z * z), 0.0)
    jobless = _two_state(rng, job_loss_p, world.job_recover, latent_months)
    community_shock = _two_state(rng, np.full(len(sizes), world.shock_start), world.shock_end,
                                 latent_months)
    shock = community_shock[community]
    move_p = world.move_rate * np.exp(0.4 * -z) * np.where(renter, 2.0, 1.0)
    moved = rng.random((users, latent_months)) < move_p[:, None]
    hazard = onset_hazard(intercept, z, young, jobless, shock, world)
    onset = _first_true(rng.random((users, latent_months)) < hazard)
    return Block(index=index, first_user=first_user, community=community,
                 community_start=starts, community_size=sizes, z=z, age=age, gender=gender,
                 education=education, occupation=occupation, income=income,
                 thin_file=thin_file, renter=renter, job_loss_p=job_loss_p, jobless=jobless,
                 shock=shock, moved=moved, hazard=hazard, onset=onset)


def onset_hazard(intercept: float, z: np.ndarray, young: np.ndarray, jobless: np.ndarray,
                 shock: np.ndarray, world: World = WORLD) -> np.ndarray:
    """The true monthly probability of entering serious delinquency, per user and month."""
    base = intercept - world.beta_z * z + world.beta_young * young
    return _sigmoid(base[:, None] + world.beta_job * jobless + world.beta_shock * shock)


def _communities(rng: np.random.Generator, users: int,
                 mean: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sizes = np.maximum(2, rng.poisson(mean, users // 2 + 2))
    ends = np.cumsum(sizes)
    count = int(np.searchsorted(ends, users)) + 1
    sizes = sizes[:count].copy()
    sizes[-1] -= int(ends[count - 1]) - users
    sizes = sizes[sizes > 0]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    community = np.repeat(np.arange(len(sizes)), sizes)
    return community, starts, sizes


def _education(rng: np.random.Generator, z: np.ndarray, age: np.ndarray) -> np.ndarray:
    latent = 0.35 * z - 0.01 * (age - 40) + rng.standard_normal(len(z))
    cuts = np.array([-1.75, -0.25, 0.35, 1.35, 2.1])  # ~5/35/20/30/8/2 %
    return np.searchsorted(cuts, latent)


def _occupation(rng: np.random.Generator, z: np.ndarray, age: np.ndarray) -> np.ndarray:
    working = np.array([0.60, 0.09, 0.18, 0.0, 0.0, 0.07, 0.06])
    tilt = np.exp(np.outer(-z, [0, -0.3, 0.1, 0, 0, 0.6, 0.2]))
    weights = working * tilt
    weights[age < 24, 3] = weights[age < 24].sum(axis=1)  # half the under-24s study
    weights[age >= 62, 4] = 3 * weights[age >= 62].sum(axis=1)  # most over-62s are retired
    return _categorical_rows(rng, weights)


def _income(rng: np.random.Generator, z: np.ndarray, education: np.ndarray,
            occupation: np.ndarray) -> np.ndarray:
    by_occupation = np.log([7000, 8500, 9000, 1500, 4000, 1200, 5000])[occupation]
    log_income = by_occupation + 0.12 * education + 0.15 * z + 0.45 * rng.standard_normal(len(z))
    return np.round(np.exp(log_income), -1)


def _two_state(rng: np.random.Generator, enter: np.ndarray, leave: float,
               months: int) -> np.ndarray:
    """A two-state Markov path per row, started from its stationary distribution."""
    stationary = enter / (enter + leave)
    state = rng.random(len(enter)) < stationary
    paths = np.empty((len(enter), months), dtype=bool)
    draws = rng.random((len(enter), months))
    for month in range(months):
        paths[:, month] = state
        state = np.where(state, draws[:, month] >= leave, draws[:, month] < enter)
    return paths


def _first_true(hits: np.ndarray) -> np.ndarray:
    first = hits.argmax(axis=1)
    return np.where(hits.any(axis=1), first, -1)


def _categorical(rng: np.random.Generator, probabilities: np.ndarray, n: int) -> np.ndarray:
    return np.searchsorted(np.cumsum(probabilities), rng.random(n) * probabilities.sum())


def _categorical_rows(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    """One category per row, drawn with that row's (unnormalised) weights."""
    cumulative = np.cumsum(weights, axis=1)
    draws = rng.random(len(weights)) * cumulative[:, -1]
    return (cumulative < draws[:, None]).sum(axis=1)


def _sigmoid(x: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def _logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


# -- calibration and the oracle -------------------------------------------------


@lru_cache(maxsize=32)
def onset_intercept(bad_rate: float, world: World = WORLD) -> float:
    """The hazard intercept at which a year's share of users entering delinquency is ``bad_rate``.

    Solved by bisection on a fixed calibration sample (its own random stream,
    independent of the seed), so the same knob means the same world for every
    seed and population size.
    """
    if not 0 < bad_rate < 1:
        raise ValueError(f"bad_rate must be strictly between 0 and 1, got {bad_rate!r}")
    rng = np.random.default_rng(20_240_601)
    sample = draw_block(rng, index=0, first_user=0, users=world.calibration_users,
                        latent_months=12, intercept=0.0, world=world)
    young = sample.age < 25
    low, high = -20.0, 5.0
    for _ in range(60):
        middle = (low + high) / 2
        hazard = onset_hazard(middle, sample.z, young, sample.jobless, sample.shock, world)
        yearly = 1 - np.prod(1 - hazard, axis=1).mean()
        low, high = (middle, high) if yearly < bad_rate else (low, middle)
    return (low + high) / 2


def expected_hazard(block: Block, intercept: float, month: int, ahead: int,
                    world: World = WORLD) -> np.ndarray:
    """E[hazard] for the ``ahead`` months from latent ``month``, given only the state then.

    Job loss and community shocks are two-state Markov chains, so their
    probabilities ``j`` months on have a closed form; the oracle integrates over
    them instead of peeking at the realised future.
    """
    steps = np.arange(ahead)
    p_job = _markov_ahead(block.jobless[:, month], block.job_loss_p, world.job_recover, steps)
    shock_enter = np.full(block.users, world.shock_start)
    p_shock = _markov_ahead(block.shock[:, month], shock_enter, world.shock_end, steps)
    young = block.age < 25
    total = np.zeros((block.users, ahead))
    for job in (0, 1):
        for shock in (0, 1):
            weight = (p_job if job else 1 - p_job) * (p_shock if shock else 1 - p_shock)
            state = np.full((block.users, 1), True)
            hazard = onset_hazard(intercept, block.z, young, job * state, shock * state, world)
            total += weight * hazard
    return total


def _markov_ahead(now: np.ndarray, enter: np.ndarray, leave: float,
                  steps: np.ndarray) -> np.ndarray:
    stationary = enter / (enter + leave)
    decay = (1 - enter - leave)[:, None] ** steps[None, :]
    return stationary[:, None] + (now - stationary)[:, None] * decay


# -- furnishers ------------------------------------------------------------------

SOURCES = (
    "utilities_hub", "telecom_one", "rent_hub", "bank_north", "bank_south",
    "quickloan", "paylater", "wallet",
)
UTILITIES, TELECOM, RENT, BANK_NORTH, BANK_SOUTH, QUICKLOAN, PAYLATER, WALLET = range(8)

# Per source: typical reporting delay in days (exponential mean), the share reported weeks
# late (14-60 days) and the share back-filled months late (60-180 days).
REPORT_DELAY_DAYS = np.array([2.0, 1.0, 4.0, 2.5, 3.0, 1.0, 0.5, 0.05])
REPORT_WEEKS_LATE = np.array([0.08, 0.05, 0.10, 0.05, 0.05, 0.06, 0.04, 0.01])
REPORT_MONTHS_LATE = np.array([0.02, 0.01, 0.02, 0.01, 0.01, 0.01, 0.005, 0.002])


@dataclass
class Context:
    """What every emitter of a block reads: its random stream, its users, the calendar."""

    rng: np.random.Generator
    block: Block
    timeline: Timeline

    @property
    def emitted_months(self) -> int:
        """Latent months that can hold events: the burn-in and the calendar months."""
        return BURN_IN + self.timeline.months

    def instant(self, days: np.ndarray, *, earliest_hour: int = 0, latest_hour: int = 24
                ) -> np.ndarray:
        """Microseconds since the epoch: the given days at a random time within the hours given."""
        seconds = self.rng.integers(earliest_hour * 3600, latest_hour * 3600, len(days))
        return days.astype(np.int64) * DAY_US + seconds * 1_000_000

    def in_window(self, days: np.ndarray) -> np.ndarray:
        return (days >= self.timeline.start_day) & (days < self.timeline.end_day)

    def scatter(self, rate: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Poisson(rate) events per user and calendar month at uniform days in the window.

        ``rate`` is (users, emitted months); returns user, latent month and day of each event.
        """
        counts = self.rng.poisson(rate)
        counts[:, :BURN_IN] = 0
        user, month = np.nonzero(counts)
        repeats = counts[user, month]
        user, month = user.repeat(repeats), month.repeat(repeats)
        starts = self.timeline.month_starts
        length = starts[month + 1] - starts[month]
        day = starts[month] + (self.rng.random(len(user)) * length).astype(np.int64)
        keep = self.in_window(day)
        return user[keep], month[keep], day[keep]
