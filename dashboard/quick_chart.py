"""A stacked bar chart in plain elements, for the first paint of the Trends charts.

plotly.js's first run and first draw in a fresh page cost about 200 ms of main-thread work
(its 1.2 MB evaluated, then the first draw of two charts with cold code), more than the
rest of the page together; features do not change it (no legend, no title, no hover: the
same). So the page paints these bars first, from the same counts, and the plotly charts
take over in place once the page is up (the `upgradeCharts` client function in
assets/20-monitor.js), with their hover, zoom and legend. The look follows the plotly
chart's: its height, title, margins, grid, colours and the legend below.

Elements, not an SVG image: a column is a flex stack of segments sized in percent, so the
chart fills its column's width at any size with no script, and each bucket's counts are
its tooltip. Names are React text, never markup.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from dash import html

MAX_BARS = 400  # beyond: straight to plotly (a minute-by-minute day is 1,440 bars)
TICKS = 5


def nice_step(top: int, ticks: int = TICKS) -> int:
    """The grid step for counts up to `top`: 1, 2 or 5 times a power of ten, at most
    `ticks` lines."""
    if top <= 0:
        return 1
    raw = top / ticks
    power = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    for factor in (1, 2, 5, 10):
        if factor * power >= raw:
            return max(1, int(factor * power))
    return int(10 * power)


def _tick_text(n: int) -> str:
    # As plotly writes its axis: plain up to 9,999, then "10k".
    return f"{n / 1000:g}k" if n >= 10_000 else str(n)


def _label(moment: datetime, bucket: str, previous: datetime | None) -> list[Any]:
    """A time label as plotly draws a date axis: the time, and the date under the first
    label of each day."""
    if bucket == "day":
        return [f"{moment:%b} {moment.day}"]
    lines: list[Any] = [f"{moment:%H:%M}"]
    if previous is None or previous.date() != moment.date():
        lines += [html.Br(), f"{moment:%b} {moment.day}, {moment.year}"]
    return lines


def stacked_bars(times: list[datetime], series: list[tuple[str, str, list[int]]],
                 title: str, bucket: str, chart_id: str, height: int = 380) -> html.Div:
    """Bars over `times` (naive UTC bucket starts), one stacked segment per series
    (name, colour, counts); `chart_id` names the chart for the page's upgrade."""
    totals = [sum(values[i] for _, _, values in series) for i in range(len(times))]
    highest = max(totals, default=0)
    top = max(highest * 1.05, 1.0)  # plotly's range for bars from zero: 5% above the tallest
    step = nice_step(highest)
    grid = [html.Div(html.Span(_tick_text(value), className="qc-ytick"), className="qc-grid",
                     style={"bottom": f"{100 * value / top:.3f}%"})
            for value in range(0, int(top) + 1, step)]
    columns = []
    for i, moment in enumerate(times):
        parts = [f"{name} {values[i]:,}" for name, _, values in series if values[i]]
        segments = [html.Div(className="qc-seg", style={
            "height": f"{100 * values[i] / top:.3f}%", "backgroundColor": colour})
            for _, colour, values in series if values[i]]
        columns.append(html.Div(segments, className="qc-col", title=(
            f"{moment:%Y-%m-%d %H:%M} UTC: " + (", ".join(parts) if parts else "none"))))
    every = max(1, math.ceil(len(times) / 6))
    labels, previous = [], None
    for i in range(0, len(times), every):
        labels.append(html.Span(_label(times[i], bucket, previous),
                                className="qc-xtick",
                                style={"left": f"{100 * (i + 0.5) / max(len(times), 1):.3f}%"}))
        previous = times[i]
    # Top of the stack first, as plotly lists stacked bars.
    legend = html.Ul([html.Li([html.Span(className="qc-swatch",
                                         style={"backgroundColor": colour}), name])
                      for name, colour, _ in reversed(series)], className="qc-legend")
    return html.Div([
        html.Div(title, className="qc-title"),
        html.Div([
            html.Span("errors", className="qc-ytitle"),
            html.Div([*grid, html.Div(columns, className="qc-cols")], className="qc-plot"),
            html.Div(labels, className="qc-xticks"),
            html.Div("Time (UTC)", className="qc-xtitle"),
        ], className="qc-body"),
        legend,
    ], id=chart_id, className="quick-chart", style={"height": f"{height}px"},
        role="img", **{"aria-label": f"{title}: {sum(totals):,} errors"})

