"""Small server-rendered SVG charts: readable without JavaScript, in a screenshot and to a screen reader.

Each chart has a <title> and a <desc> (named by `aria-labelledby`), labelled axes, and a
<title> on every bar or point, which browsers show on hover. A bar or point may link to the
conversations behind it. Every text that goes in (channel and agent names are typed by
people) passes through `escape`, so the result is returned as Markup: already safe, and not
escaped twice by the template.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 52
#: Okabe-Ito: told apart by people with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
_ids = itertools.count(1)


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float]
    links: Sequence[str | None] = ()


@dataclass(frozen=True)
class Point:
    label: str
    value: float | None          # None: no data that day (a gap, not a zero)
    link: str | None = None


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    limit: float | None = None   # drawn as an outline behind the bar: an agent's capacity
    link: str | None = None


def nice_max(value: float) -> float:
    """A round top for the y axis (1, 2, 2.5 or 5 times a power of ten) at or above `value`."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= value)


def _fmt(value: float) -> str:
    return f"{value:.0f}" if value >= 10 or float(value).is_integer() else f"{value:.1f}"


def _open(title: str, desc: str, height: int = HEIGHT) -> tuple[str, list[str]]:
    uid = f"chart{next(_ids)}"
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {height}" '
            f'width="{WIDTH}" height="{height}" role="img" aria-labelledby="{uid}-t {uid}-d">'
            f'<title id="{uid}-t">{escape(title)}</title><desc id="{uid}-d">{escape(desc)}</desc>')
    return uid, [head]


def _linked(shape: str, link: str | None) -> str:
    return f'<a href="{escape(link)}">{shape}</a>' if link else shape


def _axes(parts: list[str], x_label: str, y_label: str, y_top: float, unit: str = "") -> None:
    """Both axes, three y gridlines with values, and the axis labels."""
    bottom, plot_h = HEIGHT - BOTTOM, HEIGHT - BOTTOM - TOP
    for i in range(3):
        value = y_top * i / 2
        y = bottom - plot_h * i / 2
        parts.append(f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}"/>'
                     f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f'{escape(_fmt(value) + unit)}</text>')
    parts.append(f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}"/>'
                 f'<line class="axis" x1="{LEFT}" y1="{bottom}" x2="{WIDTH - RIGHT}" y2="{bottom}"/>'
                 f'<text class="axis-label" x="{(LEFT + WIDTH - RIGHT) / 2:.0f}" y="{HEIGHT - 6}" '
                 f'text-anchor="middle">{escape(x_label)}</text>'
                 f'<text class="axis-label" x="14" y="{(TOP + bottom) / 2:.0f}" text-anchor="middle" '
                 f'transform="rotate(-90 14 {(TOP + bottom) / 2:.0f})">{escape(y_label)}</text>')


def _x_labels(parts: list[str], labels: Sequence[str], step: float, every: int) -> None:
    for i, label in enumerate(labels):
        if i % every == 0:
            x = LEFT + step * (i + 0.5)
            parts.append(f'<text class="tick" x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">'
                         f'{escape(label)}</text>')


def stacked_bars(title: str, desc: str, categories: Sequence[str], series: Sequence[Series],
                 x_label: str, y_label: str) -> Markup:
    """One stacked column per category (an hour of the day), one colour per series (a channel)."""
    totals = [sum(s.values[i] for s in series) for i in range(len(categories))]
    top = nice_max(max(totals, default=0))
    _, parts = _open(title, desc)
    _axes(parts, x_label, y_label, top)
    step = (WIDTH - LEFT - RIGHT) / max(len(categories), 1)
    plot_h = HEIGHT - BOTTOM - TOP
    for i, category in enumerate(categories):
        y = HEIGHT - BOTTOM
        for colour, s in zip(itertools.cycle(PALETTE), series):
            value = s.values[i]
            if value <= 0:
                continue
            h = plot_h * value / top
            y -= h
            link = s.links[i] if s.links else None
            parts.append(_linked(
                f'<rect class="bar" x="{LEFT + step * i + 1:.1f}" y="{y:.1f}" width="{max(step - 2, 1):.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{escape(f"{s.name}, {category}: {_fmt(value)}")}'
                f'</title></rect>', link))
    _x_labels(parts, categories, step, every=3 if len(categories) > 12 else 1)
    return Markup("".join(parts) + "</svg>")


