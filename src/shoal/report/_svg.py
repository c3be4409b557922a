"""Small self-contained SVG charts (lines, dots, horizontal and stacked bars), no dependencies."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape

__all__ = ["PALETTE", "Bar", "Series", "bar_chart", "line_chart", "nice_ticks", "stacked_bar_chart"]

PALETTE = ("#1f6feb", "#d4a72c", "#cf222e", "#1a7f37", "#8250df", "#57606a", "#e16f24", "#0a7ea4")
_FONT = 'font-family="system-ui, -apple-system, Segoe UI, sans-serif"'
_MARGIN_LEFT, _MARGIN_RIGHT, _MARGIN_TOP, _MARGIN_BOTTOM = 64, 16, 34, 44


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    points: Sequence[tuple[float, float]]
    color: str = PALETTE[0]
    dashed: bool = False
    step: bool = False  # a step line (limits that change at moments)
    dots: bool = False  # markers only (events, per-item values)


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    values: Sequence[float]  # one per stacked segment
    note: str = ""


@dataclass(slots=True)
class _Doc:
    width: int
    height: int
    parts: list[str] = field(default_factory=list)

    def add(self, markup: str) -> None:
        self.parts.append(markup)

    def text(
        self, x: float, y: float, text: str, *, size: int = 11, anchor: str = "start", **attrs: str
    ) -> None:
        extra = "".join(f' {k.replace("_", "-")}="{escape(v)}"' for k, v in attrs.items())
        self.add(
            f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" {_FONT}'
            f' fill="#24292f"{extra}>{escape(text)}</text>'
        )

    def render(self, title: str) -> str:
        head = (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {self.width} {self.height}" '
            f'width="{self.width}" height="{self.height}" role="img" aria-label="{escape(title)}">'
            f'<rect width="100%" height="100%" fill="#ffffff"/>'
        )
        return head + "".join(self.parts) + "</svg>"


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high]."""
    if not math.isfinite(low) or not math.isfinite(high) or high <= low:
        high = low + 1.0
    raw = (high - low) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    ticks = []
    value = start
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 10))
    return ticks


def _short(value: float) -> str:
    magnitude = abs(value)
    if magnitude >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if magnitude >= 10_000:
        return f"{value / 1000:g}k"
    if magnitude and magnitude < 0.01:
        return f"{value:.2g}"
    return f"{value:g}"


def _hline(x1: float, x2: float, y: float, color: str, extra: str = "") -> str:
    return f'<line x1="{x1:.1f}" x2="{x2:.1f}" y1="{y:.1f}" y2="{y:.1f}" stroke="{color}"{extra}/>'


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    width: int = 960,
    height: int = 280,
    x_format: Callable[[float], str] = _short,
    y_format: Callable[[float], str] = _short,
    y_max: float | None = None,
) -> str:
    """Lines (or dots) on shared axes with a legend; y starts at 0. Values above `y_max` are drawn
    at the top of the scale (a limit far above the traffic must not flatten it)."""
    doc = _Doc(width, height)
    points = [p for s in series for p in s.points]
    plot_w = width - _MARGIN_LEFT - _MARGIN_RIGHT
    plot_h = height - _MARGIN_TOP - _MARGIN_BOTTOM
    doc.text(_MARGIN_LEFT, 18, title, size=13, font_weight="600")
    if not points:
        doc.text(width / 2, height / 2, "no data", anchor="middle")
        return doc.render(title)
    x_lo, x_hi = min(p[0] for p in points), max(p[0] for p in points)
    if x_hi <= x_lo:
        x_hi = x_lo + 1.0
    top = max(p[1] for p in points) or 1.0
    y_ticks = nice_ticks(0.0, min(top, y_max) if y_max else top)
    y_hi = y_ticks[-1]

    def sx(x: float) -> float:
        return _MARGIN_LEFT + (x - x_lo) / (x_hi - x_lo) * plot_w

    def sy(y: float) -> float:
        return _MARGIN_TOP + plot_h - (min(y, y_hi) / y_hi) * plot_h

    for tick in y_ticks:
        y = sy(tick)
        doc.add(_hline(_MARGIN_LEFT, width - _MARGIN_RIGHT, y, "#eaeef2"))
        doc.text(_MARGIN_LEFT - 6, y + 4, y_format(tick), anchor="end", size=10)
    for tick in nice_ticks(x_lo, x_hi, 6):
        if x_lo <= tick <= x_hi:
            doc.text(sx(tick), _MARGIN_TOP + plot_h + 14, x_format(tick), anchor="middle", size=10)
    doc.add(_hline(_MARGIN_LEFT, width - _MARGIN_RIGHT, sy(0), "#8c959f"))
    doc.text(_MARGIN_LEFT + plot_w / 2, height - 8, x_label, anchor="middle", size=11)
    doc.add(
        f'<text transform="translate(14 {_MARGIN_TOP + plot_h / 2:.1f}) rotate(-90)" font-size="11" '
        f'text-anchor="middle" {_FONT} fill="#24292f">{escape(y_label)}</text>'
    )
    for s in series:
        _draw_series(doc, s, sx, sy)
    _legend(doc, [(s.name, s.color, s.dashed) for s in series], width)
    return doc.render(title)


