"""Charts as inline SVG, drawn in Python (no JavaScript build): lines over time, grouped bars."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date
from html import escape

from markupsafe import Markup

from ..i18n import day as day_label  # 2026-11-30, or 2026年11月30日 on a Chinese page

WIDTH, HEIGHT = 760, 250
LEFT, RIGHT, TOP, BOTTOM = 78, 78, 50, 40


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for step in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if value <= step * exp:
            return step * exp
    return 10 * exp


def _label(value: float) -> str:
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:.3g}M"
    if abs(value) >= 10_000:
        return f"{value / 1000:.4g}k"
    if abs(value) >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:.4g}"


class _Frame:
    def __init__(self, days: Sequence[date], title: str) -> None:
        self.days = sorted(set(days))
        self.title = title
        self.x0, self.x1 = LEFT, WIDTH - RIGHT
        self.y0, self.y1 = HEIGHT - BOTTOM, TOP
        first, last = (self.days[0], self.days[-1]) if self.days else (date.today(), date.today())
        self.o0, self.span = first.toordinal(), max(1, last.toordinal() - first.toordinal())
        self.slots: tuple[dict[date, int], float] | None = None  # bars: (day -> slot, slot width)

    def x(self, day: date) -> float:
        if self.slots is not None:  # bars sit in slots: labels under them
            index, slot = self.slots
            return self.x0 + (index.get(day, 0) + 0.5) * slot
        if len(self.days) <= 1:
            return (self.x0 + self.x1) / 2
        return self.x0 + (day.toordinal() - self.o0) / self.span * (self.x1 - self.x0)

    @staticmethod
    def y(value: float, top: float, frame: _Frame) -> float:
        return frame.y0 - (value / top if top else 0) * (frame.y0 - frame.y1)

    def axes(self, out: list[str], left_top: float, left_unit: str, right_top: float | None, right_unit: str | None,
             color_left: str = "#333", color_right: str = "#333") -> None:
        out.append(f'<text x="{self.x0}" y="15" class="ls-title" font-weight="bold">{escape(self.title)}</text>')
        for i in range(5):
            value = left_top * i / 4
            yy = self.y(value, left_top, self)
            out.append(f'<line x1="{self.x0}" x2="{self.x1}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#ddd" '
                       'stroke-width="1"/>')
            out.append(f'<text x="{self.x0 - 6}" y="{yy + 4:.1f}" text-anchor="end" font-size="11" fill="{color_left}">'
                       f'{_label(value)}</text>')
            if right_top is not None:
                rv = right_top * i / 4
                out.append(f'<text x="{self.x1 + 6}" y="{yy + 4:.1f}" font-size="11" fill="{color_right}">'
                           f'{_label(rv)}</text>')
        out.append(f'<text x="{self.x0 - 6}" y="{self.y1 - 10}" text-anchor="end" font-size="11" fill="{color_left}">'
                   f'{escape(left_unit)}</text>')
        if right_unit:
            out.append(f'<text x="{self.x1 + 6}" y="{self.y1 - 10}" font-size="11" fill="{color_right}">'
                       f'{escape(right_unit)}</text>')
        out.append(f'<line x1="{self.x0}" x2="{self.x1}" y1="{self.y0}" y2="{self.y0}" stroke="#888"/>')
        if self.days:
            picks = {self.days[0], self.days[-1]}
            if len(self.days) > 2:
                for k in range(1, 4):
                    picks.add(self.days[round(k * (len(self.days) - 1) / 4)])
            for day in sorted(picks):
                out.append(f'<text x="{self.x(day):.1f}" y="{self.y0 + 16}" text-anchor="middle" font-size="11">'
                           f'{escape(day_label(day))}</text>')


def _legend(frame: _Frame, i: int, s: dict) -> str:
    lx = frame.x0 + i * 170
    return (f'<rect x="{lx}" y="22" width="12" height="12" fill="{s["color"]}"/>'
            f'<text x="{lx + 16}" y="32" font-size="12">{escape(s["label"])}</text>')


def line_chart(title: str, series: Sequence[dict], *, chart_id: str) -> Markup:
    """series: dicts with label, color, unit, axis ('left' | 'right'), points [(date, Decimal)]."""
    days = [d for s in series for d, _ in s["points"]]
    frame = _Frame(days, title)
    tops = {}
    units = {}
    colors = {}
    for axis in ("left", "right"):
        values = [float(v) for s in series if s.get("axis", "left") == axis for _, v in s["points"]]  # float ok
        if values or axis == "left":
            tops[axis] = _nice_max(max(values + [0.0]) * 1.05)
            found = [s for s in series if s.get("axis", "left") == axis]
            units[axis] = found[0]["unit"] if found else ""
            colors[axis] = found[0]["color"] if found and len(series) > 1 else "#333"
    out = [f'<svg id="{chart_id}" class="ls-chart" data-points="{len(frame.days)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
           f'width="100%" style="max-width:{WIDTH}px" role="img" aria-label="{escape(title)}" '
           f'xmlns="http://www.w3.org/2000/svg">']
    frame.axes(out, tops["left"], units["left"], tops.get("right"), units.get("right"),
               colors.get("left", "#333"), colors.get("right", "#333"))
    for i, s in enumerate(series):
        top = tops[s.get("axis", "left")]
        pts = [(frame.x(d), frame.y(float(v), top, frame), d, v) for d, v in s["points"]]  # float ok: chart pixels
        coords = " ".join(f"{px:.1f},{py:.1f}" for px, py, _, _ in pts)
        out.append(f'<polyline class="ls-series" data-series="{escape(s["label"])}" data-count="{len(pts)}" '
                   f'fill="none" stroke="{s["color"]}" stroke-width="2" points="{coords}"/>')
        if len(pts) <= 400:
            for px, py, d, v in pts:
                out.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="2.5" fill="{s["color"]}"><title>'
                           f'{escape(day_label(d))}: {escape(str(v))} {escape(s["unit"])}</title></circle>')
        out.append(_legend(frame, i, s))
    out.append("</svg>")
    return Markup("".join(out))


def bar_chart(title: str, days: Sequence[date], series: Sequence[dict], *, chart_id: str, unit: str) -> Markup:
    """Grouped bars per day; series: dicts with label, color, values (one Decimal per day)."""
    frame = _Frame(days, title)
    values = [float(v) for s in series for v in s["values"]]  # float ok: chart pixels
    top = _nice_max(max(values + [0.0]) * 1.05)
    out = [f'<svg id="{chart_id}" class="ls-chart" data-points="{len(days)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
           f'width="100%" style="max-width:{WIDTH}px" role="img" aria-label="{escape(title)}" '
           f'xmlns="http://www.w3.org/2000/svg">']
    n = max(1, len(days))
    slot = (frame.x1 - frame.x0) / n
    index = {day: k for k, day in enumerate(days)}
    frame.slots = (index, slot)
    frame.axes(out, top, unit, None, None)
    width = max(1.0, slot * 0.8 / max(1, len(series)))
    for i, s in enumerate(series):
        out.append(f'<g class="ls-series" data-series="{escape(s["label"])}" data-count="{len(s["values"])}">')
        for k, (day, v) in enumerate(zip(days, s["values"], strict=False)):  # a series may be shorter
            fv = max(0.0, float(v))  # float ok: chart pixels
            x = frame.x0 + k * slot + slot * 0.1 + i * width
            y = frame.y(fv, top, frame)
            out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{frame.y0 - y:.1f}" '
                       f'fill="{s["color"]}"><title>{escape(day_label(day))}: {escape(str(v))} {escape(unit)} '
                       f'{escape(s["label"])}</title></rect>')
        out.append("</g>")
        out.append(_legend(frame, i, s))
    out.append("</svg>")
    return Markup("".join(out))
