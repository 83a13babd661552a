"""Explanation throughput and latency against exact SHAP alone, side by side in one run.

    .venv/bin/python benchmarks/explain.py [--small] [--rows N] [--trees T] [--depth D]

A production-size model (default 300 trees of depth 5 over the real feature
catalogue, trained on synthetic data with the catalogue's monotone
constraints) explains N rows (default 200,000):

- full explanation (points, dimensions, reason codes) vs
  ``shap.TreeExplainer(booster).shap_values`` on the same rows: rows/s and ratio;
- one row's full explanation vs ``pred_contribs`` on one row (ms and ratio);
- tips for one user: median ms.

The batch sides run interleaved, chunk by chunk in alternating order, and
the tips batch is the best of a few runs, so a busy machine hurts both sides
alike.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import shap
import xgboost as xgb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config.feature_definitions import load_feature_definitions
from scoring.explain import Explainer
from scoring.points import ScoreModel
from scoring.tips import TipAdvisor, TipReference


def synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Features on the catalogue (some missing) and a label driven by many weak signals."""
    definitions = load_feature_definitions()
    rng = np.random.default_rng(seed)
    values = rng.gamma(2.0, 1.0, size=(n, len(definitions.names))).astype(np.float32)
    values[rng.random(values.shape) < 0.15] = np.nan
    weights = rng.normal(0, 0.25, len(definitions.names)) * np.array(
        [definitions.get(name).direction or 0.3 for name in definitions.names])
    log_odds = -3.0 + np.nan_to_num(values - 2.0) @ weights
    bad = (rng.random(n) < 1 / (1 + np.exp(-log_odds))).astype(int)
    return values, bad


def train(trees: int, depth: int, rows: int) -> ScoreModel:
    definitions = load_feature_definitions()
    values, bad = synthetic(rows, seed=1)
    constraints = "(" + ",".join(str(definitions.get(n).direction) for n in definitions.names) + ")"
    params = {"objective": "binary:logistic", "max_depth": depth, "eta": 0.05, "subsample": 0.8,
              "colsample_bytree": 0.8, "monotone_constraints": constraints, "tree_method": "hist",
              "verbosity": 0}
    booster = xgb.train(params, xgb.DMatrix(values, label=bad, feature_names=definitions.names),
                        trees)
    return ScoreModel(booster=booster, feature_names=tuple(definitions.names), a=0.95, b=0.05,
                      version="bench")


def best_of(repeats: int, *runs: Callable[[], object]) -> list[float]:
    """Seconds of each run, best of ``repeats`` rounds; who goes first alternates."""
    best = [float("inf")] * len(runs)
    for round_ in range(repeats):
        order = list(enumerate(runs))
        for index, run in order if round_ % 2 == 0 else reversed(order):
            started = time.perf_counter()
            run()
            best[index] = min(best[index], time.perf_counter() - started)
    return best


def interleaved(values: np.ndarray, *runs: Callable[[np.ndarray], object],
                chunk: int = 20_000) -> list[float]:
    """Total seconds of each run over the rows, taken chunk by chunk in alternating order.

    On a shared machine the load drifts over minutes; interleaving the two sides
    chunk by chunk spreads any drift evenly over both.
    """
    totals = [0.0] * len(runs)
    for number, start in enumerate(range(0, values.shape[0], chunk)):
        part = values[start:start + chunk]
        order = list(enumerate(runs))
        for index, run in order if number % 2 == 0 else reversed(order):
            started = time.perf_counter()
            run(part)
            totals[index] += time.perf_counter() - started
    return totals


def per_call_ms(function: Callable[[int], object], calls: int) -> float:
    """Median milliseconds of one call over ``calls`` different rows."""
    times = []
    for index in range(calls):
        started = time.perf_counter()
        function(index)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a quick run (well under a minute)")
    parser.add_argument("--rows", type=int, help="rows to explain (default 200,000; small 5,000)")
    parser.add_argument("--trees", type=int, default=300)
    parser.add_argument("--depth", type=int, default=5)
    args = parser.parse_args()
    rows = args.rows or (2_000 if args.small else 200_000)
    trees = 100 if args.small and args.trees == 300 else args.trees
    chunk = 250 if args.small else 20_000

    started = time.perf_counter()
    model = train(trees, args.depth, rows=2_000 if args.small else 20_000)
    print(f"model: {trees} trees of depth {args.depth} over {len(model.feature_names)} features "
          f"(trained in {time.perf_counter() - started:.1f} s)")
    explainer = Explainer(model)
    values, _ = synthetic(rows, seed=2)
    reference_shap = shap.TreeExplainer(model.booster)

    ours, theirs = interleaved(values, lambda part: explainer.explain(part),
                               lambda part: reference_shap.shap_values(part), chunk=chunk)
    print(f"batch of {rows:,} rows: full explanation {rows / ours:,.0f} rows/s, "
          f"shap.TreeExplainer.shap_values {rows / theirs:,.0f} rows/s, ratio {theirs / ours:.2f}x "
          "(target >= 0.9x)")

    single = values[:500]
    calls = 100 if args.small else 500
    explainer.explain(single[:1])
    one_booster = model._single_thread
    raw_ms = per_call_ms(lambda i: one_booster.predict(
        xgb.DMatrix(single[i:i + 1], missing=np.nan, nthread=1), pred_contribs=True,
        validate_features=False), calls)
    ours_ms = per_call_ms(lambda i: explainer.record(explainer.explain(single[i:i + 1]), 0), calls)
    print(f"single row: full explanation {ours_ms:.3f} ms, pred_contribs alone {raw_ms:.3f} ms, "
          f"ratio {raw_ms / ours_ms:.2f}x (aim: under 1 ms)")

    reference = TipReference.fit(explainer, synthetic(2_000 if args.small else 20_000, seed=3)[0])
    advisor = TipAdvisor(explainer, reference)
    advisor.tips(single[:1])
    tips_ms = per_call_ms(lambda i: advisor.tips(single[i:i + 1]), calls)
    batch_rows = min(rows, 20_000)
    (tips_batch,) = best_of(1, lambda: advisor.tips(values[:batch_rows]))
    print(f"tips: one user {tips_ms:.2f} ms median (target < 20 ms); in batch "
          f"{batch_rows / tips_batch:,.0f} users/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
