"""A dispute's one-user recompute against the population recompute it replaces, side by side.

On a simulated population (default 5,000 people x 24 months) with a champion
and one published as-of date: the population recompute of that date (the
baseline: what a dispute would cost without a one-user recompute), then, for a
few people, ``file_dispute`` end to end (find the event, ingest the void,
recompute the person and swap their published row) and a page of
``user_events``. Then a rerun of the same date, which now also finds the
disputes its snapshot cannot see and swaps in those people's one-user rows,
against a rerun before any dispute (the same snapshot, already built). Prints
the lake's size, each time, the ratio of a filing to the population recompute,
and of the rerun keeping disputes to the plain rerun.

Run: ``.venv/bin/python benchmarks/disputes.py [--users N] [--people K]``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import polars as pl  # noqa: E402

from config.database import get_engine, upgrade  # noqa: E402
from config.settings import load_settings  # noqa: E402
from features import lake  # noqa: E402
from features.ingest import ingest_files  # noqa: E402
from features.simulate import simulate  # noqa: E402
from features.user_events import user_events  # noqa: E402
from scoring.disputes import file_dispute  # noqa: E402
from scoring.publish import list_scores  # noqa: E402
from scoring.recompute import recompute  # noqa: E402
from scoring.rescore import unseen_disputes  # noqa: E402
from tests.scoring.test_recompute import AS_OF, register_champion  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--people", type=int, default=5)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="altcredit-disputes-"))
    try:
        run(folder, args.users, args.people)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(folder: Path, users: int, people: int) -> None:
    settings = load_settings(home=folder / "home", log_format="text", log_level="WARNING")
    upgrade(get_engine(settings))
    simulate(users=users, months=24, seed=3, out_dir=folder / "sim", end=date(2026, 1, 1),
             bad_rate=0.05, chunk_users=users)
    ingest_files(settings, sorted(p for p in (folder / "sim").glob("*.parquet") if "truth" not in p.name))
    rows = lake.scan_stored(settings).select(pl.len()).collect().item()
    register_champion(settings)
    started = time.perf_counter()
    recompute(settings, as_of=AS_OF)
    population = time.perf_counter() - started
    started = time.perf_counter()
    recompute(settings, as_of=AS_OF)
    plain_rerun = time.perf_counter() - started
    scored = [s.user_id for s in list_scores(get_engine(settings), as_of=AS_OF, limit=users)
              if s.score is not None][:people]
    pages, filings = [], []
    for user in scored:
        started = time.perf_counter()
        page = user_events(settings, user, family="payments")
        pages.append(time.perf_counter() - started)
        event = page.items[0]
        started = time.perf_counter()
        file_dispute(settings, user_id=user, source=event.source, event_id=event.event_id,
                     reason="benchmark")
        filings.append(time.perf_counter() - started)
    started = time.perf_counter()
    rerun = recompute(settings, as_of=AS_OF)
    rerun_seconds = time.perf_counter() - started
    started = time.perf_counter()
    kept = unseen_disputes(settings, as_known_at=datetime(AS_OF.year, AS_OF.month, AS_OF.day, tzinfo=UTC),
                           watermark=None)
    finding = time.perf_counter() - started
    filing = statistics.median(filings)
    print(f"lake: {rows:,} rows, {users:,} people; median of {len(scored)} people")
    print(f"population recompute of {AS_OF} (baseline): {population:8.2f} s")
    print(f"file_dispute incl. one-user recompute:   {filing:8.2f} s  "
          f"({filing / population:.3f}x the population recompute)")
    print(f"user_events, one page:                   {statistics.median(pages):8.2f} s")
    print(f"rerun of {AS_OF}, no dispute (baseline):  {plain_rerun:8.2f} s")
    print(f"rerun keeping {len(kept)} disputes:               {rerun_seconds:8.2f} s  "
          f"({rerun_seconds / plain_rerun:.3f}x the plain rerun; {rerun.n_users:,} people)")
    print(f"  of which finding the disputes it keeps:  {finding:8.2f} s")


if __name__ == "__main__":
    main()
