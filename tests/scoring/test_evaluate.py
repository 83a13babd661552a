from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from scoring.evaluate import EvaluationError, evaluate_table, prepare_columns
from tests.scoring.synthetic import population
from web.cli import cli

FAST = {"search_budget": 1, "max_rounds": 60, "early_stopping_rounds": 10}


def _table(n: int = 600) -> pl.DataFrame:
    features, bad, _ = population(n, seed=8, base_log_odds=-1.5)
    rng = np.random.default_rng(0)
    return pl.from_pandas(features).with_columns(
        pl.Series("customer_id", [f"c{i:05d}" for i in range(n)]),
        pl.Series("country", ["CN"] * n),
        pl.Series("segment", rng.choice(["a", "b", "c"], n)),
        pl.Series("empty", [None] * n, dtype=pl.Float64),
        pl.Series("outcome", np.where(bad == 1, "bad", "good")),
    )


def test_evaluate_reports_cross_validated_quality_and_column_decisions() -> None:
    result = evaluate_table(_table(), "outcome", folds=3, seed=0, trainer_options=FAST)
    assert result.n == 600 and result.folds == 3 and len(result.fold_auc) == 3
    assert 0.6 < result.auc <= 1 and result.auc_std >= 0 and 0 < result.brier < 0.25
    decisions = {d.column: (d.action, d.reason) for d in result.columns}
    assert decisions["customer_id"][0] == "dropped" and "ID-like" in decisions["customer_id"][1]
    assert decisions["country"] == ("dropped", "constant")
    assert decisions["empty"] == ("dropped", "all missing")
    assert decisions["segment"][0] == "categorical"
    assert decisions["tenure_years"][0] == "numeric" and "missing" in decisions["tenure_years"][1]


def test_the_same_seed_gives_the_same_result() -> None:
    first = evaluate_table(_table(300), "outcome", folds=2, seed=3, trainer_options=FAST)
    second = evaluate_table(_table(300), "outcome", folds=2, seed=3, trainer_options=FAST)
    assert first.fold_auc == second.fold_auc


@pytest.mark.parametrize(("frame", "target", "message"), [
    (pl.DataFrame({"x": [], "y": []}), "y", "the table is empty"),
    (pl.DataFrame({"x": [1, 2, 3], "y": [0, 1, 2]}), "y", "exactly two values, found 3"),
    (pl.DataFrame({"x": [1, 2], "y": [0, 1]}), "nope", "no column named 'nope'"),
    (pl.DataFrame({"x": [1, 2, 3], "y": [0, None, 1]}), "y", "1 missing values"),
    (pl.DataFrame({"x": [1, 2], "y": ["p", "q"]}), "y", "cannot tell which"),
])
def test_bad_tables_are_clear_errors(frame: pl.DataFrame, target: str, message: str) -> None:
    with pytest.raises(EvaluationError, match=message):
        evaluate_table(frame, target, folds=2)


def test_a_table_of_only_unusable_columns_is_refused() -> None:
    with pytest.raises(EvaluationError, match="no usable feature columns"):
        prepare_columns(pl.DataFrame({"c": [1] * 30}))


def test_cli_prints_one_json_document_with_the_contract_keys(tmp_path: Path) -> None:
    path = tmp_path / "bank.csv"
    _table(300).write_csv(path)
    result = CliRunner().invoke(cli, ["model", "evaluate", "--table", str(path), "--target",
                                      "outcome", "--folds", "2", "--json"],
                                env={"ALTCREDIT_MODEL_SEARCH_BUDGET": "1",
                                     "ALTCREDIT_MODEL_MAX_ROUNDS": "60",
                                     "ALTCREDIT_MODEL_THREADS": "1"})
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert {"auc", "auc_std", "ks", "brier", "folds", "n", "bad_rate"} <= set(document)
    assert document["n"] == 300 and document["folds"] == 2


def test_cli_refuses_a_missing_file_with_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["model", "evaluate", "--table", str(tmp_path / "x.csv"),
                                      "--target", "y"])
    assert result.exit_code == 1
    assert "no such file" in result.output
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and "logs" not in p.parts]
