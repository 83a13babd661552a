"""Protected attributes for fairness reports, and only for them.

birth_year and gender come from profile events in the lake. They are read
here, beside the model, never by the feature engine: a model cannot use what
it is never given. Age is taken at the as-of date and put into the age bands
of config/scorecard.toml.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import polars as pl

from config.scorecard import load_scorecard
from config.settings import Settings
from features import lake


def protected_attributes(settings: Settings, as_of: date) -> pl.DataFrame:
    """(user_id, gender, age_band) per user: the latest value each profile event gave."""
    mark = lake.watermark(settings)
    empty = pl.DataFrame(schema={"user_id": pl.String, "gender": pl.String,
                                 "age_band": pl.String})
    if mark is None:
        return empty
    profiles = (
        lake.scan_events(settings, watermark=mark)
        .filter(pl.col("kind") == "profile")
        .select("user_id", "event_time", "birth_year", "gender")
        .sort("event_time")
        .group_by("user_id")
        .agg(pl.col("birth_year").drop_nulls().last(), pl.col("gender").drop_nulls().last())
        .collect()
    )
    if profiles.height == 0:
        return empty
    bands = load_scorecard().fairness.age_bands
    ages = pl.lit(as_of.year) - pl.col("birth_year")
    return profiles.select("user_id", "gender", age_band(ages, bands).alias("age_band"))


def age_band(age: pl.Expr, bands: Sequence[tuple[int, int]]) -> pl.Expr:
    """The label "low-high" of the band [low, high) holding ``age``; null outside every band."""
    expr: pl.Expr = pl.lit(None, dtype=pl.String)
    for low, high in reversed(bands):
        expr = pl.when((age >= low) & (age < high)).then(pl.lit(f"{low}-{high - 1}")).otherwise(expr)
    return expr
