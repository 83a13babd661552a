"""Partner API throughput against a bare Flask endpoint, measured side by side.

1. Lookups: signed, consent-checked, logged ``GET /v1/scores/{open_id}`` served by
   the app (``web.app:create_app()``) under gunicorn, 2 workers on loopback,
   against a bare Flask app under the same gunicorn settings whose one endpoint
   reads the same stored score row (``scoring.publish.current_score``) from the
   same database and returns it as JSON. Workers are of the class
   ``altcredit serve`` runs for that database by default (sync on SQLite,
   gthread with 4 threads on PostgreSQL: ``web.commands.serve.worker_options``),
   or ``--worker sync|gthread`` for both; the load starts 3 s after a server
   answers, so every worker has booted. Load: wrk (Debian's ``wrk``) with
   a Lua script replaying pre-signed requests (a fresh nonce each, so none is
   refused as a replay), 2 threads, 16 connections. Both servers run at once and
   are loaded in alternating rounds (``--rounds``), so that load from elsewhere
   on a shared machine falls on both sides alike. Target: lookups >= 0.5x the
   bare endpoint's requests per second, p99 <= 25 ms. On SQLite, and on
   PostgreSQL when one is reachable (``--postgres URL``, default the local server).
2. Events: ``POST /v1/events`` with signed 1,000-event batches from 4 Python
   threads: events per second and p99 per batch (aim: 20,000 events/s).

Run: ``.venv/bin/python benchmarks/api.py [--small] [--seconds S] [--rounds R] [--worker auto|sync|gthread]
[--postgres URL|none]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from config.database import dispose_engines, get_engine, upgrade  # noqa: E402
from config.settings import load_settings  # noqa: E402
from scoring.publish import ScoreRecord, current_score, publish_scores  # noqa: E402
from web.commands.serve import worker_options  # noqa: E402
from web.consent import grant_consent  # noqa: E402
from web.partners import create_partner  # noqa: E402
from web.signing import sign_request  # noqa: E402

LUA = r"""
local threads, counter = {}, 0
function setup(thread)
  thread:set("id", counter); table.insert(threads, thread); counter = counter + 1
end
function init(args)
  local file, nthreads, signed = args[1], tonumber(args[2]), args[3] == "signed"
  requests, idx, i = {}, 0, 0
  for line in io.lines(file) do
    if i % nthreads == id then
      local path, partner, ts, nonce, sig = line:match("([^\t]*)\t?([^\t]*)\t?([^\t]*)\t?([^\t]*)\t?([^\t]*)")
      local headers = {}
      if signed then
        headers = {["X-Partner"]=partner, ["X-Timestamp"]=ts, ["X-Nonce"]=nonce, ["X-Signature"]=sig}
      end
      table.insert(requests, wrk.format("GET", path, headers))
    end
    i = i + 1
  end
end
function request()
  idx = idx + 1
  if idx > #requests then idx = 1 end
  return requests[idx]
