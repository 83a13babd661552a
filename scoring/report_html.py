"""A model report as one self-contained HTML page: inline SVG plots, no external assets."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

WIDTH, HEIGHT, PAD = 360, 260, 40
STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.25rem .6rem;
text-align:right}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
.grid{display:flex;flex-wrap:wrap;gap:1.5rem}.warn{color:#b00020;font-weight:bold}
.ok{color:#1b5e20}figure{margin:0}figcaption{font-size:.9rem;color:#555}
"""


def render_html(report: dict[str, Any]) -> str:
    """The page for a report built by scoring.report.build_report."""
    parts = [
        f"<h1>Model {escape(report['version'])}</h1>",
        f"<p>role: {escape(str(report['role']))} · created {escape(report['created_at'])} · "
        f"engine {escape(report['engine'])} · trained on {escape(', '.join(report['train_as_of']))}"
        f" · held out {escape(str(report['holdout_as_of']))}</p>",
        "<h2>Out-of-time quality</h2>", _metrics_table(report["metrics"]),
        _band_verdict(report["bad_rate_falls_by_band"]),
        _psi(report.get("psi_vs_champion")),
        '<div class="grid">',
        _figure("ROC", _line_chart(report["roc"]["fpr"], report["roc"]["tpr"], diagonal=True,
                                   x_label="false positive rate", y_label="true positive rate")),
        _figure("Calibration by decile", _calibration_chart(report["calibration_by_decile"])),
        _figure("Band distribution", _bar_chart([b["code"] for b in report["bands"]],
                                                [b["share"] for b in report["bands"]], "share")),
        _figure("Bad rate by band", _bar_chart([b["code"] for b in report["bands"]],
                                               [b["bad_rate"] or 0.0 for b in report["bands"]],
                                               "bad rate")),
        "</div>",
        "<h2>Feature importance (mean |SHAP|)</h2>",
        _bar_chart([row["feature"] for row in report["importance"][:20]],
                   [row["mean_abs_shap"] for row in report["importance"][:20]],
                   "mean |SHAP|", horizontal=True),
        "<h2>Bands</h2>", _bands_table(report["bands"]),
        f"<h2>Fairness (approval at score ≥ {report['approval_cutoff']})</h2>",
        _fairness(report["fairness"]),
    ]
    body = "\n".join(parts)
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>altcredit model {escape(report['version'])}</title><style>{STYLE}</style>"
            f"</head><body>{body}</body></html>")


def _metrics_table(values: dict[str, float]) -> str:
    rows = "".join(f"<tr><td>{escape(key)}</td><td>{_fmt(value)}</td></tr>"
                   for key, value in values.items())
    return f"<table><tr><th>measure</th><th>value</th></tr>{rows}</table>"


def _band_verdict(verdict: dict[str, Any]) -> str:
    css = "ok" if verdict["holds"] else "warn"
    return f'<p class="{css}">{escape(verdict["message"])}</p>'


def _psi(psi: dict[str, Any] | None) -> str:
    if not psi:
        return "<p>No other champion to compare with.</p>"
    return (f"<p>Against champion {escape(psi['champion'])}: score PSI {_fmt(psi['psi'])}, "
            f"AUC drop {_fmt(psi['auc_drop'])}.</p>")


