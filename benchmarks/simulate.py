"""Simulator throughput and peak memory, against the Parquet floor measured side by side.

1. ``simulate`` for N users x M months (default 100,000 x 24; ``--small``
   10,000 x 12): users per second, events per second, peak resident memory.
2. The floor: writing the same number of rows of the same shape to Parquet with
   the same writer settings, without generating anything (one block's events
   table written again and again). The ratio says how much of the simulator's
   time is generation rather than the unavoidable encoding and writing.

Run: ``.venv/bin/python benchmarks/simulate.py [--small] [--users N] [--months M]``.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from features.simulate import _events_writer, simulate, simulate_block
from features.simulate_world import Timeline, onset_intercept

END = date(2026, 1, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="10,000 users x 12 months")
    parser.add_argument("--users", type=int)
    parser.add_argument("--months", type=int)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    users = args.users or (10_000 if args.small else 100_000)
    months = args.months or (12 if args.small else 24)
    with tempfile.TemporaryDirectory(prefix="altcredit-bench-simulate-") as scratch:
        folder = Path(scratch)
        started, cpu = time.perf_counter(), time.process_time()
        summary = simulate(users=users, months=months, seed=args.seed, out_dir=folder / "sim",
                           end=END, bad_rate=0.05, chunk_users=50_000)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        size_mib = sum(path.stat().st_size for path in summary.event_files) / 2**20
        floor = _parquet_floor(folder / "floor.parquet", rows=summary.events, months=months,
                               seed=args.seed)
    print(f"simulate {users:,} users x {months} months: {summary.events:,} events, "
          f"{size_mib:,.0f} MiB in {len(summary.event_files)} files")
    print(f"  time            {seconds:8.1f} s wall, {cpu:.1f} s CPU (both threads)")
    print(f"  users/s         {users / seconds:10,.0f}")
    print(f"  events/s        {summary.events / seconds:10,.0f}")
    print(f"  peak memory     {peak_mib:8.0f} MiB (resident, whole process)")
    print(f"  realised bad rate {summary.realised_bad_rate:.2%}, thin-file "
          f"{summary.thin_file_share:.1%}")
    print(f"floor: write the same {summary.events:,} rows to Parquet: {floor:.1f} s "
          f"({summary.events / floor:,.0f} rows/s)")
    print(f"ratio simulate / floor: {seconds / floor:.2f}x the time of only writing the rows")


def _parquet_floor(path: Path, *, rows: int, months: int, seed: int) -> float:
    """Seconds to write ``rows`` rows shaped like the simulator's, generated beforehand."""
    timeline = Timeline.ending(END, months)
    table, _truth, _bad = simulate_block(0, users=1000, seed=seed, timeline=timeline,
                                         intercept=onset_intercept(0.05))
    started = time.perf_counter()
    with _events_writer(path) as writer:
        written = 0
        while written < rows:
            piece = table.slice(0, min(table.num_rows, rows - written))
            writer.write_table(piece)
            written += piece.num_rows
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