end
function done(summary, latency, requests)
  io.write(string.format('{"requests": %d, "duration_us": %d, "non2xx": %d, "errors": %d, '
    .. '"p50_us": %d, "p99_us": %d}\n', summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def bare_app() -> Any:
    """The baseline: a bare Flask app reading the same score row (gunicorn imports this)."""
    from flask import Flask, jsonify

    settings = load_settings()
    engine = get_engine(settings)
    app = Flask("bare")

    @app.get("/bare/<user_id>")
    def bare(user_id: str) -> Any:
        score = current_score(engine, user_id)
        if score is None:
            return jsonify({"error": "unknown"}), 404
        return jsonify({"score": score.score, "band": score.band_code, "as_of": str(score.as_of)})

    return app


# -- setup ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def prepare(env: dict[str, str], users: int) -> tuple[Ed25519PrivateKey, list[str]]:
    """Migrate, register the partner, publish a score and grant a consent per user."""
    settings = load_settings(home=Path(env["ALTCREDIT_HOME"]), database_url=env["ALTCREDIT_DATABASE_URL"])
    engine = get_engine(settings)
    upgrade(engine)
    key = Ed25519PrivateKey.generate()
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    partner = create_partner(engine, "bench", public_key_pem=pem, rate_limit="100000000/minute",
                             role="partner")
    records = [ScoreRecord(user_id=f"user-{i:06d}", score=550 + i % 300, score_unclipped=550.0 + i % 300,
                           band_code="good", base_points=600.0, features={"f": 1.0},
                           dimensions={"credit_history": 10.0, "behaviour": -5.0},
                           reasons=[{"code": "late_payments", "text_en": "Late payments",
                                     "text_zh": "逾期还款", "points": -12.0}])
               for i in range(users)]
    publish_scores(engine, as_of=date(2026, 1, 1), model_version="bench", snapshot_id="bench",
                   records=records)
    open_ids = [grant_consent(engine, user_id=record.user_id, partner=partner, purpose="loan_underwriting",
                              scope="score", days=30).open_id for record in records]
    dispose_engines()
    return key, open_ids


def serve(command: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    log = Path(env["ALTCREDIT_HOME"]).with_suffix(f".{port}.log")
    with log.open("wb") as sink:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/nothing", timeout=1)
            time.sleep(3)  # let every worker finish booting before the load starts
            return process
        except httpx.TransportError:
            time.sleep(0.2)
    stop(process)
    tail = log.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"server on port {port} did not start: {' '.join(command)}\n{tail}")


def stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def wrk(port: int, lines_file: Path, *, signed: bool, seconds: int, workdir: Path) -> dict[str, float]:
    script = workdir / "replay.lua"
    script.write_text(LUA)
    out = subprocess.run(["wrk", "-t2", "-c16", f"-d{seconds}s", "-s", str(script),
                          f"http://127.0.0.1:{port}", "--", str(lines_file), "2",
                          "signed" if signed else "bare"],
                         capture_output=True, text=True, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def signed_lines(key: Ed25519PrivateKey, open_ids: list[str], count: int, path: Path) -> None:
    with path.open("w") as handle:
        for i in range(count):
            target = f"/v1/scores/{open_ids[i % len(open_ids)]}?purpose=loan_underwriting"
            headers = sign_request(key, partner="bench", method="GET", target=target)
            handle.write("\t".join([target, headers["X-Partner"], headers["X-Timestamp"], headers["X-Nonce"],
                                    headers["X-Signature"]]) + "\n")


# -- the runs ---------------------------------------------------------------------------------


def gunicorn(app: str, port: int, worker: str) -> list[str]:
    """The same gunicorn command for both servers: 2 workers of the chosen class, loopback."""
    threads = ["-k", "gthread", "--threads", "4"] if worker == "gthread" else ["-k", "sync"]
    return [sys.executable, "-m", "gunicorn", "-w", "2", *threads, "-b", f"127.0.0.1:{port}",
            "--chdir", str(ROOT), "--log-level", "warning", app]


def worker_class(worker: str, database_url: str) -> str:
    """``auto``: the class ``altcredit serve`` runs for this database."""
    if worker != "auto":
        return worker
    return str(worker_options(database_url)["worker_class"])


def lookups(env: dict[str, str], users: int, seconds: int, workdir: Path, worker: str,
            rounds: int) -> dict[str, Any]:
    """Both servers up at once, loaded in alternating rounds (who goes first alternates too).

    The machine is shared, so load from elsewhere lands on both sides alike
    instead of on whichever ran during a busy spell. Each round of the API
    replays its own freshly signed requests (none is ever a replay).
    """
    key, open_ids = prepare(env, users)
    bare_file = workdir / "bare.tsv"
    bare_file.write_text("".join(f"/bare/user-{i:06d}\n" for i in range(users)))
    ports = {"bare": free_port(), "api": free_port()}
    apps = {"bare": "benchmarks.api:bare_app()", "api": "web.app:create_app()"}
    servers = {side: serve(gunicorn(apps[side], ports[side], worker), env, ports[side]) for side in apps}
    per_round = max(1, seconds // rounds)
    runs: dict[str, list[dict[str, float]]] = {"bare": [], "api": []}
    try:
        ceiling = wrk(ports["bare"], bare_file, signed=False, seconds=1, workdir=workdir)["rps"]  # warm-up
        for index in range(rounds):
            for side in (("bare", "api") if index % 2 == 0 else ("api", "bare")):
                lines = bare_file
                if side == "api":
                    lines = workdir / f"signed-{index}.tsv"
                    signed_lines(key, open_ids, int(max(ceiling, 1000) * per_round * 2), lines)
                runs[side].append(wrk(ports[side], lines, signed=side == "api", seconds=per_round,
                                      workdir=workdir))
        results: dict[str, Any] = {side: combined(side_runs) for side, side_runs in runs.items()}
        results["events"] = events(ports["api"], key, open_ids, batches=max(4, seconds * 4))
    finally:
        for server in servers.values():
            stop(server)
    return results


def combined(runs: list[dict[str, float]]) -> dict[str, float]:
    """Rounds added up: requests per second over all of them; p50 and p99 as the median round's, and the
    worst round's p99."""
    requests = sum(run["requests"] for run in runs)
    duration = sum(run["duration_us"] for run in runs)
    return {"requests": requests, "rps": requests / (duration / 1e6),
            "non2xx": sum(run["non2xx"] for run in runs), "errors": sum(run["errors"] for run in runs),
            "p50_us": statistics.median(run["p50_us"] for run in runs),
            "p99_us": statistics.median(run["p99_us"] for run in runs),
            "p99_worst_us": max(run["p99_us"] for run in runs)}


def events(port: int, key: Ed25519PrivateKey, open_ids: list[str], *, batches: int) -> dict[str, float]:
    """Signed 1,000-event batches from 4 threads: events/s and p99 seconds per batch."""
    bodies = []
    for b in range(batches):
        events_ = [{"event_id": f"b{b}-{i}", "user_id": open_ids[(b * 1000 + i) % len(open_ids)],
                    "kind": "agreement", "event_time": "2026-01-10T08:30:00+00:00",
                    "agreement_type": "rental_deposit_free", "outcome": "kept", "amount": "3000.00",
                    "currency": "CNY"} for i in range(1000)]
        bodies.append(json.dumps({"events": events_}).encode())

    def send(body: bytes) -> float:
        headers = sign_request(key, partner="bench", method="POST", target="/v1/events", body=body)
        started = time.perf_counter()
        response = httpx.post(f"http://127.0.0.1:{port}/v1/events", content=body, timeout=120,
                              headers={**headers, "Content-Type": "application/json"})
        if response.status_code != 200:
            raise RuntimeError(f"events batch refused: {response.status_code} {response.text[:200]}")
        return time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=4) as pool:
        latencies = sorted(pool.map(send, bodies))
    elapsed = time.perf_counter() - started
    return {"events_per_s": batches * 1000 / elapsed,
            "p99_batch_ms": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000}


def postgres_database(admin_url: str) -> tuple[str, Any] | None:
    try:
        admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        name = f"altcredit_bench_{uuid.uuid4().hex[:8]}"
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.SQLAlchemyError as exc:
        print(f"PostgreSQL not reachable at {admin_url} ({type(exc).__name__}); skipping it")
        return None

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return admin.url.set(database=name).render_as_string(hide_password=False), drop


def report(name: str, results: dict[str, Any]) -> None:
    bare, api, ev = results["bare"], results["api"], results["events"]
    ratio = api["rps"] / bare["rps"]
    print(f"\n== {name}")
    for label, side in (("bare Flask endpoint", bare), ("signed+consent+logged", api)):
        print(f"{label:24s} {side['rps']:8.0f} req/s   p50 {side['p50_us'] / 1000:6.2f} ms   "
              f"p99 {side['p99_us'] / 1000:6.2f} ms (worst round {side['p99_worst_us'] / 1000:.2f})   "
              f"non-2xx {side['non2xx']}   errors {side['errors']}")
    print(f"ratio api/bare           {ratio:8.2f}x  (target >= 0.5x; p99 target <= 25 ms)")
    print(f"POST /v1/events          {ev['events_per_s']:8.0f} events/s   p99 per 1,000-event batch "
          f"{ev['p99_batch_ms']:.0f} ms (aim 20,000 events/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="fewer users and 3-second runs")
    parser.add_argument("--seconds", type=int, help="seconds of load per server (default 20, --small 4)")
    parser.add_argument("--rounds", type=int, help="alternating rounds the seconds are split into "
                        "(default 10, --small 2)")
    parser.add_argument("--users", type=int, help="users with a score and a consent (default 2000)")
    parser.add_argument("--worker", choices=["auto", "sync", "gthread"], default="auto",
                        help="gunicorn worker class of both servers (auto: what `altcredit serve` runs "
                        "for the database, sync on SQLite, gthread on PostgreSQL; gthread: 4 threads each)")
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
                        help="admin URL of a PostgreSQL server, or 'none'")
    parser.add_argument("--sqlite", choices=["yes", "no"], default="yes", help="run the SQLite half")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("benchmarks/api.py needs wrk (apt-get install -y wrk)")
    seconds = args.seconds or (4 if args.small else 20)
    rounds = args.rounds or (2 if args.small else 10)
    users = args.users or (300 if args.small else 2000)
    print(f"load: wrk -t2 -c16, {seconds} s per server in {rounds} alternating rounds, pre-signed requests; "
          f"gunicorn 2 workers ({args.worker}) for both servers; {users} users")
    backends: list[tuple[str, str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if args.sqlite == "yes":
            backends.append(("SQLite", f"sqlite:///{workdir / 'bench.db'}", None))
        if args.postgres != "none":
            created = postgres_database(args.postgres)
            if created:
                backends.append(("PostgreSQL", created[0], created[1]))
        for name, url, cleanup in backends:
            env = {**{k: v for k, v in os.environ.items() if not k.startswith("ALTCREDIT_")},
                   "ALTCREDIT_HOME": str(workdir / name), "ALTCREDIT_DATABASE_URL": url,
                   "ALTCREDIT_LOG_LEVEL": "WARNING", "ALTCREDIT_SERVE_HOST": "127.0.0.1"}
            try:
                worker = worker_class(args.worker, url)
                report(f"{name} ({worker} workers)", lookups(env, users, seconds, workdir, worker, rounds))
            finally:
                if cleanup:
                    cleanup()


if __name__ == "__main__":
    main()