def _bands_table(bands: list[dict[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>{escape(b['en'])} {escape(b['zh'])}</td><td>{b['min']}–{b['max']}</td>"
        f"<td>{b['n']}</td><td>{_fmt(b['share'])}</td><td>{_fmt(b['bad_rate'])}</td></tr>"
        for b in bands)
    return ("<table><tr><th>band</th><th>scores</th><th>users</th><th>share</th>"
            f"<th>bad rate</th></tr>{rows}</table>")


def _fairness(tables: dict[str, list[dict[str, Any]]]) -> str:
    if not tables:
        return "<p>The data holds no age or gender to report on.</p>"
    html = []
    for attribute, rows in tables.items():
        body = "".join(
            f"<tr><td>{escape(r['group'])}</td><td>{r['n']}</td><td>{_fmt(r['bad_rate'])}</td>"
            f"<td>{_fmt(r['auc'])}</td><td>{_fmt(r['mean_score'])}</td>"
            f"<td>{_fmt(r['approval_rate'])}</td></tr>" for r in rows)
        html.append(f"<h3>{escape(attribute)}</h3><table><tr><th>group</th><th>users</th>"
                    f"<th>bad rate</th><th>AUC</th><th>mean score</th><th>approval rate</th>"
                    f"</tr>{body}</table>")
    return "".join(html)


def _figure(caption: str, svg: str) -> str:
    return f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>"


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
    return escape(str(value))


# -- SVG ---------------------------------------------------------------------------


def _svg(inner: str, width: int = WIDTH, height: int = HEIGHT) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img">{inner}</svg>')


def _axes(x_label: str, y_label: str) -> str:
    left, bottom = PAD, HEIGHT - PAD
    return (f'<line x1="{left}" y1="{bottom}" x2="{WIDTH - 10}" y2="{bottom}" stroke="#333"/>'
            f'<line x1="{left}" y1="10" x2="{left}" y2="{bottom}" stroke="#333"/>'
            f'<text x="{WIDTH / 2}" y="{HEIGHT - 8}" font-size="11" text-anchor="middle">'
            f'{escape(x_label)}</text>'
            f'<text x="12" y="{HEIGHT / 2}" font-size="11" text-anchor="middle" '
            f'transform="rotate(-90 12 {HEIGHT / 2})">{escape(y_label)}</text>')


def _xy(x: float, y: float, top: float = 1.0) -> tuple[float, float]:
    span_x, span_y = WIDTH - PAD - 10, HEIGHT - PAD - 10
    return PAD + x * span_x, HEIGHT - PAD - (y / top if top else 0.0) * span_y


def _polyline(xs: Sequence[float], ys: Sequence[float], top: float, color: str) -> str:
    points = " ".join("{:.1f},{:.1f}".format(*_xy(x, y, top)) for x, y in zip(xs, ys, strict=True))
    return f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"/>'


def _line_chart(xs: Sequence[float], ys: Sequence[float], *, diagonal: bool, x_label: str,
                y_label: str) -> str:
    inner = _axes(x_label, y_label)
    if diagonal:
        inner += _polyline([0, 1], [0, 1], 1.0, "#bbb")
    if xs:
        inner += _polyline(xs, ys, 1.0, "#1565c0")
    return _svg(inner)


def _calibration_chart(rows: list[dict[str, float]]) -> str:
    if not rows:
        return _svg(_axes("decile", "bad rate"))
    top = max(max(r["predicted"] for r in rows), max(r["observed"] for r in rows)) or 1.0
    xs = [(r["bin"] - 0.5) / len(rows) for r in rows]
    inner = _axes("decile of predicted risk", "bad rate")
    inner += _polyline(xs, [r["predicted"] for r in rows], top, "#1565c0")
    inner += _polyline(xs, [r["observed"] for r in rows], top, "#e65100")
    inner += ('<text x="50" y="20" font-size="11" fill="#1565c0">predicted</text>'
              '<text x="50" y="34" font-size="11" fill="#e65100">observed</text>')
    return _svg(inner)


def _bar_chart(labels: Sequence[str], values: Sequence[float], y_label: str, *,
               horizontal: bool = False) -> str:
    top = max(values, default=0.0) or 1.0
    if horizontal:
        row, width = 18, 720
        bars = "".join(
            f'<text x="250" y="{i * row + 13}" font-size="11" text-anchor="end">'
            f'{escape(label)}</text><rect x="255" y="{i * row + 3}" height="{row - 5}" '
            f'width="{value / top * (width - 330):.1f}" fill="#1565c0"/>'
            f'<text x="{260 + value / top * (width - 330):.1f}" y="{i * row + 13}" '
            f'font-size="10">{value:.4f}</text>'
            for i, (label, value) in enumerate(zip(labels, values, strict=True)))
        return _svg(bars, width, max(row, row * len(labels) + 5))
    slot = (WIDTH - PAD - 10) / max(1, len(labels))
    inner = _axes("", y_label)
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        x, y = PAD + i * slot + 4, _xy(0, value, top)[1]
        inner += (f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot - 8:.1f}" '
                  f'height="{HEIGHT - PAD - y:.1f}" fill="#1565c0"/>'
                  f'<text x="{x + (slot - 8) / 2:.1f}" y="{HEIGHT - PAD + 12}" font-size="9" '
                  f'text-anchor="middle">{escape(label)}</text>'
                  f'<text x="{x + (slot - 8) / 2:.1f}" y="{y - 3:.1f}" font-size="9" '
                  f'text-anchor="middle">{value:.3f}</text>')
    return _svg(inner)
