"""Trends (`/trends`): counts over time by severity and by category, and the top names.

The numbers come from `queries.trends.build_trend` (pandas frames); this page only draws
them. Names from producers go into the charts escaped: plotly reads a few HTML tags in its
labels, and a symbol called `<b>X</b>` must show those characters, not bold text.
"""

from __future__ import annotations

import html as html_text
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import dash_bootstrap_components as dbc
import pandas as pd
import plotly.graph_objects as go
from dash import Dash, Input, Output, dcc, html
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


def plot_text(name: str, limit: int = 40) -> str:
    """A producer string as plotly shows it: escaped, and cut to fit a label."""
    shown = name if len(name) <= limit else name[:limit - 1] + "…"
    return html_text.escape(shown, quote=False)


def _layout(fig: go.Figure, title: str, dark: bool, height: int) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0, "font": {"size": 15}},
        template="plotly_dark" if dark else "plotly_white",
        paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)",
        margin={"l": 10, "r": 10, "t": 40, "b": 10}, height=height,
        legend={"orientation": "h", "yanchor": "top", "y": -0.28, "x": 0},
        hovermode="x unified",
    )
    return fig


def _naive_utc(index: pd.DatetimeIndex) -> list[datetime]:
    # plotly draws times as given; naive UTC and an axis titled "UTC" say what they are.
    return [moment.tz_convert("UTC").tz_localize(None).to_pydatetime() for moment in index]


def stacked(frame: pd.DataFrame, colours: dict[str, str], title: str, dark: bool) -> go.Figure:
    fig = go.Figure()
    x = _naive_utc(frame.index)
    for column in frame.columns:
        fig.add_bar(x=x, y=frame[column].tolist(), name=plot_text(str(column)),
                    marker_color=colours.get(str(column)))
    fig.update_layout(barmode="stack", bargap=0.1)
    fig.update_xaxes(title_text="Time (UTC)")
    fig.update_yaxes(title_text="errors", rangemode="tozero")
    return _layout(fig, title, dark, 380)


def ranking(frame: pd.DataFrame, title: str, colour: str, dark: bool) -> go.Figure:
    fig = go.Figure()
    if frame.empty:
        fig.add_annotation(text="none in this range", showarrow=False, x=0.5, y=0.5,
                           xref="paper", yref="paper")
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
    else:
        names = [plot_text(str(n)) for n in frame["name"]][::-1]
        full = [html_text.escape(str(n), quote=False) for n in frame["name"]][::-1]
        fig.add_bar(x=frame["count"].tolist()[::-1], y=names, orientation="h",
                    marker_color=colour, customdata=full,
                    hovertemplate="%{customdata}: %{x:,}<extra></extra>")
        fig.update_yaxes(type="category", automargin=True)
    _layout(fig, title, dark, 320)
    fig.update_layout(hovermode="closest", showlegend=False)
    return fig


def charts(trend: Trend, dark: bool) -> Any:
    if trend.empty:
        return empty_state(
            "No errors in this range",
            f"Nothing was stored {range_text(trend.start, trend.end)}. "
            "Pick a longer range, or check the monitor is listening (top right).")
    word = BUCKET_WORD[trend.bucket]
    return html.Div([
        dbc.Row([
            dbc.Col(dcc.Graph(figure=stacked(trend.by_severity, SEVERITY_COLOURS,
                                             f"By severity, {word} buckets", dark),
                              id="trend-severity", config=GRAPH_CONFIG), lg=6),
            dbc.Col(dcc.Graph(figure=stacked(trend.by_category, CATEGORY_COLOURS,
                                             f"By category, {word} buckets", dark),
                              id="trend-category", config=GRAPH_CONFIG), lg=6),
        ], className="g-3 mb-2"),
        dbc.Row([
            dbc.Col(dcc.Graph(figure=ranking(trend.top["symbol"], "Top symbols", "#4e79a7",
                                             dark),
                              id="trend-symbols", config=GRAPH_CONFIG), lg=4),
            dbc.Col(dcc.Graph(figure=ranking(trend.top["component"], "Top components",
                                             "#59a14f", dark),
                              id="trend-components", config=GRAPH_CONFIG), lg=4),
            dbc.Col(dcc.Graph(figure=ranking(trend.top["error_type"], "Top error types",
                                             "#e15759", dark),
                              id="trend-types", config=GRAPH_CONFIG), lg=4),
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
        trend = build_trend(rollup, start, end, bucket)
    except SQLAlchemyError:
        return dbc.Alert("The error store cannot be read right now.", color="warning"), ""
    seconds = time.perf_counter() - began
    summary = (f"{trend.total:,} errors · {range_text(start, end)} · "
               f"{BUCKET_WORD[trend.bucket]} buckets · {seconds:.2f} s")
    if trend.note:
        summary += f" · {trend.note}"
    return charts(trend, dark), summary


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

    range_picker_callbacks(app, ids.TRENDS_RANGE, ids.TRENDS_CUSTOM, ids.TRENDS_FROM,
                           ids.TRENDS_TO, ids.TRENDS_CUSTOM_UTC)
