"""End-to-end recompute of a whole population, stage by stage, against each stage's baseline.

1. A lake of U users (default 1,000,000; --small 50,000) with 20 events each, made by the
   feature benchmark's vectorised generator and stored through the real lake writer.
2. A production-size champion: XGBoost, 300 trees of depth 4 over every feature of the
   catalogue with its monotone constraints, trained on a sample of the snapshot against a
   synthetic label, registered through the real registry (so it is the champion).
3. Timed, in one process with peak memory sampled every 20 ms:
   - features: ``build_snapshot`` as of D (the lake resolved as known at D, every feature);
   - scores + explanations + publish: ``scoring.recompute.recompute`` (points, dimensions,
     reasons, tips, the atomic publish of every row);
   - baselines on the same rows: SHAP alone (``shap.TreeExplainer(...).shap_values``),
     the explanation alone (``Explainer.explain_matrix``), and a bulk insert of as many rows
     of the same width into a scratch table (the publish floor).
Target (issue 7): 1,000,000 users end to end in at most 10 minutes and 8 GiB on 2 cores.

Run: ``.venv/bin/python benchmarks/recompute.py [--small] [--users U]``.
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


def timed(label: str, marks: dict[str, float], action: Any) -> Any:
    started = time.perf_counter()
    result = action()
    marks[label] = time.perf_counter() - started
    print(f"  {label:<34} {marks[label]:8.2f} s", flush=True)
    return result


def publish_floor(settings: Settings, rows: int, width: int) -> None:
    """Insert ``rows`` rows shaped like published scores (JSON text of ``width`` chars) in bulk."""
    import sqlalchemy as sa

    engine = get_engine(settings)
    table = sa.Table("bench_floor", sa.MetaData(), sa.Column("user_id", sa.String, primary_key=True),
                     sa.Column("score", sa.Integer), sa.Column("payload", sa.Text))
    table.create(engine)
    payload = "x" * width
    with engine.begin() as connection:
        for start in range(0, rows, 20_000):
            connection.execute(table.insert(), [{"user_id": f"u{i}", "score": 600, "payload": payload}
                                                for i in range(start, min(rows, start + 20_000))])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="50,000 users")
    parser.add_argument("--users", type=int, default=None)
    args = parser.parse_args()
    users = args.users or (50_000 if args.small else 1_000_000)
    bench_features = _feature_benchmark()
    as_of = bench_features.AS_OF

    from features.store import build_snapshot, load_snapshot
    from scoring.explain import Explainer
    from scoring.recompute import explainer_for, recompute

    with tempfile.TemporaryDirectory(prefix="altcredit-recompute-") as folder:
        home = Path(folder) / "home"
        settings = load_settings(home=home, log_format="text")
        print(f"lake: {users:,} users, {users * EVENTS_PER_USER:,} events ...", flush=True)
        bench_features.build_lake(home, users=users, events=users * EVENTS_PER_USER, seed=0)
        upgrade(get_engine(settings))
        marks: dict[str, float] = {}
        memory = PeakMemory()
        print("end to end:", flush=True)
        timed("features (snapshot)", marks, lambda: build_snapshot(settings, as_of=as_of))
        champion = timed("train a 300-tree champion (setup)", marks,
                         lambda: register_champion(settings, as_of))
        summary = timed("scores + explanations + publish", marks,
                        lambda: recompute(settings, as_of=as_of))
        peak = memory.stop()

        print("baselines on the same rows:", flush=True)
        frame = load_snapshot(settings, as_of)
        explainer: Explainer = explainer_for(champion)
        values = explainer.model.matrix(frame)
        import shap

        timed("shap TreeExplainer.shap_values", marks,
              lambda: shap.TreeExplainer(champion.booster).shap_values(values))
        timed("Explainer.explain_matrix", marks, lambda: explainer.explain_matrix(values))
        timed("bulk insert of as many rows", marks,
              lambda: publish_floor(settings, summary.n_users, 2_500))

    end_to_end = marks["features (snapshot)"] + marks["scores + explanations + publish"]
    rest = marks["scores + explanations + publish"] - marks["Explainer.explain_matrix"]
    print(f"\n{summary.n_users:,} users ({summary.n_scored:,} scored) end to end in {end_to_end:.1f} s "
          f"(target 600 s for 1,000,000), peak memory {peak:.2f} GiB (target 8)")
    for stage, seconds in (("features", marks["features (snapshot)"]),
                           ("explanations", marks["Explainer.explain_matrix"]),
                           ("tips + publish", rest)):
        print(f"  {stage:<14} {seconds / end_to_end:6.1%} of the time, "
              f"{summary.n_users / seconds:12,.0f} rows/s")
    ratio = marks["shap TreeExplainer.shap_values"] / marks["Explainer.explain_matrix"]
    print(f"  explanations vs shap alone: {ratio:.2f}x the throughput")
    print(f"  tips + publish vs bulk insert floor: "
          f"{marks['bulk insert of as many rows'] / rest:.2f}x the throughput")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
