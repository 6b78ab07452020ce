"""Trends (`/trends`): counts over time by severity and by category, and the top names.

The numbers come from `queries.trends.build_trend` (pandas frames); this page only draws
them. Names from producers go into the charts escaped: plotly reads a few HTML tags in its
labels, and a symbol called `<b>X</b>` must show those characters, not bold text. The top
names are plain lists of bars, each name a link to the Errors page's search for it.
"""

from __future__ import annotations

import html as html_text
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import dash_bootstrap_components as dbc
import pandas as pd
from dash import ClientsideFunction, Dash, Input, Output, dcc, html
from sqlalchemy.exc import SQLAlchemyError

from dashboard import ids
from dashboard.components import (
    GRAPH_CONFIG,
    empty_state,
    range_bounds,
    range_picker,
    range_picker_callbacks,
    range_text,
)
from dashboard.figures import axis_time, bar, figure
from dashboard.quick_chart import MAX_BARS, stacked_bars
from queries.records import CATEGORIES
from queries.trends import HourlyRollup, Trend, build_trend

RANGE_CHOICES = ("1h", "6h", "24h", "7d", "30d")
DEFAULT_RANGE = "24h"
MAX_RANGE = timedelta(days=90)
REFRESH_MS = 60_000
SEVERITY_COLOURS = {"critical": "#dc3545", "error": "#fd7e14", "warning": "#0dcaf0"}
CATEGORY_COLOURS = dict(zip(CATEGORIES, (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#17becf", "#bcbd22", "#bab0ac"), strict=True))
BUCKET_WORD = {"minute": "one-minute", "hour": "hourly", "day": "daily"}
# A top name links to the Errors page's search over the closest of its ranges.
SEARCH_KEY = {"symbols": "symbol", "components": "component", "types": "type"}
SEARCH_RANGE = {"1h": "1h", "6h": "24h", "24h": "24h", "7d": "7d", "30d": "30d"}


def plot_text(name: str, limit: int = 40) -> str:
    """A producer string as plotly shows it: escaped, and cut to fit a label."""
    shown = name if len(name) <= limit else name[:limit - 1] + "…"
    return html_text.escape(shown, quote=False)


CHART_HEIGHT = 380  # px: the plotly chart and the first-paint bars that stand in for it


def _naive_utc(index: pd.DatetimeIndex) -> list[datetime]:
    # plotly draws times as given; naive UTC and an axis titled "UTC" say what they are.
    return [moment.tz_convert("UTC").tz_localize(None).to_pydatetime() for moment in index]


def stacked(frame: pd.DataFrame, colours: dict[str, str], title: str,
            dark: bool) -> dict[str, Any]:
    x = [axis_time(moment) for moment in _naive_utc(frame.index)]
    traces = [bar(x, frame[column].tolist(), colours.get(str(column)),
                  name=plot_text(str(column))) for column in frame.columns]
    return figure(traces, dark, CHART_HEIGHT, "Time (UTC)", "errors",
                  barmode="stack", bargap=0.1, hovermode="x unified",
                  title={"text": title, "x": 0, "font": {"size": 15}},
                  margin={"l": 10, "r": 10, "t": 40, "b": 10},
                  legend={"orientation": "h", "yanchor": "top", "y": -0.28, "x": 0})


def _search_link(dimension: str, name: str, search_range: str) -> str | None:
    """The Errors page searching for this name, when the search language can say it."""
    if '"' in name or "," in name or not name.strip():
        return None
    value = f'"{name}"' if any(c.isspace() for c in name) else name
    return "/errors?" + urlencode({"q": f"{SEARCH_KEY[dimension]}:{value}",
                                   "range": search_range})


def ranking(frame: pd.DataFrame, title: str, dimension: str, colour: str,
            search_range: str) -> html.Div:
    """The top names as a list of bars. Plain elements rather than a plotly chart: three
    charts fewer to draw on every load, and a name shows as text, never read as markup."""
    if frame.empty:
        body: Any = html.Div("none in this range", className="text-body-secondary small py-3")
    else:
        most = max(int(frame["count"].max()), 1)
        rows = []
        for name, count in zip(frame["name"], frame["count"], strict=True):
            name, count = str(name), int(count)
            link = _search_link(dimension, name, search_range)
            label = (dcc.Link(name, href=link, title=f"Search the errors of {name}")
                     if link else html.Span(name, title=name))
            rows.append(html.Li([
                html.Div([html.Span(label, className="ranking-name"),
                          html.Span(f"{count:,}", className="ranking-count")],
                         className="ranking-text"),
                html.Div(className="ranking-bar",
                         style={"width": f"{100 * count / most:.1f}%",
                                "backgroundColor": colour}),
            ], className="ranking-row"))
        body = html.Ol(rows, className="ranking-list", **{"aria-label": title})
    return html.Div([html.Div(title, className="ranking-title"), body],
                    id=f"trend-{dimension}", className="ranking card-body border rounded")


CHARTS = (("trend-severity", "by_severity", SEVERITY_COLOURS, "By severity"),
          ("trend-category", "by_category", CATEGORY_COLOURS, "By category"))


def quick(frame: pd.DataFrame, colours: dict[str, str], title: str, bucket: str,
          chart_id: str) -> html.Div:
    """The first-paint bars of one chart (dashboard/quick_chart.py), from the same frame."""
    series = [(str(column), colours.get(str(column), "#888888"),
               [int(v) for v in frame[column].tolist()]) for column in frame.columns]
    return stacked_bars(_naive_utc(frame.index), series, title, bucket, chart_id,
                        CHART_HEIGHT)


def chart_boxes(trend: Trend, dark: bool) -> list[Any]:
    """The two charts' columns and the store of their figures. A range of at most MAX_BARS
    buckets paints plain bars first and the plotly charts replace them in place (the
    `upgradeCharts` client function, which puts each figure in its chart's slot, in the
    order of `charts`); a longer one is drawn by plotly at once."""
    word = BUCKET_WORD[trend.bucket]
    figures, columns = {}, []
    fast = len(trend.by_severity.index) <= MAX_BARS
    for chart_id, attribute, colours, heading in CHARTS:
        frame = getattr(trend, attribute)
        title = f"{heading}, {word} buckets"
        fig = stacked(frame, colours, title, dark)
        if fast:
            figures[chart_id] = fig
            box = [quick(frame, colours, title, trend.bucket, f"{chart_id}-quick"),
                   html.Div(id=f"{chart_id}-slot", className="chart-slot")]
        else:
            box = [html.Div(dcc.Graph(figure=fig, id=chart_id, config=GRAPH_CONFIG),
                            id=f"{chart_id}-slot")]
        columns.append(dbc.Col(html.Div(box, className="chart-box"), lg=6))
    return [dbc.Row(columns, className="g-3 mb-2"),
            dcc.Store(id=ids.TRENDS_FIGURES, data={
                "charts": [chart_id for chart_id, *_ in CHARTS], "figures": figures,
                "config": GRAPH_CONFIG})]


def charts(trend: Trend, dark: bool, search_range: str = DEFAULT_RANGE) -> Any:
    if trend.empty:
        return empty_state(
            "No errors in this range",
            f"Nothing was stored {range_text(trend.start, trend.end)}. "
            "Pick a longer range, or check the monitor is listening (top right).")
    return html.Div([
        *chart_boxes(trend, dark),
        dbc.Row([
            dbc.Col(ranking(trend.top["symbol"], "Top symbols", "symbols", "#4e79a7",
                            search_range), lg=4),
            dbc.Col(ranking(trend.top["component"], "Top components", "components",
                            "#59a14f", search_range), lg=4),
            dbc.Col(ranking(trend.top["error_type"], "Top error types", "types", "#e15759",
                            search_range), lg=4),
        ], className="g-3"),
    ])


def trends_view(rollup: HourlyRollup, range_value: str | None, bucket: str | None,
                custom: dict[str, Any] | None, dark: bool,
                now: datetime | None = None) -> tuple[Any, str]:
    """(charts or an empty state, the summary line) for the chosen range and bucket."""
    now = now or datetime.now(UTC)
    start, end = range_bounds(range_value or DEFAULT_RANGE, custom, now)
    end = min(end or now, now)
    if start is None:
        start = end - timedelta(hours=24)
    if end - start > MAX_RANGE:
        start = end - MAX_RANGE
    if start >= end:
        return (dbc.Alert("The start of the range must be before its end.", color="warning"),
                "")
    began = time.perf_counter()
    try:
        trend = build_trend(rollup, start, None if end >= now else end, bucket)
    except SQLAlchemyError:
        return dbc.Alert("The error store cannot be read right now.", color="warning"), ""
    seconds = time.perf_counter() - began
    summary = (f"{trend.total:,} errors · {range_text(start, end)} · "
               f"{BUCKET_WORD[trend.bucket]} buckets · {seconds:.2f} s")
    if trend.note:
        summary += f" · {trend.note}"
    return charts(trend, dark, SEARCH_RANGE.get(range_value or DEFAULT_RANGE, "30d")), summary


def layout(rollup: HourlyRollup, dark: bool = False) -> Any:
    """The page with the default range's charts drawn: no request after it to fill them."""
    drawn, summary = trends_view(rollup, DEFAULT_RANGE, "auto", None, dark)
    bucket = dbc.Select(id=ids.TRENDS_BUCKET, value="auto", className="range-select",
                        options=[{"label": "Auto buckets", "value": "auto"},
                                 {"label": "By minute", "value": "minute"},
                                 {"label": "By hour", "value": "hour"},
                                 {"label": "By day", "value": "day"}])
    return html.Div([
        html.Div([
            *range_picker(ids.TRENDS_RANGE, ids.TRENDS_CUSTOM, ids.TRENDS_FROM, ids.TRENDS_TO,
                          DEFAULT_RANGE, RANGE_CHOICES, with_all=False),
            bucket,
            dbc.Button("Refresh", id=ids.TRENDS_REFRESH, color="secondary", outline=True),
        ], className="d-flex flex-wrap gap-2 mb-2"),
        html.Div(summary, id=ids.TRENDS_SUMMARY, className="small text-body-secondary mb-2",
                 role="status"),
        dcc.Loading(html.Div(drawn, id=ids.TRENDS_CHARTS), type="default", delay_show=300),
        dcc.Store(id=ids.TRENDS_CUSTOM_UTC, data={}),
        dcc.Interval(id=ids.TRENDS_INTERVAL, interval=REFRESH_MS),
    ])


def register_callbacks(app: Dash, rollup: HourlyRollup) -> None:
    @app.callback(
        Output(ids.TRENDS_CHARTS, "children"),
        Output(ids.TRENDS_SUMMARY, "children"),
        Input(ids.TRENDS_RANGE, "value"),
        Input(ids.TRENDS_BUCKET, "value"),
        Input(ids.TRENDS_CUSTOM_UTC, "data"),
        Input(ids.TRENDS_REFRESH, "n_clicks"),
        Input(ids.TRENDS_INTERVAL, "n_intervals"),
        Input(ids.THEME_STORE, "data"),
        prevent_initial_call=True,  # the layout drew the default range
    )
    def draw(range_value, bucket, custom, _refresh, _tick, theme):
        return trends_view(rollup, range_value, bucket,
                           custom if range_value == "custom" else None, theme == "dark")

    # After the first paint, the plotly charts take the place of the plain bars.
    app.clientside_callback(
        ClientsideFunction("monitor", "upgradeCharts"),
        *[Output(f"{chart_id}-slot", "children") for chart_id, *_ in CHARTS],
        Input(ids.TRENDS_FIGURES, "data"),
    )

    range_picker_callbacks(app, ids.TRENDS_RANGE, ids.TRENDS_CUSTOM, ids.TRENDS_FROM,
                           ids.TRENDS_TO, ids.TRENDS_CUSTOM_UTC)
