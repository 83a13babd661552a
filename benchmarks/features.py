"""The whole feature set against the single-scan ceiling, measured side by side.

1. A lake of N events for U users (default 20,000,000 / 1,000,000; --small 1,000,000 /
   50,000) over 24 months, made by a vectorised numpy generator of lake-shaped events
   (every kind in the simulator's proportions, lateness, late reports, 0.3% corrections
   and voids) and stored through the real lake writer (features.lake_writer.LakeWriter,
   validation skipped). The simulator is not used: at about 24 events per user-month
   it would give 1M users only one month of history, and this is faster to set up.
2. Ceiling: one grouped Polars pass over the same lake files computing count, sum(amount)
   and max(event_time) per user.
3. The feature store: ``build_snapshot`` with engine polars — the lake resolved as known at
   D, every feature of config/features.toml, the snapshot written (Parquet + manifest).
   Target: at most 3x the ceiling, peak memory at most 6 GiB.

Each measurement runs in its own fresh process; peak resident memory is sampled every
20 ms. Prints the time of each stage, events per second and the ratio.

Run: ``.venv/bin/python benchmarks/features.py [--small] [--users U] [--events N]
[--rounds R] [--lake DIR]``. This machine's speed swings by a quarter from run to run:
``--rounds 3`` reports the median of three turns each, and ``--lake DIR`` keeps the lake
so that another checkout's script can be measured on the very same events.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config.settings import load_settings
from features import events as taxonomy
from features.records import STAGED_SCHEMA
from features.store import SNAPSHOTS

AS_OF = date(2025, 7, 1)
START = datetime(2023, 7, 1, tzinfo=UTC)
DAY_US = 86_400_000_000
# Kind shares of a simulated population (features.simulate, 24 months).
KINDS = {"payment": 0.377, "transfer": 0.159, "bill": 0.110, "bill_payment": 0.109,
         "app_activity": 0.081, "balance": 0.080, "repayment": 0.031, "installment_due": 0.030,
         "contact": 0.011, "profile": 0.0045, "credit_opened": 0.0026, "agreement": 0.0024,
         "default": 0.0002}
SOURCES = {"payment": "wallet", "transfer": "bank", "balance": "bank", "app_activity": "wallet",
           "contact": "wallet", "profile": "wallet", "agreement": "rental"}


def generate(users: int, rows: int, seed: int, offset: int) -> pa.Table:
    """``rows`` staged events (lake columns minus the platform's), vectorised."""
    rng = np.random.default_rng(seed)
    names = list(KINDS)
    probabilities = np.array(list(KINDS.values()))
    kind = rng.choice(len(names), size=rows, p=probabilities / probabilities.sum())
    user = rng.integers(0, users, rows)
    span = int((datetime(2025, 9, 1, tzinfo=UTC) - START).total_seconds() * 1e6)
    event_us = int(START.timestamp() * 1e6) + rng.integers(0, span, rows)
    delay = np.where(rng.random(rows) < 0.03, rng.exponential(20, rows), rng.exponential(1, rows))
    reported_us = event_us + (delay * DAY_US).astype(np.int64)
    columns: dict[str, Any] = {
        "source": pa.array([SOURCES.get(n, "lender") for n in names]).take(pa.array(kind)),
        "event_id": pc.binary_join_element_wise(
            "e", pc.cast(pa.array(np.arange(offset, offset + rows)), pa.string()), ""),
        "user_id": _user_ids(users).take(pa.array(user)),
        "kind": pa.array(names).take(pa.array(kind)),
        "event_time": pa.array(event_us).cast(taxonomy.UTC_TIMESTAMP),
        "reported_at": pa.array(reported_us).cast(taxonomy.UTC_TIMESTAMP),
    }
    is_kind = {n: kind == i for i, n in enumerate(names)}
    columns |= _payload(rng, rows, is_kind, event_us, users)
    return pa.Table.from_pydict(
        {f.name: columns.get(f.name, pa.nulls(rows, f.type)) for f in STAGED_SCHEMA},
        schema=STAGED_SCHEMA)


_IDS: dict[int, pa.Array] = {}


def _user_ids(users: int) -> pa.Array:
    if users not in _IDS:
        _IDS[users] = pa.array([f"u{i:07d}" for i in range(users)])
    return _IDS[users]


def _strings(prefix: str, numbers: np.ndarray, width: int = 0) -> pa.Array:
    text = pc.cast(pa.array(numbers), pa.string())
    if width:
        text = pc.utf8_lpad(text, width, "0")
    return pc.binary_join_element_wise(prefix, text, "")


def _payload(rng: np.random.Generator, rows: int, is_kind: dict[str, np.ndarray],
             event_us: np.ndarray, users: int) -> dict[str, pa.Array]:
    def where(kinds: tuple[str, ...], values: Any, kind_type: pa.DataType) -> pa.Array:
        keep = np.logical_or.reduce([is_kind[k] for k in kinds])
        array = values if isinstance(values, pa.Array) else pa.array(values)
        return pc.if_else(pa.array(keep), array.cast(kind_type), pa.nulls(rows, kind_type))

    def pick(enum: type, kinds: tuple[str, ...]) -> pa.Array:
        values = pa.array([member.value for member in enum])
        return where(kinds, values.take(pa.array(rng.integers(0, len(values), rows))),
                     pa.string())

    def money(kinds: tuple[str, ...], values: np.ndarray) -> pa.Array:
        return pc.cast(where(kinds, np.round(values, 2), pa.float64()), taxonomy.MONEY,
                       safe=False)

    flows = ("payment", "transfer", "bill", "bill_payment", "repayment", "installment_due",
             "agreement", "default")
    amount = rng.lognormal(5, 1.2, rows)
    signed = amount * np.where(rng.random(rows) < 0.05, -1, 1)
    late = np.where(rng.random(rows) < 0.9, 0, rng.geometric(0.05, rows))
    day = event_us // DAY_US
    paid_kinds = ("repayment", "bill_payment")
    is_paid = is_kind["repayment"] | is_kind["bill_payment"]
    due_kinds = (*paid_kinds, "bill", "installment_due")
    return {
        "amount": pc.coalesce(money(flows, amount), money(("balance",), signed)),
        "currency": where((*flows, "balance", "credit_opened"), pa.repeat("CNY", rows),
                          pa.string()),
        "account_id": where((*due_kinds, "credit_opened", "default"),
                            _strings("a", rng.integers(0, 3, rows)), pa.string()),
        "due_date": where(due_kinds, np.where(is_paid, day - late, day + 20).astype(np.int32),
                          pa.date32()),
        "paid_date": where(paid_kinds, day.astype(np.int32), pa.date32()),
        "amount_due": money(("repayment",), amount * 1.05),
        "credit_limit": money(("credit_opened",), amount * 50),
        "product": pick(taxonomy.Product, ("credit_opened",)),
        "default_reason": pick(taxonomy.DefaultReason, ("default",)),
        "biller_category": pick(taxonomy.BillerCategory, ("bill", "bill_payment")),
        "merchant_category": pick(taxonomy.MerchantCategory, ("payment",)),
        "channel": pick(taxonomy.Channel, ("payment",)),
        "direction": pick(taxonomy.Direction, ("transfer",)),
        "counterparty": where(("transfer",), _strings("c", rng.integers(0, 50, rows)),
                              pa.string()),
        "agreement_type": pick(taxonomy.AgreementType, ("agreement",)),
        "outcome": pick(taxonomy.Outcome, ("agreement",)),
        "identity_verified": where(("profile",), rng.random(rows) < 0.85, pa.bool_()),
        "education": pick(taxonomy.Education, ("profile",)),
        "occupation": pick(taxonomy.Occupation, ("profile",)),
        "phone_since": where(("profile",), (day - rng.integers(30, 4000, rows)).astype(np.int32),
                             pa.date32()),
        "address_changed": where(("profile",), rng.random(rows) < 0.1, pa.bool_()),
        "sessions": where(("app_activity",), rng.integers(0, 40, rows).astype(np.int32),
                          pa.int32()),
        "active_minutes": where(("app_activity",), rng.integers(0, 300, rows).astype(np.int32),
                                pa.int32()),
        "contact_user_id": where(("contact",), _strings("u", rng.integers(0, users, rows), 7),
                                 pa.string()),
        "contact_action": pick(taxonomy.ContactAction, ("contact",)),
        "relation": pick(taxonomy.Relation, ("contact",)),
    }


def corrections(table: pa.Table, seed: int, share: float = 0.003) -> pa.Table:
    """Corrections of a sample of ``table``'s events, reported a month later; a fifth voids."""
    rng = np.random.default_rng(seed)
    picked = np.flatnonzero(rng.random(table.num_rows) < share)
    originals = table.take(pa.array(picked))
    later = pc.add(originals.column("reported_at"), pa.scalar(30 * DAY_US, pa.duration("us")))
    fixed = (originals
            .set_column(originals.schema.get_field_index("corrects"), "corrects",
                        originals.column("event_id"))
            .set_column(originals.schema.get_field_index("event_id"), "event_id",
                        pc.binary_join_element_wise("fix-", originals.column("event_id"), ""))
            .set_column(originals.schema.get_field_index("reported_at"), "reported_at",
                        later.cast(taxonomy.UTC_TIMESTAMP))
            .set_column(originals.schema.get_field_index("voided"), "voided",
                        pa.array(rng.random(len(picked)) < 0.2)))
    return fixed.cast(STAGED_SCHEMA)


def build_lake(home: Path, *, users: int, events: int, seed: int) -> None:
    """Store ``events`` generated events (plus corrections) through the lake writer."""
    from features.lake_writer import LakeWriter

    settings = load_settings(home=home, log_format="text", lake_fsync=False)
    chunk = 2_000_000
    with LakeWriter(settings) as writer:
        for number, offset in enumerate(range(0, events, chunk)):
            table = generate(users, min(chunk, events - offset), seed + number, offset)
            writer.add(pa.concat_tables([table, corrections(table, seed + number)]))
        writer.commit()


# -- measurements, each in a fresh process ------------------------------------------


def measure(what: str, home: Path) -> dict[str, Any]:
    """Run ``what`` in a child process; its timings and peak memory."""
    result = subprocess.run([sys.executable, __file__, "--child", what, "--home", str(home)],
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def child(what: str, home: Path) -> dict[str, Any]:
    import polars as pl

    from features import lake
    from features.store import build_snapshot

    settings = load_settings(home=home, log_format="text")
    peak = _PeakMemory()
    started = time.perf_counter()
    cpu_started = time.process_time()
    stages: dict[str, float] = {}
    if what == "ceiling":
        files = [str(path) for path in lake.lake_files(settings)]
        frame = (pl.scan_parquet(files).group_by("user_id")
                 .agg(pl.len().alias("n"), pl.col("amount").cast(pl.Float64).sum().alias("sum"),
                      pl.col("event_time").max().alias("last")).collect())
        rows = frame.height
    else:
        marks: list[tuple[str, float]] = []
        manifest = build_snapshot(settings, as_of=AS_OF, engine="polars",
                                  progress=lambda name: marks.append((name, time.perf_counter())))
        marks.append(("end", time.perf_counter()))
        stages = {name: round(marks[i + 1][1] - at, 3) for i, (name, at) in enumerate(marks[:-1])}
        rows = manifest.row_count
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 3), "rows": rows, "stages": stages,
            "cpu_seconds": round(time.process_time() - cpu_started, 3),
            "peak_gib": round(peak.stop() / 2**30, 3)}


