"""The model registry: immutable versions, champion and challenger, gated promotion.

``register`` stores a trained model as a new version (files first, then the
row; the new version becomes the challenger, and the champion too when there
is none yet). ``promote`` makes a version the champion unless it ranks worse
than the champion by more than ``model_min_auc_drop`` of out-of-time AUC, or
its scores have moved by a PSI above ``model_max_psi``; ``force`` overrides
the gates and is recorded. ``load_version`` never returns a model whose files
fail their checksum.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import polars as pl
import xgboost as xgb
from pydantic import BaseModel
from sqlmodel import Session, select

from config.database import get_engine, session_scope
from config.settings import Settings
from scoring import metrics
from scoring.artefacts import (
    RegistryError,
    VersionMeta,
    read_holdout,
    read_version,
    remove_version_files,
    write_version,
)
from scoring.frames import Frame, model_matrix
from scoring.tables import CHALLENGER, CHAMPION, ModelPromotion, ModelRole, ModelVersion

if TYPE_CHECKING:
    from scoring.points import ScoreModel

log = logging.getLogger(__name__)

__all__ = ["LoadedModel", "PromotionResult", "RegistryError", "VersionInfo", "get_version",
           "list_versions", "load_champion", "load_version", "promote", "register"]


class VersionInfo(BaseModel):
    """A version as listed: its row and its current role, if any."""

    id: str
    created_at: datetime
    data_watermark: datetime | None
    definitions_hash: str
    engine: str
    params: dict
    calibration: dict[str, float]
    oot_auc: float | None
    checksum: str
    path: str
    role: str | None


class PromotionResult(BaseModel):
    version: str
    previous: str | None
    forced: bool
    auc_drop: float | None
    psi: float | None
    note: str


@dataclass(frozen=True)
class LoadedModel:
    """A verified version: its metadata and booster, ready to predict."""

    meta: VersionMeta
    booster: xgb.Booster
    folder: Path

    @property
    def version(self) -> str:
        return self.meta.version

    def predict_margin(self, features: Frame) -> npt.NDArray[np.float64]:
        matrix = model_matrix(features, self.meta.feature_names, self.meta.categories)
        dmatrix = xgb.DMatrix(matrix, enable_categorical=True, missing=np.nan)
        return self.booster.predict(dmatrix, output_margin=True).astype(float)

    @cached_property
    def holdout(self) -> pl.DataFrame:
        """The out-of-time predictions stored with the version."""
        return read_holdout(self.folder)

    def score_model(self) -> ScoreModel:
        """The model as scoring.points.ScoreModel (numeric features) for scoring and explaining."""
        from scoring.points import ScoreModel

        return ScoreModel(booster=self.booster, feature_names=tuple(self.meta.feature_names),
                          a=self.meta.calibration.a, b=self.meta.calibration.b,
                          version=self.meta.version)


# -- writing ------------------------------------------------------------------------


def register(settings: Settings, meta: VersionMeta, booster: xgb.Booster,
             holdout: pl.DataFrame) -> VersionInfo:
    """Store a new version; it becomes the challenger (and the champion if there is none)."""
    folder, checksum = write_version(settings, meta, booster, holdout)
    now = datetime.now(UTC)
    row = ModelVersion(
        id=meta.version, created_at=meta.created_at, data_watermark=meta.data_watermark,
        definitions_hash=meta.definitions_hash, engine=meta.engine,
        params=json.dumps({**meta.params, "n_rounds": meta.n_rounds}, sort_keys=True),
        calibration_a=meta.calibration.a, calibration_b=meta.calibration.b,
        oot_auc=meta.metrics.get("auc"), checksum=checksum, path=str(folder),
    )
    try:
        with session_scope(get_engine(settings)) as session:
            session.add(row)
            session.flush()
            has_champion = session.get(ModelRole, CHAMPION) is not None
            _set_role(session, CHALLENGER, meta.version, now)
            if not has_champion:
                _set_role(session, CHAMPION, meta.version, now)
                session.add(ModelPromotion(version_id=meta.version, previous_id=None,
                                           promoted_at=now, note="first champion"))
    except BaseException:
        remove_version_files(settings, meta.version)
        raise
    log.info("registered model %s (checksum %s)", meta.version, checksum[:12])
    return get_version(settings, meta.version)


def _set_role(session: Session, role: str, version: str, now: datetime) -> None:
    current = session.get(ModelRole, role)
    if current is None:
        session.add(ModelRole(role=role, version_id=version, updated_at=now))
    else:
        current.version_id = version
        current.updated_at = now
        session.add(current)


def promote(settings: Settings, version: str, *, force: bool = False,
            note: str = "") -> PromotionResult:
    """Make ``version`` the champion, or raise RegistryError saying which gate refused it."""
    target = load_version(settings, version)
    champion = _role(settings, CHAMPION)
    if champion == version:
        raise RegistryError(f"{version} is already the champion")
    auc_drop = psi = None
    if champion is not None:
        auc_drop, psi = compare(target, load_version(settings, champion))
        refusals = _gate(settings, auc_drop, psi)
        if refusals and not force:
            raise RegistryError(f"promotion of {version} refused: {'; '.join(refusals)} "
                                "(use --force to override; it will be recorded)")
        if refusals:
            note = (note + " " if note else "") + "forced past: " + "; ".join(refusals)
    now = datetime.now(UTC)
    with session_scope(get_engine(settings)) as session:
        _set_role(session, CHAMPION, version, now)
        challenger = session.get(ModelRole, CHALLENGER)
        if challenger is not None and challenger.version_id == version:
            session.delete(challenger)
        session.add(ModelPromotion(version_id=version, previous_id=champion, promoted_at=now,
                                   forced=force, auc_drop=auc_drop, psi=psi, note=note))
    log.info("promoted %s over %s (forced=%s)", version, champion, force)
    return PromotionResult(version=version, previous=champion, forced=force, auc_drop=auc_drop,
                           psi=psi, note=note)


def compare(challenger: LoadedModel, champion: LoadedModel) -> tuple[float, float]:
    """(champion AUC - challenger AUC, score PSI of challenger against champion).

    When the challenger was trained with this champion in place, both were
    scored on the challenger's out-of-time users (``champion_score`` in its
    holdout): like for like. Otherwise each version's own out-of-time figures.
    """
    holdout = challenger.holdout
    if challenger.meta.compared_with == champion.version and "champion_score" in holdout.columns:
        labels = holdout["bad"].to_numpy()
        champion_auc = metrics.auc(labels, -holdout["champion_score"].to_numpy())
        challenger_auc = metrics.auc(labels, -holdout["score"].to_numpy())
        psi = metrics.psi(holdout["champion_score"].to_numpy(), holdout["score"].to_numpy())
        return champion_auc - challenger_auc, psi
    champion_auc = champion.meta.metrics.get("auc", float("nan"))
    challenger_auc = challenger.meta.metrics.get("auc", float("nan"))
    psi = metrics.psi(champion.holdout["score"].to_numpy(), holdout["score"].to_numpy())
    return champion_auc - challenger_auc, psi


def _gate(settings: Settings, auc_drop: float, psi: float) -> list[str]:
    refusals = []
    if not auc_drop <= settings.model_min_auc_drop:
        refusals.append(f"out-of-time AUC {auc_drop:.4f} below the champion's "
                        f"(allowed {settings.model_min_auc_drop})")
    if not psi <= settings.model_max_psi:
        refusals.append(f"score PSI {psi:.3f} against the champion above {settings.model_max_psi}")
    return refusals


# -- reading ------------------------------------------------------------------------


def list_versions(settings: Settings) -> list[VersionInfo]:
    """Every version, newest first, with its role."""
    with session_scope(get_engine(settings)) as session:
        rows = session.exec(select(ModelVersion).order_by(ModelVersion.created_at.desc())).all()
        roles = _roles(session)
    return [_info(row, roles) for row in rows]


def get_version(settings: Settings, version: str) -> VersionInfo:
    with session_scope(get_engine(settings)) as session:
        row = session.get(ModelVersion, version)
        if row is None:
            raise RegistryError(f"no model version {version!r}")
        return _info(row, _roles(session))


def load_version(settings: Settings, version: str) -> LoadedModel:
    """The version's model, after verifying its files; a damaged model fails loudly."""
    info = get_version(settings, version)
    folder = Path(info.path)
    meta, booster = read_version(folder, info.checksum)
    return LoadedModel(meta=meta, booster=booster, folder=folder)


