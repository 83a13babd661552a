"""A model version's report: quality, calibration, bands, importance, stability, fairness.

Everything is computed from what the version stored when it was trained (its
out-of-time predictions and SHAP importance), so a report can be rebuilt at
any time and says the same thing. ``write_report`` puts ``report.json`` and a
self-contained ``report.html`` (inline SVG, no external assets) beside the
version's files, each written atomically.
"""

from __future__ import annotations

import itertools
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from config.scorecard import Scorecard, load_scorecard
from config.settings import Settings
from scoring import metrics, registry
from scoring.report_html import render_html
from scoring.scale import band_index

ROC_POINTS = 200


def build_report(settings: Settings, version: str) -> dict[str, Any]:
    """The report of ``version`` as a JSON-ready dict."""
    model = registry.load_version(settings, version)
    info = registry.get_version(settings, version)
    card = load_scorecard()
    holdout = model.holdout
    y = holdout["bad"].to_numpy().astype(int)
    p = holdout["probability"].to_numpy() if "probability" in holdout.columns else \
        1.0 / (1.0 + np.exp(-(model.meta.calibration.a * holdout["margin"].to_numpy()
                              + model.meta.calibration.b)))
    score = holdout["score"].to_numpy()
    bands = band_table(y, score, card)
    return {
        "version": version,
        "role": info.role,
        "created_at": model.meta.created_at.isoformat(),
        "generated_at": datetime.now(UTC).isoformat(),
        "data_watermark": None if model.meta.data_watermark is None
        else model.meta.data_watermark.isoformat(),
        "definitions_hash": model.meta.definitions_hash,
        "engine": model.meta.engine,
        "train_as_of": [day.isoformat() for day in model.meta.train_as_of],
        "holdout_as_of": None if model.meta.holdout_as_of is None
        else model.meta.holdout_as_of.isoformat(),
        "params": {**model.meta.params, "n_rounds": model.meta.n_rounds},
        "calibration": model.meta.calibration.model_dump(),
        "metrics": _metrics(y, p),
        "roc": _roc(y, p),
        "calibration_by_decile": metrics.calibration_table(y, p, bins=10),
        "bands": bands,
        "bad_rate_falls_by_band": bad_rate_falls(bands),
        "importance": _importance(model.meta.importance),
        "psi_vs_champion": _psi_vs_champion(settings, model),
        "fairness": fairness_table(holdout, y, score, settings.model_approval_cutoff),
        "approval_cutoff": settings.model_approval_cutoff,
    }


def _metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return metrics.summary(y, p) if 0 < y.sum() < y.size else {
        "n": float(y.size), "bad_rate": float(y.mean())}


def _roc(y: np.ndarray, p: np.ndarray) -> dict[str, list[float]]:
    if not 0 < y.sum() < y.size:
        return {"fpr": [], "tpr": []}
    fpr, tpr = metrics.roc_points(y, p)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(ROC_POINTS, len(fpr))).astype(int))
    return {"fpr": [fpr[i] for i in keep], "tpr": [tpr[i] for i in keep]}


def band_table(y: np.ndarray, score: np.ndarray, card: Scorecard) -> list[dict[str, Any]]:
    """Users, share and bad rate per band, worst band first."""
    index = band_index(score, card.bands)
    rows = []
    for position, band in enumerate(card.bands):
        members = index == position
        count = int(members.sum())
        rows.append({
            "code": band.code, "en": band.en, "zh": band.zh, "min": band.min, "max": band.max,
            "n": count, "share": count / max(1, y.size),
            "bad_rate": float(y[members].mean()) if count else None,
        })
    return rows


def bad_rate_falls(bands: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether the bad rate falls from each (non-empty) band to the next better one."""
    filled = [band for band in bands if band["bad_rate"] is not None]
    breaks = [f"{low['code']} -> {high['code']}" for low, high in itertools.pairwise(filled)
              if high["bad_rate"] >= low["bad_rate"]]
    if breaks:
        return {"holds": False,
                "message": "the bad rate does NOT fall band by band: " + ", ".join(breaks)}
    return {"holds": True, "message": "the bad rate falls band by band"}


def _importance(importance: dict[str, float]) -> list[dict[str, Any]]:
    ranked = sorted(importance.items(), key=lambda item: item[1], reverse=True)
    return [{"feature": name, "mean_abs_shap": value} for name, value in ranked]


def _psi_vs_champion(settings: Settings, model: registry.LoadedModel) -> dict[str, Any] | None:
    champion = registry.load_champion(settings)
    if champion is None or champion.version == model.version:
        return None
    auc_drop, psi = registry.compare(model, champion)
    return {"champion": champion.version, "psi": psi, "auc_drop": auc_drop}


def fairness_table(holdout: pl.DataFrame, y: np.ndarray, score: np.ndarray,
                   cutoff: int) -> dict[str, list[dict[str, Any]]]:
    """AUC, mean score and approval rate by age band and by gender, where the data has them."""
    tables: dict[str, list[dict[str, Any]]] = {}
    for attribute in ("age_band", "gender"):
        if attribute not in holdout.columns or holdout[attribute].null_count() == holdout.height:
            continue
        groups = holdout[attribute].fill_null("unknown").to_numpy()
        rows = []
        for group in sorted(set(groups.tolist())):
            members = groups == group
            labels = y[members]
            rows.append({
                "group": str(group), "n": int(members.sum()),
                "bad_rate": float(labels.mean()),
                "auc": metrics.auc(labels, -score[members]) if 0 < labels.sum() < labels.size
                else None,
                "mean_score": float(score[members].mean()),
                "approval_rate": float((score[members] >= cutoff).mean()),
            })
        tables[attribute] = rows
    return tables


def write_report(settings: Settings, version: str) -> tuple[Path, Path]:
    """Write report.json and report.html beside the version's files; their paths."""
    report = build_report(settings, version)
    folder = Path(registry.get_version(settings, version).path)
    json_path, html_path = folder / "report.json", folder / "report.html"
    _atomic_write(json_path, json.dumps(report, ensure_ascii=False, indent=2, default=str))
    _atomic_write(html_path, render_html(report))
    return json_path, html_path


def _atomic_write(path: Path, text: str) -> None:
    scratch = path.with_name(f".{path.name}.tmp")
    scratch.write_text(text, encoding="utf-8")
    os.replace(scratch, path)
