"""Ingestion throughput against the I/O ceiling, measured side by side.

1. File ingest: a Parquet file of N events (default 10,000,000; --small 500,000),
   generated here with numpy (independent of the simulator), ingested with
   ``ingest_files`` into an empty lake, against the ceiling of reading the same
   file with pyarrow and writing it back as Parquet with the lake's compression.
   Target: ingest throughput >= 0.25x the ceiling's. Also the peak resident
   memory of the process while it ingests.
2. The dict-batch service: ``ingest_records`` with batches of 1,000 records as
   the API receives them (JSON-decoded dicts: strings for times, dates, money),
   events per second (aim: 50,000/s on 2 cores), with ``lake_fsync`` on (the
   default) and off, and from two processes at once; against a JSON round trip
   of the same batches (the floor of any HTTP route) and the time of the four
   fsyncs a durable commit makes on this disk.

Run: ``.venv/bin/python benchmarks/ingest.py [--small] [--events N] [--batches B]``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config.settings import load_settings
from features.events import INPUT_SCHEMA, MerchantCategory
from features.ingest import ingest_files, ingest_records
from features.lake_writer import lake_compression

START = np.datetime64("2023-01-01T00:00:00", "us").astype(np.int64)
SPAN_US = 730 * 86_400 * 1_000_000
KINDS = np.array(["payment", "transfer", "bill", "bill_payment", "repayment", "balance",
                  "app_activity"])
WEIGHTS = np.array([0.50, 0.18, 0.07, 0.07, 0.08, 0.05, 0.05])
SOURCE_OF = np.array(["wallet", "wallet", "grid", "grid", "lender", "wallet", "app"])


def _strings(codes: np.ndarray, values: list[str], valid: np.ndarray | None = None) -> pa.Array:
    indices = pa.array(codes.astype(np.int32), mask=None if valid is None else ~valid)
    return pa.DictionaryArray.from_arrays(indices, pa.array(values)).cast(pa.string())


def _ids(prefix: str, numbers: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    text = pa.array(numbers).cast(pa.string())
    joined = pa.compute.binary_join_element_wise(pa.scalar(prefix), text, "")
    return joined if valid is None else pa.compute.if_else(pa.array(valid), joined, None)


def events_table(start: int, rows: int, seed: int) -> pa.Table:
    """``rows`` valid input events (ids start..start+rows), vectorised; no Python row loop."""
    rng = np.random.default_rng(seed)
    kind = rng.choice(len(KINDS), size=rows, p=WEIGHTS)
    is_ = {name: kind == i for i, name in enumerate(KINDS)}
    event_us = START + rng.integers(0, SPAN_US, rows)
    reported = rng.random(rows) < 0.5
    due_days = (event_us // 86_400_000_000 + rng.integers(0, 20, rows)).astype(np.int32)
    has_due = is_["bill"] | is_["bill_payment"] | is_["repayment"]
    has_paid = is_["bill_payment"] | is_["repayment"]
    paid_days = (due_days + np.maximum(rng.normal(-1, 6, rows), -10)).astype(np.int32)
    has_amount = ~is_["app_activity"]
    cents = rng.lognormal(8, 1.2, rows).astype(np.int64)
    cents = np.where(is_["balance"] & (rng.random(rows) < 0.1), -cents, cents)
    has_account = has_due | is_["balance"]
    columns: dict[str, pa.Array] = {
        "source": _strings(kind, list(SOURCE_OF)),
        "event_id": _ids("ev-", np.arange(start, start + rows)),
        "user_id": _ids("u-", rng.integers(0, max(rows // 20, 1), rows)),
        "kind": _strings(kind, list(KINDS)),
        "event_time": pa.array(event_us, pa.timestamp("us", tz="UTC")),
        "reported_at": pa.array(event_us + rng.integers(0, 5 * 86_400_000_000, rows),
                                pa.timestamp("us", tz="UTC"), mask=~reported),
        "amount": pa.array(cents / 100, mask=~has_amount).cast(pa.decimal128(18, 2)),
        "currency": _strings(np.zeros(rows, int), ["CNY"], has_amount),
        "account_id": _ids("acct-", rng.integers(0, rows, rows), has_account),
        "due_date": pa.array(due_days, pa.date32(), mask=~has_due),
        "paid_date": pa.array(paid_days, pa.date32(), mask=~has_paid),
        "amount_due": pa.array(cents / 100, mask=~is_["repayment"]).cast(pa.decimal128(18, 2)),
        "biller_category": _strings(rng.integers(0, 3, rows), ["utility", "telecom", "rent"],
                                    is_["bill"] | is_["bill_payment"]),
        "merchant_category": _strings(rng.integers(0, len(MerchantCategory), rows),
                                      [m.value for m in MerchantCategory], is_["payment"]),
        "channel": _strings(rng.integers(0, 3, rows), ["online", "in_store", "mobile"],
                            is_["payment"]),
        "direction": _strings(rng.integers(0, 2, rows), ["in", "out"], is_["transfer"]),
        "counterparty": _ids("cp-", rng.integers(0, 100_000, rows), is_["transfer"]),
        "sessions": pa.array(rng.integers(0, 40, rows).astype(np.int32),
                             mask=~is_["app_activity"]),
    }
    return pa.table({f.name: columns[f.name].cast(f.type) for f in INPUT_SCHEMA
                     if f.name in columns})


def write_events(path: Path, rows: int, chunk: int = 1_000_000) -> None:
    first = events_table(0, min(rows, chunk), seed=0)
    with pq.ParquetWriter(path, first.schema) as writer:
        writer.write_table(first)
        for number, start in enumerate(range(chunk, rows, chunk), start=1):
            writer.write_table(events_table(start, min(chunk, rows - start), seed=number))


def ceiling(path: Path, out: Path, compression: str | None) -> float:
    """Seconds to read the file with pyarrow and write it back as Parquet."""
    pq.write_table(pq.read_table(path).slice(0, 2_000), out, compression=compression)  # warm-up
    began = time.perf_counter()
    table = pq.read_table(path)
    pq.write_table(table, out, compression=compression)
    return time.perf_counter() - began


def api_batches(count: int, size: int = 1000) -> list[list[dict[str, Any]]]:
    """Batches as a JSON route would receive them: json.loads of records with text values."""
    table = events_table(50_000_000, count * size, seed=99)
    records = [{k: v for k, v in row.items() if v is not None} for row in table.to_pylist()]
    text = json.dumps(records, default=_json_value)
    decoded = json.loads(text)
    return [decoded[i:i + size] for i in range(0, len(decoded), size)]


def _json_value(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="500,000 events, 30 batches")
    parser.add_argument("--events", type=int, default=None, help="events in the file")
    parser.add_argument("--batches", type=int, default=None, help="API batches of 1,000")
    args = parser.parse_args()
    events = args.events or (500_000 if args.small else 10_000_000)
    batches = args.batches or (30 if args.small else 200)
    with tempfile.TemporaryDirectory(prefix="altcredit-bench-") as folder:
        work = Path(folder)
        settings = load_settings(home=work / "home", log_format="text", log_level="WARNING")
        compression = lake_compression(settings)
        source = work / "events.parquet"
        began = time.perf_counter()
        write_events(source, events)
        size_mb = source.stat().st_size / 1e6
        print(f"input: {events:,} events, {size_mb:,.0f} MB Parquet "
              f"(generated in {time.perf_counter() - began:.1f} s); cpus: {os.cpu_count()}, "
              f"load average {os.getloadavg()[0]:.1f}")

        # each side in a fresh process (cold memory pools alike), after a tiny warm-up
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            io_seconds = pool.apply(ceiling, (source, work / "copy.parquet", compression))
        (work / "copy.parquet").unlink()
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            stored, ingest_seconds, peak = pool.apply(_ingest_fresh,
                                                      (str(settings.home), str(source)))
        assert stored == events, stored
        print(f"ceiling  read+write Parquet ({settings.lake_compression}): {io_seconds:7.2f} s  "
              f"{events / io_seconds:12,.0f} events/s")
        print(f"ingest   altcredit ingest_files:           {ingest_seconds:7.2f} s  "
              f"{events / ingest_seconds:12,.0f} events/s")
        print(f"ratio    ingest / ceiling throughput: {io_seconds / ingest_seconds:.2f}x "
              f"(target >= 0.25x)")
        print(f"memory   peak RSS of the fresh process that ingested: {peak / 2**30:.2f} GiB")

        payloads = api_batches(batches)
        total = sum(len(batch) for batch in payloads)
        began = time.perf_counter()
        for batch in payloads:
            json.loads(json.dumps(batch))
        json_seconds = time.perf_counter() - began
        floor = fsync_floor(work / "fsync", len(payloads))
        print(f"baseline json round trip of the batches: {total / json_seconds:12,.0f} events/s")
        print(f"baseline 4 fsyncs per commit (what a durable commit costs on this disk): "
              f"{floor * 1e3:.1f} ms -> at most {1000 / floor:,.0f} events/s per 1,000-batch")
        for durable in (True, False):
            home = work / f"api-{durable}"
            api = load_settings(home=home, log_format="text", log_level="WARNING",
                                lake_fsync=durable)
            began = time.perf_counter()
            for batch in payloads:
                ingest_records(api, batch)
            rate = total / (time.perf_counter() - began)
            print(f"api      ingest_records, {len(payloads)} batches of 1,000, lake_fsync="
                  f"{str(durable).lower():5}: {rate:10,.0f} events/s (aim 50,000/s); "
                  f"service/json {rate * json_seconds / total:.2f}x")
        rate = concurrent_api(work / "api-workers", payloads, workers=2)
        print(f"api      the same from 2 processes at once (as 2 gunicorn workers), "
              f"lake_fsync=true: {rate:10,.0f} events/s")


def concurrent_api(home: Path, payloads: list[list[dict[str, Any]]], *, workers: int) -> float:
    """Events per second when ``workers`` processes send batches into one lake at once."""
    shares = [payloads[i::workers] for i in range(workers)]
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_warm_up, initargs=(str(home), payloads[0])) as pool:
        pool.map(time.sleep, [0.5] * workers)  # every worker started and warmed up
        began = time.perf_counter()
        pool.starmap(_send, [(str(home), share) for share in shares])
        seconds = time.perf_counter() - began
    return sum(len(batch) for batch in payloads) / seconds


def _warm_up(home: str, batch: list[dict[str, Any]]) -> None:
    """Import and exercise every code path once, in a scratch lake beside ``home``."""
    scratch = Path(home).with_name(f"{Path(home).name}-warm-{os.getpid()}")
    ingest_records(load_settings(home=scratch, log_format="text", log_level="WARNING"), batch)


def _send(home: str, batches: list[list[dict[str, Any]]]) -> None:
    settings = load_settings(home=home, log_format="text", log_level="WARNING")
    for batch in batches:
        ingest_records(settings, batch)


def _ingest_fresh(home: str, source: str) -> tuple[int, float, int]:
    """In a fresh process: rows stored, seconds, and the process's peak resident memory."""
    warm = Path(home).with_name("warm-up")
    warm.mkdir()
    write_events(warm / "few.parquet", 2_000)  # every code path once, outside the timing
    ingest_files(load_settings(home=warm / "home", log_format="text", log_level="WARNING"),
                 [warm / "few.parquet"])
    settings = load_settings(home=home, log_format="text", log_level="WARNING")
    began = time.perf_counter()
    result = ingest_files(settings, [Path(source)])
    seconds = time.perf_counter() - began
    return result.stored, seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def fsync_floor(folder: Path, count: int) -> float:
    """Median seconds of the four fsyncs a commit makes (two files, two folders)."""
    folder.mkdir()
    times = []
    for number in range(max(count, 20)):
        began = time.perf_counter()
        for name in ("data", "manifest"):
            with open(folder / f"{name}-{number}", "wb") as handle:
                handle.write(b"x" * 30_000)
                handle.flush()
                os.fsync(handle.fileno())
            descriptor = os.open(folder, os.O_RDONLY)
            os.fsync(descriptor)
            os.close(descriptor)
        times.append(time.perf_counter() - began)
    return sorted(times)[len(times) // 2]

if __name__ == "__main__":
    main()