def load_champion(settings: Settings) -> LoadedModel | None:
    champion = _role(settings, CHAMPION)
    return None if champion is None else load_version(settings, champion)


def promotions(settings: Settings) -> list[dict]:
    """The promotion log, oldest first."""
    with session_scope(get_engine(settings)) as session:
        rows = session.exec(select(ModelPromotion).order_by(ModelPromotion.id)).all()
        return [row.model_dump(mode="json") for row in rows]


def _role(settings: Settings, role: str) -> str | None:
    with session_scope(get_engine(settings)) as session:
        row = session.get(ModelRole, role)
        return None if row is None else row.version_id


def _roles(session: Session) -> dict[str, str]:
    rows = session.exec(select(ModelRole)).all()
    return {row.version_id: row.role for row in sorted(rows, key=lambda r: r.role == CHAMPION)}


def _info(row: ModelVersion, roles: dict[str, str]) -> VersionInfo:
    return VersionInfo(
        id=row.id, created_at=row.created_at, data_watermark=row.data_watermark,
        definitions_hash=row.definitions_hash, engine=row.engine, params=json.loads(row.params),
        calibration={"a": row.calibration_a, "b": row.calibration_b}, oot_auc=row.oot_auc,
        checksum=row.checksum, path=row.path, role=roles.get(row.id),
    )
