"""Ground truth of a simulated block: what a perfect observer of the latent world would know.

Never ingested. One row per user and calendar month of the window, as of the
first day of that month (``month``):

- ``pd_month``: the true probability that the user enters serious
  delinquency during that month, given the state then (the bad event, 90 days
  past due, follows about three months later);
- ``pd_12m``: the oracle: the probability that the label-defining bad event
  (a 90+ days late repayment or a default) falls within the 12 months from
  ``month``, given everything true on that day: the latent risk, a current
  job loss or community shock, a delinquency under way (a payment on the path
  already missed: then 1). Future shocks are integrated out (not peeked at);
  a user whose bad event is already behind them has 0;
- the latent variables (``z``, ``income``, ``jobless``, ``community_shock``,
  ``thin_file``, ``community``) and the realised outcome (``bad``,
  ``bad_date``: the day of the first bad event, null if none before the end).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from features.simulate_frame import COMMUNITY_WIDTH, Ids, _strings
from features.simulate_obligations import BadPath
from features.simulate_world import BURN_IN, FORWARD, Block, Timeline, expected_hazard

TRUTH_SCHEMA = pa.schema([
    pa.field("user_id", pa.string(), nullable=False),
    pa.field("month", pa.date32(), nullable=False),
    pa.field("pd_month", pa.float64(), nullable=False),
    pa.field("pd_12m", pa.float64(), nullable=False),
    pa.field("z", pa.float64(), nullable=False),
    pa.field("income", pa.float64(), nullable=False),
    pa.field("jobless", pa.bool_(), nullable=False),
    pa.field("community_shock", pa.bool_(), nullable=False),
    pa.field("thin_file", pa.bool_(), nullable=False),
    pa.field("community", pa.string(), nullable=False),
    pa.field("bad", pa.bool_(), nullable=False),
    pa.field("bad_date", pa.date32()),
])


def truth_table(block: Block, path: BadPath, timeline: Timeline, intercept: float,
                users: Ids) -> pa.Table:
    """The block's truth rows, user-major (each user's months in order)."""
    months = timeline.months
    latent = BURN_IN + np.arange(months)
    day = timeline.month_starts[latent]
    oracle = np.column_stack([_oracle(block, path, timeline, intercept, t) for t in latent])
    bad = (path.bad_day >= 0) & (path.bad_day < timeline.end_day)
    shape = (block.users, months)

    def per_user(values: np.ndarray) -> np.ndarray:
        return np.repeat(values, months)

    user_rows = np.repeat(np.arange(block.users), months)
    return pa.Table.from_arrays([
        _strings(users.take(user_rows)),
        pa.array(np.broadcast_to(day, shape).reshape(-1).astype(np.int32)).view(pa.date32()),
        pa.array(block.hazard[:, latent].reshape(-1)),
        pa.array(oracle.reshape(-1)),
        pa.array(per_user(block.z)),
        pa.array(per_user(block.income)),
        pa.array(block.jobless[:, latent].reshape(-1)),
        pa.array(block.shock[:, latent].reshape(-1)),
        pa.array(per_user(block.thin_file)),
        _strings(Ids(f"c{block.index}-", block.community[user_rows].astype(np.int64),
                     COMMUNITY_WIDTH)),
        pa.array(per_user(bad)),
        pa.array(per_user(path.bad_day).astype(np.int32), mask=~per_user(bad)).view(pa.date32()),
    ], schema=TRUTH_SCHEMA)


def _oracle(block: Block, path: BadPath, timeline: Timeline, intercept: float,
            month: int) -> np.ndarray:
    day = timeline.month_starts[month]
    behind = (path.bad_day >= 0) & (path.bad_day < day)
    under_way = (path.account >= 0) & (path.first_due < day) & ~behind
    hazard = expected_hazard(block, intercept, month, FORWARD)
    fresh = 1 - np.prod(1 - hazard, axis=1)
    ahead = (path.bad_day >= day) & (path.bad_day < day + 365)
    return np.where(behind, 0.0, np.where(under_way, ahead.astype(np.float64), fresh))
