"""Small inline SVG charts (labelled scatter and line plots) for self-contained HTML reports."""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

__all__ = ["PALETTE", "Point", "Series", "line_chart", "scatter_chart"]

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22")
WIDTH, HEIGHT = 460, 320
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 30, 46


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    label: str
    color: str


@dataclass(frozen=True)
class Series:
    label: str
    color: str
    points: tuple[tuple[float, float], ...]


class _Axes:
    """Maps data to pixels; x optionally on a log10 scale."""

    def __init__(self, xs: list[float], ys: list[float], log_x: bool) -> None:
        self.log_x = log_x
        tx = [self._tx(x) for x in xs]
        self.x0, self.x1 = _padded(min(tx), max(tx))
        self.y0, self.y1 = _padded(min(ys), max(ys))

    def _tx(self, x: float) -> float:
        return math.log10(x) if self.log_x else x

    def px(self, x: float) -> float:
        return LEFT + (self._tx(x) - self.x0) / (self.x1 - self.x0) * (WIDTH - LEFT - RIGHT)

    def py(self, y: float) -> float:
        return HEIGHT - BOTTOM - (y - self.y0) / (self.y1 - self.y0) * (HEIGHT - TOP - BOTTOM)

    def x_ticks(self) -> list[tuple[float, str]]:
        if self.log_x:
            decades = range(math.floor(self.x0), math.ceil(self.x1) + 1)
            steps = (1,) if self.x1 - self.x0 > 2 else (1, 2, 5)
            values = [m * 10.0**k for k in decades for m in steps if self.x0 <= math.log10(m * 10.0**k) <= self.x1]
            return [(v, _fmt(v)) for v in values]
        return [(v, _fmt(v)) for v in _nice_ticks(self.x0, self.x1)]

    def y_ticks(self) -> list[tuple[float, str]]:
        return [(v, _fmt(v)) for v in _nice_ticks(self.y0, self.y1)]


def _padded(lo: float, hi: float) -> tuple[float, float]:
    span = hi - lo
    pad = span * 0.08 if span > 0 else max(abs(lo) * 0.05, 0.5)
    return lo - pad, hi + pad


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    raw = (hi - lo) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(lo / step) * step
    return [round(first + i * step, 10) for i in range(int((hi - first) / step) + 1)]


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000 or abs(value) < 0.01:
        return f"{value:.0e}"
    return f"{value:g}"


def _frame(axes: _Axes, title: str, x_label: str, y_label: str) -> list[str]:
    parts = [(f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" height="{HEIGHT - TOP - BOTTOM}" '
             'fill="#fff" stroke="#999"/>'),
             f'<text x="{WIDTH / 2}" y="18" text-anchor="middle" font-weight="bold">{escape(title)}</text>',
             f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 8}" text-anchor="middle">{escape(x_label)}</text>',
             (f'<text transform="translate(14 {(TOP + HEIGHT - BOTTOM) / 2}) rotate(-90)" text-anchor="middle">'
             f"{escape(y_label)}</text>")]
    for value, text in axes.x_ticks():
        x = axes.px(value)
        parts.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{HEIGHT - BOTTOM}" stroke="#eee"/>')
        parts.append(f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 15}" text-anchor="middle">{escape(text)}</text>')
    for value, text in axes.y_ticks():
        y = axes.py(value)
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{LEFT - 5}" y="{y + 4:.1f}" text-anchor="end">{escape(text)}</text>')
    return parts


def _svg(parts: list[str], title: str) -> str:
    body = "\n".join(parts)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" '
            f'font-family="sans-serif" font-size="11" role="img" aria-label="{escape(title)}">\n{body}\n</svg>')


def scatter_chart(points: list[Point], title: str, x_label: str, y_label: str, log_x: bool = True) -> str:
    """A labelled scatter plot; empty string when there is nothing to plot."""
    points = [p for p in points if p.x > 0 or not log_x]
    if not points:
        return ""
    axes = _Axes([p.x for p in points], [p.y for p in points], log_x)
    parts = _frame(axes, title, x_label, y_label)
    placed: list[tuple[float, float, float]] = []  # (left, right, baseline) of labels already drawn
    for p in sorted(points, key=lambda q: axes.py(q.y)):
        x, y = axes.px(p.x), axes.py(p.y)
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{p.color}"><title>{escape(p.label)}: '
                     f"{p.y:.2f} dB, {p.x:.3g} s/MP</title></circle>")
        parts.append(_label(p.label, p.color, x, y, placed))
    return _svg(parts, title)


def _label(text: str, color: str, x: float, y: float, placed: list[tuple[float, float, float]]) -> str:
    """A point's label beside it, inside the plot, moved up or down past labels it would overlap."""
    width = 6.2 * len(text)
    left_side = x + 7 + width > WIDTH - RIGHT
    left = x - 7 - width if left_side else x + 7
    start = min(max(TOP + 12, y - 6), HEIGHT - BOTTOM - 3)
    candidates = [start + 13 * k * sign for k in range(len(placed) + 2) for sign in (1, -1)]
    inside = [c for c in candidates if TOP + 12 <= c <= HEIGHT - BOTTOM - 3] or [start]
    baseline = next((c for c in inside if not any(a < left + width and left < b and abs(c - d) < 12
                                                  for a, b, d in placed)), inside[0])
    placed.append((left, left + width, baseline))
    anchor = "end" if left_side else "start"
    tx = x - 7 if left_side else x + 7
    return f'<text x="{tx:.1f}" y="{baseline:.1f}" text-anchor="{anchor}" fill="{color}">{escape(text)}</text>'


def line_chart(series: list[Series], title: str, x_label: str, y_label: str) -> str:
    """Lines with markers and a legend; empty string when there is nothing to plot."""
    series = [s for s in series if s.points]
    if not series:
        return ""
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points]
    axes = _Axes(xs, ys, log_x=False)
    parts = _frame(axes, title, x_label, y_label)
    for i, s in enumerate(series):
        coords = " ".join(f"{axes.px(x):.1f},{axes.py(y):.1f}" for x, y in sorted(s.points))
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{s.color}" stroke-width="2"/>')
        for x, y in s.points:
            parts.append(f'<circle cx="{axes.px(x):.1f}" cy="{axes.py(y):.1f}" r="4" fill="{s.color}">'
                         f"<title>{escape(s.label)}: {x:g} steps, {y:.2f} dB</title></circle>")
        parts.append(f'<text x="{LEFT + 8}" y="{TOP + 16 + 14 * i}" fill="{s.color}">{escape(s.label)}</text>')
    return _svg(parts, title)
