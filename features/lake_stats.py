"""What is in the lake, for operators (`altcredit events stats`).

Counts are over stored rows (originals, corrections and voids alike): what was
received, not what a feature snapshot resolves to. A late arrival is a row
whose ``known_at`` is more than ``lake_late_days`` after its ``event_time``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import polars as pl

from config.settings import Settings
from features.lake import lake_dir, read_manifest, scan_stored


def lake_stats(settings: Settings) -> dict[str, Any]:
    """Totals, counts by kind and source, time ranges, late arrivals and corrections."""
    rows = scan_stored(settings)
    late = pl.col("known_at") - pl.col("event_time") > timedelta(days=settings.lake_late_days)
    totals = rows.select(
        pl.len().alias("events"),
        pl.col("event_time").min().alias("event_time_min"),
        pl.col("event_time").max().alias("event_time_max"),
        pl.col("ingested_at").min().alias("ingested_at_min"),
        pl.col("ingested_at").max().alias("ingested_at_max"),
        late.sum().alias("late_arrivals"),
        pl.col("corrects").is_not_null().sum().alias("corrections"),
        pl.col("voided").fill_null(False).sum().alias("voids"),
    ).collect().row(0, named=True)
    manifest = read_manifest(lake_dir(settings))
    return {
        "events": int(totals["events"]),
        "by_kind": _counts(rows, "kind"),
        "by_source": _counts(rows, "source"),
        "event_time": {"min": _iso(totals["event_time_min"]), "max": _iso(totals["event_time_max"])},
        "ingested_at": {"min": _iso(totals["ingested_at_min"]),
                        "max": _iso(totals["ingested_at_max"])},
        "late_arrivals": int(totals["late_arrivals"] or 0),
        "late_after_days": settings.lake_late_days,
        "corrections": int(totals["corrections"] or 0),
        "voids": int(totals["voids"] or 0),
        "files": len(manifest.segments),
        "watermark": manifest.watermark,
    }


def _counts(rows: pl.LazyFrame, column: str) -> dict[str, int]:
    counted = rows.group_by(column).agg(pl.len().alias("n")).sort(column).collect()
    return {str(key): int(n) for key, n in counted.iter_rows()}


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
