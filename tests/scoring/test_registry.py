from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from config.settings import Settings
from scoring import registry
from scoring.artefacts import MODEL_FILE, RegistryError
from scoring.calibrate import PlattCalibrator
from scoring.train import ScoreTrainer
from tests.scoring.synthetic import population
from tests.scoring.versions import fit_small, register_version


@pytest.fixture(scope="module")
def trained() -> tuple[ScoreTrainer, PlattCalibrator]:
    return fit_small()


_register = register_version


def test_first_version_becomes_champion_and_round_trips(db: Engine, db_settings: Settings,
                                                        trained) -> None:
    info = _register(db_settings, trained)
    assert info.role == "champion"
    loaded = registry.load_version(db_settings, info.id)
    features, _, _ = population(50, seed=9)
    np.testing.assert_allclose(loaded.predict_margin(features), trained[0].predict_margin(features),
                               rtol=1e-6)
    assert loaded.meta.feature_names == trained[0].feature_names_
    assert registry.load_champion(db_settings).version == info.id


def test_later_versions_are_challengers_listed_newest_first(db: Engine, db_settings: Settings,
                                                            trained) -> None:
    first = _register(db_settings, trained)
    second = _register(db_settings, trained)
    listed = registry.list_versions(db_settings)
    assert [v.id for v in listed] == [second.id, first.id]
    assert [v.role for v in listed] == ["challenger", "champion"]


def test_a_damaged_model_file_fails_loudly(db: Engine, db_settings: Settings, trained) -> None:
    info = _register(db_settings, trained)
    path = registry.get_version(db_settings, info.id).path
    with open(f"{path}/{MODEL_FILE}", "a", encoding="utf-8") as handle:
        handle.write(" ")
    with pytest.raises(RegistryError, match=r"damaged: checksum .* refusing to load"):
        registry.load_version(db_settings, info.id)


def test_promotion_is_refused_when_auc_drops_and_nothing_changes(db: Engine,
                                                                 db_settings: Settings,
                                                                 trained) -> None:
    champion = _register(db_settings, trained, auc=0.80)
    worse = _register(db_settings, trained, auc=0.79)
    before = _tables(db)
    with pytest.raises(RegistryError, match=r"refused: out-of-time AUC 0\.0100 below"):
        registry.promote(db_settings, worse.id)
    assert _tables(db) == before
    assert registry.load_champion(db_settings).version == champion.id


def test_promotion_is_refused_when_scores_shift_too_far(db: Engine, db_settings: Settings,
                                                        trained) -> None:
    _register(db_settings, trained)
    shifted = _register(db_settings, trained, shift=1.5)
    with pytest.raises(RegistryError, match=r"score PSI .* above 0\.25"):
        registry.promote(db_settings, shifted.id)


def test_forced_promotion_goes_through_and_is_recorded(db: Engine, db_settings: Settings,
                                                       trained) -> None:
    champion = _register(db_settings, trained, auc=0.80)
    worse = _register(db_settings, trained, auc=0.70)
    result = registry.promote(db_settings, worse.id, force=True)
    assert result.forced and result.previous == champion.id
    assert "forced past: out-of-time AUC" in result.note
    assert registry.get_version(db_settings, worse.id).role == "champion"
    assert registry.promotions(db_settings)[-1]["forced"] is True


def test_an_equal_challenger_is_promoted(db: Engine, db_settings: Settings, trained) -> None:
    _register(db_settings, trained, auc=0.80)
    peer = _register(db_settings, trained, auc=0.799, seed=6)
    assert registry.promote(db_settings, peer.id).psi < 0.25


def test_unknown_version_is_a_clear_error(db: Engine, db_settings: Settings) -> None:
    with pytest.raises(RegistryError, match="no model version 'v-none'"):
        registry.load_version(db_settings, "v-none")


def _tables(engine: Engine) -> dict[str, list]:
    with engine.connect() as connection:
        return {name: connection.execute(sa.text(f"select * from {name} order by 1")).all()
                for name in ("model_versions", "model_roles", "model_promotions")}