def _draw_series(doc: _Doc, s: Series, sx: Callable[[float], float], sy: Callable[[float], float]) -> None:
    if not s.points:
        return
    if s.dots:
        for x, y in s.points:
            doc.add(
                f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.4" fill="{s.color}" fill-opacity="0.8"/>'
            )
        return
    coords: list[str] = []
    previous: tuple[float, float] | None = None
    for x, y in s.points:
        if s.step and previous is not None:
            coords.append(f"{sx(x):.1f},{sy(previous[1]):.1f}")
        coords.append(f"{sx(x):.1f},{sy(y):.1f}")
        previous = (x, y)
    dash = ' stroke-dasharray="6 4"' if s.dashed else ""
    doc.add(
        f'<polyline points="{" ".join(coords)}" fill="none" stroke="{s.color}" stroke-width="1.8"'
        f' stroke-linejoin="round"{dash}/>'
    )


def _legend(doc: _Doc, entries: Sequence[tuple[str, str, bool]], width: int) -> None:
    x = width - _MARGIN_RIGHT
    for name, color, dashed in reversed(entries):
        x -= 7 * len(name) + 30
        dash = ' stroke-dasharray="4 3"' if dashed else ""
        doc.add(_hline(x, x + 18, 14, color, f' stroke-width="2.5"{dash}'))
        doc.text(x + 22, 18, name, size=11)


def bar_chart(
    bars: Sequence[tuple[str, float]],
    *,
    title: str,
    value_format: Callable[[float], str] = _short,
    width: int = 960,
) -> str:
    """Horizontal bars, one per label, with the value written at the end of each."""
    return stacked_bar_chart(
        [Bar(label, [value], value_format(value)) for label, value in bars],
        keys=[],
        title=title,
        width=width,
    )


def stacked_bar_chart(bars: Sequence[Bar], *, keys: Sequence[str], title: str, width: int = 960) -> str:
    """Horizontal bars made of segments (`keys` name them in the legend)."""
    row_h, label_w = 24, min(260, 16 + 7 * max((len(b.label) for b in bars), default=4))
    height = _MARGIN_TOP + row_h * max(1, len(bars)) + 20
    doc = _Doc(width, height)
    doc.text(12, 18, title, size=13, font_weight="600")
    if keys:
        _legend(doc, [(k, PALETTE[i % len(PALETTE)], False) for i, k in enumerate(keys)], width)
    top = max((sum(b.values) for b in bars), default=0.0) or 1.0
    plot_w = width - label_w - 120
    for row, bar in enumerate(bars):
        y = _MARGIN_TOP + row * row_h
        label = bar.label if len(bar.label) <= 36 else bar.label[:35] + "…"
        doc.text(label_w - 8, y + 15, label, anchor="end")
        x = float(label_w)
        for index, value in enumerate(bar.values):
            w = max(0.0, value / top * plot_w)
            color = PALETTE[index % len(PALETTE)]
            if w > 0:
                doc.add(
                    f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" fill="{color}"/>'
                )
            x += w
        doc.text(x + 6, y + 15, bar.note, size=10)
    if not bars:
        doc.text(width / 2, _MARGIN_TOP + 14, "no data", anchor="middle")
    return doc.render(title)
