"""A model version's files: written once, atomically, and pinned by a checksum.

``models/<version>/`` holds the XGBoost model in its own JSON format
(``model.json``), everything needed to use it (``meta.json``: feature order,
categories, calibration, scale, parameters, data watermark, definitions hash,
out-of-time metrics) and the out-of-time predictions (``holdout.parquet``)
that reports and promotion gates read. The checksum is a sha256 over those
three files; a version whose files no longer match it is never loaded.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from datetime import date, datetime
from pathlib import Path
from typing import Any

import polars as pl
import xgboost as xgb
from pydantic import BaseModel, ConfigDict

from config.scorecard import ScaleDefinition
from config.settings import Settings

MODEL_FILE = "model.json"
META_FILE = "meta.json"
HOLDOUT_FILE = "holdout.parquet"
ARTEFACTS = (MODEL_FILE, META_FILE, HOLDOUT_FILE)


class RegistryError(ValueError):
    """A registry request that cannot be met; ``str()`` is one line for the user."""


class Calibration(BaseModel):
    model_config = ConfigDict(frozen=True)

    a: float
    b: float


class VersionMeta(BaseModel):
    """Everything about a version except the trees themselves."""

    model_config = ConfigDict(frozen=True)

    version: str
    created_at: datetime
    data_watermark: datetime | None
    definitions_hash: str
    engine: str
    feature_names: list[str]
    categories: dict[str, list[str]]
    monotone: dict[str, int]
    params: dict[str, Any]
    n_rounds: int
    calibration: Calibration
    scale: ScaleDefinition
    train_as_of: list[date]
    holdout_as_of: date | None
    metrics: dict[str, float]
    dimensions: dict[str, str] = {}
    importance: dict[str, float] = {}
    compared_with: str | None = None


def new_version_id(created_at: datetime) -> str:
    """A sortable, unique version id: v<UTC timestamp>-<6 random hex digits>."""
    return f"v{created_at:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


def version_dir(settings: Settings, version: str) -> Path:
    if not version or "/" in version or version.startswith("."):
        raise RegistryError(f"bad version id: {version!r}")
    return settings.path("models", version)


def write_version(
    settings: Settings, meta: VersionMeta, booster: xgb.Booster, holdout: pl.DataFrame
) -> tuple[Path, str]:
    """Write the version's files beside, then move them into place; (folder, checksum)."""
    target = version_dir(settings, meta.version)
    if target.exists():
        raise RegistryError(f"version {meta.version} already exists")
    scratch = target.with_name(f".{meta.version}.{uuid.uuid4().hex[:8]}.tmp")
    scratch.mkdir(parents=True)
    try:
        booster.save_model(str(scratch / MODEL_FILE))
        (scratch / META_FILE).write_text(meta.model_dump_json(indent=2), encoding="utf-8")
        holdout.write_parquet(scratch / HOLDOUT_FILE)
        checksum = folder_checksum(scratch)
        os.replace(scratch, target)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return target, checksum


def folder_checksum(folder: Path) -> str:
    """sha256 over each artefact's name and bytes, in a fixed order."""
    digest = hashlib.sha256()
    for name in ARTEFACTS:
        path = folder / name
        if not path.is_file():
            raise RegistryError(f"{folder.name}: artefact {name} is missing")
        digest.update(name.encode("utf-8") + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def read_version(folder: Path, expected_checksum: str) -> tuple[VersionMeta, xgb.Booster]:
    """The version's metadata and booster, after checking its files against the checksum."""
    actual = folder_checksum(folder)
    if actual != expected_checksum:
        raise RegistryError(
            f"model {folder.name} is damaged: checksum {actual[:12]} does not match the "
            f"registered {expected_checksum[:12]}; refusing to load it"
        )
    meta = VersionMeta.model_validate_json((folder / META_FILE).read_text(encoding="utf-8"))
    booster = xgb.Booster()
    booster.load_model(str(folder / MODEL_FILE))
    return meta, booster


def read_holdout(folder: Path) -> pl.DataFrame:
    return pl.read_parquet(folder / HOLDOUT_FILE)


def remove_version_files(settings: Settings, version: str) -> None:
    """Undo a write whose registration failed (nothing else may call this)."""
    shutil.rmtree(version_dir(settings, version), ignore_errors=True)
