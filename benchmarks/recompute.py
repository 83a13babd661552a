"""End-to-end recompute of a whole population, stage by stage, against each stage's baseline.

1. A lake of U users (default 1,000,000; --small 50,000) with 20 events each, made by the
   feature benchmark's vectorised generator and stored through the real lake writer.
2. A production-size champion: XGBoost, 300 trees of depth 4 over every feature of the
   catalogue with its monotone constraints, trained on a sample of the snapshot against a
   synthetic label, registered through the real registry (so it is the champion).
3. End to end, in one process with peak memory sampled every 20 ms: ``build_snapshot`` as
   of D (features), then ``scoring.recompute.recompute`` (scores, explanations, reasons,
   tips, the atomic publish of every row). Wall and CPU seconds of each.
4. Each stage alone on the same S scored rows (default 100,000), next to its baseline:
   explanations (``Explainer.explain_matrix``) against shap alone
   (``shap.TreeExplainer(...).shap_values``), tips (choice and texts), the JSON texts of
   points and reasons, and publishing (``publish_scores`` of those rows, a new as-of date)
   against a bulk insert of the same rows into a table of the same shape and indexes (the
   floor: executemany of ready tuples in transactions of 20,000). Each stage's share is of
   the sum of the stages' times, scaled to the whole population.
Target (issue 7): 1,000,000 users end to end in at most 10 minutes and 8 GiB on 2 cores.

Run: ``.venv/bin/python benchmarks/recompute.py [--small] [--users U] [--sample S]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config.database import get_engine, upgrade
from config.feature_definitions import load_feature_definitions
from config.scorecard import load_scorecard
from config.settings import Settings, load_settings

EVENTS_PER_USER = 20
TRAIN_ROWS = 100_000


def _feature_benchmark() -> Any:
    """benchmarks/features.py, for its lake generator (one generator for both benchmarks)."""
    path = Path(__file__).with_name("features.py")
    spec = importlib.util.spec_from_file_location("bench_features", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class PeakMemory:
    def __init__(self) -> None:
        self._process = psutil.Process()
        self.peak = self._process.memory_info().rss
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.wait(0.02):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def stop(self) -> float:
        self._done.set()
        self._thread.join()
        return max(self.peak, self._process.memory_info().rss) / 2**30


def register_champion(settings: Settings, as_of: date) -> Any:
    """Train a 300-tree model on a sample of the snapshot and register it (the first: champion)."""
    import polars as pl
    import xgboost as xgb

    from features.store import load_snapshot
    from scoring import registry
    from scoring.artefacts import Calibration, VersionMeta, new_version_id

    definitions = load_feature_definitions()
    names = [name for name in definitions.names]
    frame = load_snapshot(settings, as_of)
    sample = frame.sample(min(TRAIN_ROWS, frame.height), seed=0)
    values = sample.select(names).cast(pl.Float64).to_numpy()
    rng = np.random.default_rng(0)
    risk = np.zeros(values.shape[0])
    for index, name in enumerate(names[:12]):  # a label that follows the catalogue's directions
        column = np.nan_to_num(values[:, index])
        spread = np.nanstd(column) or 1.0
        risk += (definitions.get(name).direction or 1) * (column - np.nanmean(column)) / spread
    bad = (rng.random(values.shape[0]) < 1 / (1 + np.exp(3.0 - 0.4 * risk))).astype(int)
    constraints = "(" + ",".join(str(definitions.get(name).direction) for name in names) + ")"
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 4, "eta": 0.1,
                         "monotone_constraints": constraints, "tree_method": "hist", "verbosity": 0},
                        xgb.DMatrix(values, label=bad, feature_names=names), num_boost_round=300)
    created = datetime.now(UTC)
    meta = VersionMeta(
        version=new_version_id(created), created_at=created, data_watermark=created,
        definitions_hash=definitions.hash, engine="polars", feature_names=names, categories={},
        monotone={name: definitions.get(name).direction for name in names}, params={}, n_rounds=300,
        calibration=Calibration(a=1.0, b=0.0), scale=load_scorecard().scale, train_as_of=[as_of],
        holdout_as_of=as_of, metrics={},
    )
    holdout = pl.DataFrame({"user_id": ["x"], "bad": [0], "margin": [0.0], "score": [600.0]})
    registry.register(settings, meta, booster, holdout)
    return registry.load_champion(settings)


class Marks:
    """Wall and CPU seconds of each labelled step, printed as they finish."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def time(self, label: str, action: Any) -> Any:
        """Run ``action``, add its time to ``label``'s and print the total so far."""
        result = self.add(label, action)
        self.show(label)
        return result

    def add(self, label: str, action: Any) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        result = action()
        self.wall[label] = self.wall.get(label, 0.0) + time.perf_counter() - wall
        self.cpu[label] = self.cpu.get(label, 0.0) + time.process_time() - cpu
        return result

    def show(self, label: str) -> None:
        print(f"  {label:<42} {self.wall[label]:8.2f} s wall {self.cpu[label]:8.2f} s cpu", flush=True)