class _PeakMemory:
    """The largest resident set size seen, sampled every 20 ms on a thread."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._peak = self._process.memory_info().rss
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.wait(0.02):
            self._peak = max(self._peak, self._process.memory_info().rss)

    def stop(self) -> int:
        self._done.set()
        self._thread.join()
        return max(self._peak, self._process.memory_info().rss)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="1,000,000 events, 50,000 users")
    parser.add_argument("--users", type=int, default=None)
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure the pass and the build this many times each, in turn; "
                             "report the median run of each")
    parser.add_argument("--lake", type=Path, default=None,
                        help="build the lake in this folder and keep it; a later run with the "
                             "same sizes reuses it (to compare two versions of the code on the "
                             "same events)")
    parser.add_argument("--child", choices=["ceiling", "features"], help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.home)))
        return 0
    users = args.users or (50_000 if args.small else 1_000_000)
    events = args.events or (1_000_000 if args.small else 20_000_000)
    with tempfile.TemporaryDirectory(prefix="altcredit-bench-features-") as scratch:
        home = args.lake or Path(scratch) / "home"
        _lake(home, users=users, events=events, seed=args.seed)
        ceilings, builds = [], []
        for _ in range(args.rounds):
            ceilings.append(measure("ceiling", home))
            shutil.rmtree(load_settings(home=home, log_format="text").path(*SNAPSHOTS),
                          ignore_errors=True)  # else the build finds its snapshot made
            builds.append(measure("features", home))
    _report(events, _median(ceilings), _median(builds))
    return 0


def _lake(home: Path, *, users: int, events: int, seed: int) -> None:
    """Build the lake in ``home``, or reuse the one a run with the same sizes left there."""
    made = home / "bench-lake.json"
    wanted = {"users": users, "events": events, "seed": seed}
    if made.exists():
        found = json.loads(made.read_text())
        if found != wanted:
            raise SystemExit(f"{home} holds a lake made with {found}, not {wanted}: "
                             "give another --lake folder")
        print(f"lake: {events:,} events (+0.3% corrections), {users:,} users, reused from {home}")
        from features.lake_writer import LakeWriter

        with LakeWriter(load_settings(home=home, log_format="text")):
            pass  # a lake kept from an older version gets its user registry here
        return
    started = time.perf_counter()
    build_lake(home, users=users, events=events, seed=seed)
    made.write_text(json.dumps(wanted))
    print(f"lake: {events:,} events (+0.3% corrections), {users:,} users, "
          f"built in {time.perf_counter() - started:.1f} s (not measured below)")


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median time (the middle one, or the faster of the two middle ones)."""
    return sorted(runs, key=lambda run: run["seconds"])[(len(runs) - 1) // 2]


def _report(events: int, ceiling: dict[str, Any], features: dict[str, Any]) -> None:
    from config.feature_definitions import load_feature_definitions

    count = len(load_feature_definitions().features)
    ratio = features["seconds"] / ceiling["seconds"]
    print(f"ceiling  one grouped pass (count, sum, max): {ceiling['seconds']:7.2f} s  "
          f"{events / ceiling['seconds']:>12,.0f} events/s  peak {ceiling['peak_gib']:.2f} GiB")
    print(f"features {count} features, snapshot written:  {features['seconds']:7.2f} s  "
          f"{events / features['seconds']:>12,.0f} events/s  peak {features['peak_gib']:.2f} GiB"
          f"  ({features['rows']:,} users)")
    for stage, seconds in features["stages"].items():
        print(f"  stage {stage:<8} {seconds:7.2f} s")
    print(f"cpu time (every thread; steadier than wall time on a shared machine): ceiling "
          f"{ceiling['cpu_seconds']:.2f} s, features {features['cpu_seconds']:.2f} s, "
          f"ratio {features['cpu_seconds'] / ceiling['cpu_seconds']:.2f}x")
    print(f"ratio features / ceiling: {ratio:.2f}x (target <= 3x); "
          f"peak memory {features['peak_gib']:.2f} GiB (target <= 6 GiB)")


if __name__ == "__main__":
    sys.exit(main())
