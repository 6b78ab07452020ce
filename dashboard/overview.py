"""The Overview page: health, counts by severity, and the live list fed from the ring buffer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, State, dcc, html, no_update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from dashboard import ids
from dashboard.live import LiveView
from queries.health import health_status
from queries.reads import error_statistics
from queries.records import CATEGORIES

LIVE_ROWS = 500
_SEVERITY_COLOURS = {"critical": "danger", "error": "warning", "warning": "info"}


def layout() -> Any:
    columns = [
        {"field": "time", "headerName": "Time", "width": 190},
        {"field": "severity", "headerName": "Severity", "width": 110,
         "cellClass": "severity-cell"},
        {"field": "category", "headerName": "Category", "width": 130},
        {"field": "symbol", "headerName": "Symbol", "width": 100},
        {"field": "component", "headerName": "Component", "width": 170},
        {"field": "message", "headerName": "Message", "flex": 1},
    ]
    return html.Div([
        dbc.Row([
            dbc.Col(html.H3("TickStock Error Monitor"), width="auto"),
            dbc.Col(html.Span("Unknown", id=ids.HEALTH_STATUS,
                              className="badge fs-6 health-gray"), width="auto"),
            dbc.Col(html.Small(id=ids.MONITOR_LINE, className="text-muted"), width="auto"),
        ], align="center", className="mb-3"),
        html.Div(id=ids.ERROR_STATS, className="d-flex gap-3 mb-3"),
        dbc.Row([
            dbc.Col(dcc.Dropdown(
                id=ids.CATEGORY_FILTER, multi=True, placeholder="All categories",
                options=[{"label": c, "value": c} for c in CATEGORIES]), md=4),
            dbc.Col(dcc.Dropdown(
                id=ids.SEVERITY_FILTER, multi=True, placeholder="All severities",
                options=[{"label": s, "value": s} for s in ("warning", "error", "critical")]),
                md=4),
        ], className="mb-2"),
        dag.AgGrid(
            id=ids.ERROR_LIST, columnDefs=columns, rowData=[],
            getRowId="params.data.id",
            dashGridOptions={"animateRows": False},
            style={"height": "60vh"},
        ),
        html.Div(id=ids.NOTIFICATIONS),
        dcc.Store(id=ids.LIVE_CURSOR, data=0),
        dcc.Interval(id=ids.LIVE_INTERVAL, interval=1000),
    ])


def _row(event: Any) -> dict[str, Any]:
    return {
        "id": event.error_id,
        "time": event.timestamp.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "severity": event.severity,
        "category": event.category,
        "symbol": event.symbol or "",
        "component": event.component or "",
        "message": event.error_message,
    }


def register_callbacks(app: Dash, engine: Engine, live: LiveView) -> None:
    @app.callback(
        Output(ids.ERROR_LIST, "rowTransaction"),
        Output(ids.ERROR_LIST, "rowData"),
        Output(ids.LIVE_CURSOR, "data"),
        Input(ids.LIVE_INTERVAL, "n_intervals"),
        Input(ids.CATEGORY_FILTER, "value"),
        Input(ids.SEVERITY_FILTER, "value"),
        State(ids.LIVE_CURSOR, "data"),
    )
    def feed(_tick, categories, severities, cursor):  # type: ignore[no-untyped-def]
        from dash import ctx
        ring = live.ring
        refilter = ctx.triggered_id in (ids.CATEGORY_FILTER, ids.SEVERITY_FILTER)
        full = refilter or not cursor or cursor < ring.oldest_seq - 1

        def keep(event: Any) -> bool:
            return ((not categories or event.category in categories)
                    and (not severities or event.severity in severities))

        if full:
            rows = [_row(e.event) for e in ring.since(0) if keep(e.event)]
            rows.reverse()
            return no_update, rows[:LIVE_ROWS], ring.last_seq
        entries = ring.since(cursor)
        if not entries:
            return no_update, no_update, no_update
        rows = [_row(e.event) for e in entries if keep(e.event)]
        rows.reverse()
        if not rows:
            return no_update, no_update, entries[-1].seq
        return {"add": rows, "addIndex": 0}, no_update, entries[-1].seq

    @app.callback(
        Output(ids.HEALTH_STATUS, "children"),
        Output(ids.HEALTH_STATUS, "className"),
        Output(ids.ERROR_STATS, "children"),
        Output(ids.MONITOR_LINE, "children"),
        Input(ids.LIVE_INTERVAL, "n_intervals"),
    )
    def health(_tick):  # type: ignore[no-untyped-def]
        state = live.listening_state()
        result = health_status(engine, state.subscribed, state.store_ok)
        label = {"operational": "Operational", "degraded": "Degraded",
                 "critical": "Critical", "unknown": "Unknown"}[result.status]
        try:
            stats = error_statistics(engine, 24)
        except SQLAlchemyError:
            stats = None
        cards = []
        if stats:
            for name, value, colour in (
                    ("Total", stats["total"], "secondary"),
                    ("Critical", stats["bySeverity"]["critical"], "danger"),
                    ("Error", stats["bySeverity"]["error"], "warning"),
                    ("Warning", stats["bySeverity"]["warning"], "info")):
                cards.append(dbc.Card(dbc.CardBody([
                    html.Div(name, className="text-muted small"),
                    html.Div(str(value), className=f"fs-4 text-{colour}",
                             id=f"stat-{name.lower()}")]), className="px-2"))
        if state.subscribed:
            seen = state.last_message_at
            since = (f"last message {_ago(seen)} ago" if seen else "no message yet")
            line = f"listening; {since}"
        else:
            since = state.not_listening_since
            line = f"not listening since {since:%H:%M:%S} UTC" if since else "not listening"
        return label, f"badge fs-6 health-{result.colour}", cards, line


def _ago(moment: datetime) -> str:
    seconds = max(0, int((datetime.now(UTC) - moment) / timedelta(seconds=1)))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"