def publish_floor(settings: Settings, set_id: int, marks: Marks, label: str) -> int:
    """Insert the published rows of ``set_id`` again, as ready tuples, into a table of the same shape.

    Only the inserts are timed (reading the rows back is not), in transactions of
    20,000 rows like a bulk load: the floor any publish of these rows stands on.
    """
    import sqlalchemy as sa

    from scoring.score_tables import HISTORY_COLUMNS

    engine = get_engine(settings)
    columns = ", ".join(HISTORY_COLUMNS)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE bench_floor (set_id INTEGER NOT NULL, user_id VARCHAR NOT NULL, "
            "as_of DATE NOT NULL, score INTEGER, score_unclipped FLOAT, band_code VARCHAR, "
            "base_points FLOAT, features JSON NOT NULL, dimensions JSON NOT NULL, "
            "reasons JSON NOT NULL, tips JSON NOT NULL, status VARCHAR NOT NULL, reason VARCHAR, "
            "PRIMARY KEY (set_id, user_id))")
        connection.exec_driver_sql("CREATE INDEX ix_bench_floor ON bench_floor (user_id, as_of)")
    marks_sql = ", ".join("?" for _ in HISTORY_COLUMNS)
    total, after = 0, ""
    while True:
        with engine.connect() as connection:
            rows = [tuple(row) for row in connection.execute(sa.text(
                f"SELECT {columns} FROM score_history WHERE set_id = :set AND user_id > :after "
                "ORDER BY user_id LIMIT 20000"), {"set": set_id, "after": after})]
        if not rows:
            marks.show(label)
            return total
        after, total = rows[-1][1], total + len(rows)

        def insert(batch: list[tuple[Any, ...]] = rows) -> None:
            with engine.begin() as connection:
                connection.exec_driver_sql(
                    f"INSERT INTO bench_floor ({columns}) VALUES ({marks_sql})", batch)

        marks.add(label, insert)


def stages_alone(settings: Settings, champion: Any, sample: int, marks: Marks) -> dict[str, int]:
    """Each stage of the recompute alone on the same ``sample`` scored rows, and its baseline."""
    import shap

    from features.store import load_snapshot
    from scoring.publish import publish_scores
    from scoring.recompute import explainer_for, score_records, tip_reference
    from scoring.record_json import ReasonJson, TipJson, points_json
    from scoring.tips import TipAdvisor

    explainer = explainer_for(champion)
    frame = load_snapshot(settings, bench_as_of()).head(sample)
    values = explainer.model.matrix(frame)
    advisor = TipAdvisor(explainer, tip_reference(settings, champion, explainer, fallback=frame))
    batch = marks.time("explanations: Explainer.explain_matrix", lambda: explainer.explain_matrix(values))
    marks.time("  baseline: shap TreeExplainer.shap_values",
               lambda: shap.TreeExplainer(champion.booster).shap_values(values))
    choice = marks.time("tips: TipAdvisor.choose", lambda: advisor.choose(values))
    tip_json = TipJson(explainer, advisor.reference)
    marks.time("tips: their JSON texts", lambda: tip_json.rows(choice, values.shape[0]))
    marks.time("points and reasons: JSON texts", lambda: (
        points_json(batch.points, explainer.model.feature_names),
        points_json(batch.dimensions, explainer.layout.dimension_names),
        ReasonJson(explainer.layout).rows(batch)))
    records = list(score_records(frame, explainer, advisor))
    day = bench_as_of().replace(day=2)
    summary = marks.time("publish: publish_scores", lambda: publish_scores(
        get_engine(settings), as_of=day, model_version=champion.version, snapshot_id="bench",
        records=records))
    records.clear()
    floor_rows = publish_floor(settings, summary.set_id, marks,
                               "  baseline: bulk insert of the same rows")
    return {"rows": values.shape[0], "published": summary.n_scored + summary.n_unscored,
            "floor": floor_rows}


