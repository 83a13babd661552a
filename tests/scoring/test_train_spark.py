from __future__ import annotations

import numpy as np
import pytest

from scoring import metrics
from scoring.train import ScoreTrainer
from tests.scoring.synthetic import monotone, population

pytestmark = pytest.mark.spark

FAST = {"search_budget": 1, "max_rounds": 80, "early_stopping_rounds": 10}


@pytest.fixture(scope="module")
def spark():
    from features.engine_spark import spark_session
    from scoring.train_spark import use_this_python

    use_this_python()
    session = spark_session("local[2]", shuffle_partitions=4)
    session.sparkContext.setLogLevel("ERROR")
    return session


def test_spark_training_matches_one_machine_in_order_and_quality(spark) -> None:
    from scoring.train_spark import SparkScoreTrainer

    features, bad, _ = population(1500, seed=12)
    test, test_bad, _ = population(1500, seed=13)
    local = ScoreTrainer(monotone=monotone(), **FAST).fit(features, bad)
    distributed = SparkScoreTrainer(spark=spark, num_workers=2, monotone=monotone(),
                                    **FAST).fit(features, bad)
    assert distributed.feature_names_ == local.feature_names_
    assert distributed.booster_.feature_names == local.feature_names_
    assert distributed.params_ == local.params_
    local_auc = metrics.auc(test_bad, local.predict_proba(test))
    spark_auc = metrics.auc(test_bad, distributed.predict_proba(test))
    assert abs(spark_auc - local_auc) < 0.02
    contributions = distributed.contributions(test.head(20))
    np.testing.assert_allclose(contributions.sum(axis=1),
                               distributed.predict_margin(test.head(20)), atol=1e-4)


def test_spark_engine_refuses_text_columns(spark) -> None:
    from scoring.train_spark import SparkScoreTrainer

    features, bad, _ = population(300, seed=1)
    with pytest.raises(ValueError, match="numeric features only: city"):
        SparkScoreTrainer(spark=spark, **FAST).fit(features.assign(city="x"), bad)
