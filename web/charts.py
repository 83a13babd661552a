"""Chart geometry for the consumer pages: pure functions from numbers to SVG coordinates.

The pages draw their charts as server-rendered SVG (no JavaScript, nothing
fetched from elsewhere). This module does the arithmetic — where an arc
starts, how long a bar is, where a point of the history lies — and returns
plain dataclasses; the templates (``templates/charts.html``) turn them into
markup with texts from the catalogues, so geometry and words stay apart and
the geometry can be tested on its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

from config.scorecard import Band, Scorecard

# The gauge: a half circle, 350 on the left, 950 on the right.
GAUGE_WIDTH, GAUGE_HEIGHT = 320, 190
GAUGE_CX, GAUGE_CY, GAUGE_R = 160.0, 165.0, 130.0
GAUGE_STROKE = 26
NEEDLE_R = GAUGE_R

# Bars: a column of labels, then room for a loss's value, the losses, the zero line, the gains.
BAR_ROW, BAR_LABEL, BAR_HALF, BAR_VALUE = 34, 160.0, 140.0, 56.0
BARS_ZERO = BAR_LABEL + BAR_VALUE + BAR_HALF
BARS_WIDTH = BARS_ZERO + BAR_HALF + BAR_VALUE

LINE_WIDTH, LINE_HEIGHT = 560, 240
LINE_LEFT, LINE_RIGHT, LINE_TOP, LINE_BOTTOM = 48.0, 16.0, 12.0, 30.0
LINE_PAD_POINTS = 25
LINE_TICK_STEP = 50


@dataclass(frozen=True)
class Arc:
    band: Band
    index: int
    path: str
    low: int
    high: int


@dataclass(frozen=True)
class Gauge:
    arcs: list[Arc]
    score: int | None
    needle_x: float | None
    needle_y: float | None
    min_score: int
    max_score: int
    width: int = GAUGE_WIDTH
    height: int = GAUGE_HEIGHT
    cx: float = GAUGE_CX
    cy: float = GAUGE_CY


def _fraction(value: float, low: float, high: float) -> float:
    return min(1.0, max(0.0, (value - low) / (high - low)))


def _on_arc(fraction: float, radius: float) -> tuple[float, float]:
    angle = math.pi * (1.0 - fraction)
    return round(GAUGE_CX + radius * math.cos(angle), 2), round(GAUGE_CY - radius * math.sin(angle), 2)


def gauge(scorecard: Scorecard, score: int | None) -> Gauge:
    """A half-circle gauge: one arc per band (its range from config), and the needle at ``score``."""
    low, high = scorecard.scale.min_score, scorecard.scale.max_score
    arcs = []
    bands = list(scorecard.bands)
    for index, band in enumerate(bands):
        end = bands[index + 1].min if index + 1 < len(bands) else high
        x1, y1 = _on_arc(_fraction(band.min, low, high), GAUGE_R)
        x2, y2 = _on_arc(_fraction(end, low, high), GAUGE_R)
        path = f"M {x1} {y1} A {GAUGE_R} {GAUGE_R} 0 0 1 {x2} {y2}"
        arcs.append(Arc(band=band, index=index, path=path, low=band.min, high=band.max))
    needle = _on_arc(_fraction(score, low, high), NEEDLE_R) if score is not None else (None, None)
    return Gauge(arcs=arcs, score=score, needle_x=needle[0], needle_y=needle[1], min_score=low,
                 max_score=high)


@dataclass(frozen=True)
class Bar:
    key: str
    points: float
    x: float
    width: float
    y: float
    text_x: float
    positive: bool


@dataclass(frozen=True)
class Bars:
    bars: list[Bar]
    zero_x: float
    width: float
    height: float
    label_x: float = BAR_LABEL - 8


def diverging_bars(values: dict[str, float]) -> Bars:
    """Horizontal bars from a zero line: points earned go right, points lost go left."""
    largest = max((abs(value) for value in values.values()), default=0.0) or 1.0
    zero = BARS_ZERO
    bars = []
    for row, (key, value) in enumerate(values.items()):
        length = round(abs(value) / largest * BAR_HALF, 2)
        positive = value >= 0
        x = zero if positive else round(zero - length, 2)
        text_x = round(zero + length + 6, 2) if positive else round(zero - length - 6, 2)
        bars.append(Bar(key=key, points=value, x=x, width=max(length, 1.0), y=row * BAR_ROW + 8,
                        text_x=text_x, positive=positive))
    return Bars(bars=bars, zero_x=zero, width=BARS_WIDTH, height=max(1, len(bars)) * BAR_ROW + 8)


@dataclass(frozen=True)
class LinePoint:
    as_of: date
    score: int
    x: float
    y: float


@dataclass(frozen=True)
class Tick:
    value: int
    y: float


@dataclass(frozen=True)
class Stripe:
    index: int
    y: float
    height: float


@dataclass(frozen=True)
class Line:
    points: list[LinePoint]
    path: str
    ticks: list[Tick]
    stripes: list[Stripe]
    width: int = LINE_WIDTH
    height: int = LINE_HEIGHT
    left: float = LINE_LEFT
    bottom: float = LINE_HEIGHT - LINE_BOTTOM
    right: float = LINE_WIDTH - LINE_RIGHT


def line_chart(history: list[tuple[date, int]], scorecard: Scorecard) -> Line:
    """The score over time: x by date, y over the scores' range (padded, in band stripes)."""
    low_bound, high_bound = scorecard.scale.min_score, scorecard.scale.max_score
    scores = [score for _, score in history]
    low = max(low_bound, (min(scores, default=600) - LINE_PAD_POINTS) // LINE_TICK_STEP * LINE_TICK_STEP)
    high = min(high_bound, -(-(max(scores, default=650) + LINE_PAD_POINTS) // LINE_TICK_STEP)
               * LINE_TICK_STEP)
    top, bottom = LINE_TOP, LINE_HEIGHT - LINE_BOTTOM
    left, right = LINE_LEFT, LINE_WIDTH - LINE_RIGHT

    def y_of(value: float) -> float:
        return round(bottom - _fraction(value, low, high) * (bottom - top), 2)

    days = [day.toordinal() for day, _ in history]
    first, last = min(days, default=0), max(days, default=0)
    points = []
    for day, score in history:
        share = 0.5 if last == first else (day.toordinal() - first) / (last - first)
        points.append(LinePoint(as_of=day, score=score, x=round(left + share * (right - left), 2),
                                y=y_of(score)))
    path = " ".join(f"{'M' if i == 0 else 'L'} {p.x} {p.y}" for i, p in enumerate(points))
    ticks = [Tick(value=value, y=y_of(value)) for value in range(low, high + 1, LINE_TICK_STEP)]
    stripes = []
    for index, band in enumerate(scorecard.bands):
        band_low, band_high = max(band.min, low), min(band.max + 1, high)
        if band_low < band_high:
            y_top = y_of(band_high)
            stripes.append(Stripe(index=index, y=y_top, height=round(y_of(band_low) - y_top, 2)))
    return Line(points=points, path=path, ticks=ticks, stripes=stripes)