def bench_as_of() -> date:
    return _feature_benchmark().AS_OF


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="50,000 users")
    parser.add_argument("--users", type=int, default=None)
    parser.add_argument("--sample", type=int, default=100_000,
                        help="rows for the stages measured alone (default 100,000)")
    args = parser.parse_args()
    users = args.users or (50_000 if args.small else 1_000_000)
    bench_features = _feature_benchmark()
    as_of = bench_features.AS_OF

    from features.store import build_snapshot
    from scoring.recompute import recompute

    with tempfile.TemporaryDirectory(prefix="altcredit-recompute-") as folder:
        home = Path(folder) / "home"
        settings = load_settings(home=home, log_format="text")
        print(f"lake: {users:,} users, {users * EVENTS_PER_USER:,} events ...", flush=True)
        bench_features.build_lake(home, users=users, events=users * EVENTS_PER_USER, seed=0)
        upgrade(get_engine(settings))
        marks = Marks()
        memory = PeakMemory()
        print("end to end:", flush=True)
        marks.time("features (snapshot)", lambda: build_snapshot(settings, as_of=as_of))
        peak_features = memory.stop()
        champion = marks.time("train a 300-tree champion (setup)",
                              lambda: register_champion(settings, as_of))
        memory = PeakMemory()
        summary = marks.time("scores + explanations + tips + publish",
                             lambda: recompute(settings, as_of=as_of))
        peak = max(peak_features, memory.stop())
        print(f"each stage alone on {min(args.sample, summary.n_users):,} rows:", flush=True)
        alone = stages_alone(settings, champion, min(args.sample, summary.n_users), marks)

    report(marks, summary, alone, peak)
    return 0


def report(marks: Marks, summary: Any, alone: dict[str, int], peak: float) -> None:
    wall, cpu = marks.wall, marks.cpu
    end_to_end = wall["features (snapshot)"] + wall["scores + explanations + tips + publish"]
    end_cpu = cpu["features (snapshot)"] + cpu["scores + explanations + tips + publish"]
    print(f"\n{summary.n_users:,} users ({summary.n_scored:,} scored) end to end in {end_to_end:.1f} s "
          f"wall, {end_cpu:.1f} s cpu (target 600 s for 1,000,000 on 2 cores), "
          f"peak memory {peak:.2f} GiB (target 8)")
    scale = summary.n_users / alone["rows"]
    stages = {
        "features": (wall["features (snapshot)"], summary.n_users, None),
        "explanations": (wall["explanations: Explainer.explain_matrix"] * scale, summary.n_users,
                         "  baseline: shap TreeExplainer.shap_values"),
        "tips": ((wall["tips: TipAdvisor.choose"] + wall["tips: their JSON texts"]) * scale,
                 summary.n_users, None),
        "points+reasons": (wall["points and reasons: JSON texts"] * scale, summary.n_users, None),
        "publish": (wall["publish: publish_scores"] * summary.n_users / alone["published"],
                    summary.n_users, "  baseline: bulk insert of the same rows"),
    }
    total = sum(seconds for seconds, _, _ in stages.values())
    for stage, (seconds, rows, baseline) in stages.items():
        line = f"  {stage:<15} {seconds / total:6.1%} of the time, {rows / seconds:10,.0f} rows/s"
        if baseline is not None:
            base_rows = alone["floor"] if stage == "publish" else alone["rows"]
            base_rate = base_rows / wall[baseline]
            line += (f"   baseline {base_rate:10,.0f} rows/s "
                     f"({(rows / seconds) / base_rate:.2f}x the baseline's throughput)")
        print(line)


if __name__ == "__main__":
    raise SystemExit(main())
