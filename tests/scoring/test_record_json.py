from __future__ import annotations

import json

import numpy as np

from scoring.explain import POINTS_DECIMALS, Explainer
from scoring.reasons import reason_records
from scoring.record_json import ReasonJson, points_json
from tests.scoring.explain_models import random_features, train_model


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def test_reasons_as_json_are_the_dumped_reason_records() -> None:
    explainer = Explainer(train_model(seed=8, trees=40, depth=3))
    batch = explainer.explain(random_features(500, seed=2))
    expected = [_dumps(reason_records(batch.reasons[row], batch.group_points[row], explainer.layout))
                for row in range(len(batch))]
    assert ReasonJson(explainer.layout).rows(batch) == expected


def test_points_as_json_keep_every_feature_in_order_to_eight_decimals() -> None:
    explainer = Explainer(train_model(seed=8, trees=40, depth=3))
    batch = explainer.explain(random_features(50, seed=3))
    names = explainer.model.feature_names
    for text, row in zip(points_json(batch.points, names), batch.points, strict=True):
        loaded = json.loads(text)
        assert list(loaded) == list(names)
        assert np.allclose(list(loaded.values()), np.round(row, POINTS_DECIMALS), rtol=0, atol=0)
