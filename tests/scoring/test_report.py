from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import Engine

from config.scorecard import load_scorecard
from config.settings import Settings
from scoring.calibrate import PlattCalibrator
from scoring.report import bad_rate_falls, build_report, write_report
from scoring.train import ScoreTrainer
from tests.scoring.versions import fit_small, register_version


@pytest.fixture(scope="module")
def trained() -> tuple[ScoreTrainer, PlattCalibrator]:
    return fit_small()


def test_report_holds_every_section(db: Engine, db_settings: Settings, trained) -> None:
    version = register_version(db_settings, trained).id
    report = build_report(db_settings, version)
    assert {"auc", "ks", "gini", "brier", "log_loss"} <= set(report["metrics"])
    assert report["metrics"]["gini"] == pytest.approx(2 * report["metrics"]["auc"] - 1)
    assert len(report["calibration_by_decile"]) == 10
    assert [band["code"] for band in report["bands"]] == [b.code for b in load_scorecard().bands]
    assert sum(band["n"] for band in report["bands"]) == 800
    assert report["importance"][0]["feature"] == trained[0].feature_names_[-1]
    assert set(report["fairness"]) == {"age_band", "gender"}
    row = report["fairness"]["gender"][0]
    assert {"group", "n", "auc", "mean_score", "approval_rate"} <= set(row)
    assert report["psi_vs_champion"] is None  # it is the champion


def test_report_compares_a_challenger_with_the_champion(db: Engine, db_settings: Settings,
                                                        trained) -> None:
    register_version(db_settings, trained)
    challenger = register_version(db_settings, trained, seed=6).id
    comparison = build_report(db_settings, challenger)["psi_vs_champion"]
    assert comparison["psi"] < 0.25 and "auc_drop" in comparison


def test_html_report_is_self_contained_with_inline_plots(db: Engine, db_settings: Settings,
                                                         trained) -> None:
    version = register_version(db_settings, trained).id
    json_path, html_path = write_report(db_settings, version)
    html = html_path.read_text(encoding="utf-8")
    assert html.count("<svg") >= 5
    assert not re.search(r"""(src|href)=["']https?://""", html)
    assert "较差" in html and version in html
    assert json.loads(json_path.read_text(encoding="utf-8"))["version"] == version


def test_a_band_whose_bad_rate_does_not_fall_is_called_out() -> None:
    bands = [{"code": "poor", "bad_rate": 0.2}, {"code": "fair", "bad_rate": 0.25},
             {"code": "good", "bad_rate": None}, {"code": "excellent", "bad_rate": 0.01}]
    verdict = bad_rate_falls(bands)
    assert verdict == {"holds": False,
                       "message": "the bad rate does NOT fall band by band: poor -> fair"}
    assert bad_rate_falls([{"code": "a", "bad_rate": 0.2}, {"code": "b", "bad_rate": 0.1}])["holds"]


def test_age_bands_follow_the_scorecard() -> None:
    import polars as pl

    from scoring.fairness import age_band

    bands = load_scorecard().fairness.age_bands
    ages = pl.DataFrame({"age": [17, 18, 24, 25, 64, 65, 130]})
    labels = ages.select(age_band(pl.col("age"), bands)).to_series().to_list()
    assert labels == [None, "18-24", "18-24", "25-34", "50-64", "65-119", None]
