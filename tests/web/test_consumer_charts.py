"""The consumer pages' chart geometry and colours: pure arithmetic, checked on its own."""

from __future__ import annotations

import math
import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.scorecard import load_scorecard
from web import charts

CSS = Path(__file__).parents[2] / "web" / "static" / "altcredit.css"


def _ends(path: str) -> tuple[tuple[float, float], tuple[float, float]]:
    numbers = [float(value) for value in re.findall(r"-?\d+(?:\.\d+)?", path)]
    return (numbers[0], numbers[1]), (numbers[-2], numbers[-1])


def test_the_gauge_has_one_arc_per_band_tiling_the_half_circle() -> None:
    scorecard = load_scorecard()
    gauge = charts.gauge(scorecard, 650)
    assert [arc.band.code for arc in gauge.arcs] == [band.code for band in scorecard.bands]
    first_start, _ = _ends(gauge.arcs[0].path)
    _, last_end = _ends(gauge.arcs[-1].path)
    assert first_start == (charts.GAUGE_CX - charts.GAUGE_R, charts.GAUGE_CY)
    assert last_end == (charts.GAUGE_CX + charts.GAUGE_R, charts.GAUGE_CY)
    for before, after in zip(gauge.arcs, gauge.arcs[1:], strict=False):
        assert _ends(before.path)[1] == _ends(after.path)[0]  # no gap, no overlap
    assert (gauge.needle_x, gauge.needle_y) == (charts.GAUGE_CX, charts.GAUGE_CY - charts.GAUGE_R)


@given(st.integers(min_value=350, max_value=950))
def test_the_needle_lies_on_the_arc_and_moves_right_as_the_score_rises(score: int) -> None:
    gauge = charts.gauge(load_scorecard(), score)
    assert gauge.needle_x is not None and gauge.needle_y is not None
    radius = math.hypot(gauge.needle_x - charts.GAUGE_CX, gauge.needle_y - charts.GAUGE_CY)
    assert radius == pytest.approx(charts.GAUGE_R, abs=0.02)
    higher = charts.gauge(load_scorecard(), min(950, score + 10))
    assert higher.needle_x is not None and higher.needle_x >= gauge.needle_x


def test_bars_go_right_for_points_earned_and_left_for_points_lost() -> None:
    bars = charts.diverging_bars({"a": 30.0, "b": -15.0, "c": 0.0})
    earned, lost, zero = bars.bars
    assert earned.positive and earned.x == bars.zero_x and earned.width == charts.BAR_HALF
    assert not lost.positive and lost.x + lost.width == bars.zero_x and lost.width == charts.BAR_HALF / 2
    assert zero.width == 1.0  # still visible
    assert earned.text_x > bars.zero_x > lost.text_x and lost.text_x > charts.BAR_LABEL


def test_the_line_runs_left_to_right_in_time_and_up_with_the_score() -> None:
    start = date(2025, 1, 1)
    history = [(start + timedelta(days=30 * i), score) for i, score in enumerate([600, 640, 620, 700])]
    line = charts.line_chart(history, load_scorecard())
    xs = [point.x for point in line.points]
    assert xs == sorted(xs) and xs[0] == line.left and xs[-1] == line.right
    by_score = sorted(line.points, key=lambda point: point.score)
    assert [point.y for point in by_score] == sorted((point.y for point in by_score), reverse=True)
    assert all(line.bottom >= point.y >= charts.LINE_TOP for point in line.points)
    assert line.ticks[0].value <= 600 and line.ticks[-1].value >= 700
    assert line.path.startswith("M ") and line.path.count("L ") == 3


def test_one_published_score_is_a_single_centred_point() -> None:
    line = charts.line_chart([(date(2025, 1, 1), 600)], load_scorecard())
    assert len(line.points) == 1 and line.points[0].x == (line.left + line.right) / 2


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(first: str, second: str) -> float:
    high, low = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_colours_meet_wcag_aa_on_white() -> None:
    colours = dict(re.findall(r"--([a-z0-9-]+):\s*(#[0-9a-fA-F]{6})", CSS.read_text()))
    for text in ("ink", "muted", "accent", "gain", "loss", "focus"):
        assert _contrast(colours[text], "#ffffff") >= 4.5, text
    bands = [name for name in colours if name.startswith("band-")]
    assert len(bands) == len(load_scorecard().bands)
    for band in bands:  # graphics: 3:1; these are also used for text-sized marks, so hold them to 4.5
        assert _contrast(colours[band], "#ffffff") >= 4.5, band
    assert _contrast("#ffffff", colours["accent"]) >= 4.5  # white text on the primary buttons