def legend(series: Sequence[Series]) -> list[tuple[str, str]]:
    """(name, colour) pairs matching `stacked_bars`, for an HTML legend beside the chart."""
    return [(s.name, colour) for s, colour in zip(series, itertools.cycle(PALETTE))]


def line_chart(title: str, desc: str, points: Sequence[Point], x_label: str, y_label: str,
               unit: str = "", top: float | None = None, target: float | None = None) -> Markup:
    """A line through the days that have a value, a dot per value; an optional dashed target line."""
    values = [p.value for p in points if p.value is not None]
    top = top or nice_max(max([*values, target or 0], default=0))
    _, parts = _open(title, desc)
    _axes(parts, x_label, y_label, top, unit)
    step = (WIDTH - LEFT - RIGHT) / max(len(points), 1)
    plot_h = HEIGHT - BOTTOM - TOP

    def y_of(v: float) -> float:
        return HEIGHT - BOTTOM - plot_h * min(v, top) / top

    if target is not None:
        parts.append(f'<line class="target" x1="{LEFT}" y1="{y_of(target):.1f}" x2="{WIDTH - RIGHT}" '
                     f'y2="{y_of(target):.1f}"><title>{escape(f"target {_fmt(target)}{unit}")}</title></line>')
    xy = [(LEFT + step * (i + 0.5), y_of(p.value), p) for i, p in enumerate(points) if p.value is not None]
    if len(xy) > 1:
        parts.append('<polyline class="line" fill="none" points="'
                     + " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in xy) + '"/>')
    for x, y, p in xy:
        parts.append(_linked(f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="4">'
                             f'<title>{escape(f"{p.label}: {_fmt(p.value or 0)}{unit}")}</title></circle>', p.link))
    _x_labels(parts, [p.label for p in points], step, every=max(1, math.ceil(len(points) / 10)))
    return Markup("".join(parts) + "</svg>")


def load_bars(title: str, desc: str, bars: Sequence[Bar], x_label: str) -> Markup:
    """Horizontal bars (an agent's open conversations), each over an outline of its limit (capacity)."""
    row_h, label_w = 26, 150
    height = TOP + BOTTOM + row_h * max(len(bars), 1)
    top = nice_max(max([max(b.value, b.limit or 0) for b in bars], default=0))
    _, parts = _open(title, desc, height)
    width = WIDTH - label_w - RIGHT
    for i, b in enumerate(bars):
        y = TOP + row_h * i
        parts.append(f'<text class="tick" x="{label_w - 8}" y="{y + 17}" text-anchor="end">{escape(b.label)}</text>')
        if b.limit:
            parts.append(f'<rect class="limit" x="{label_w}" y="{y + 3}" width="{width * b.limit / top:.1f}" '
                         f'height="{row_h - 6}"/>')
        over = " bar-over" if b.limit is not None and b.value > b.limit else ""
        words = f"{b.label}: {_fmt(b.value)}" + (f" of {_fmt(b.limit)}" if b.limit else "")
        parts.append(_linked(f'<rect class="bar{over}" x="{label_w}" y="{y + 6}" '
                             f'width="{max(width * b.value / top, 1):.1f}" height="{row_h - 12}">'
                             f'<title>{escape(words)}</title></rect>', b.link))
    bottom = TOP + row_h * max(len(bars), 1)
    parts.append(f'<line class="axis" x1="{label_w}" y1="{TOP}" x2="{label_w}" y2="{bottom}"/>'
                 f'<line class="axis" x1="{label_w}" y1="{bottom}" x2="{WIDTH - RIGHT}" y2="{bottom}"/>')
    for i in range(3):
        x = label_w + width * i / 2
        parts.append(f'<text class="tick" x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">{_fmt(top * i / 2)}</text>')
    parts.append(f'<text class="axis-label" x="{label_w + width / 2:.0f}" y="{height - 8}" text-anchor="middle">'
                 f'{escape(x_label)}</text>')
    return Markup("".join(parts) + "</svg>")
