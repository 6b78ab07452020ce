"""Pieces several pages share: the error grid's columns, badges, times, the range picker.

Every string that came from a producer is passed to Dash as a plain string (React renders it
as text) or as a grid cell value (AG Grid renders it as text): never as HTML or Markdown.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import dash_bootstrap_components as dbc
from dash import ClientsideFunction, Dash, Input, Output, dcc, html

from queries.records import iso_utc, parse_iso_utc

SEVERITY_COLOURS = {"critical": "danger", "error": "warning", "warning": "info",
                    "info": "secondary", "debug": "secondary"}

RANGES = {  # value -> (label, span); "all" and "custom" have no fixed span
    "1h": ("Last hour", timedelta(hours=1)),
    "6h": ("Last 6 hours", timedelta(hours=6)),
    "24h": ("Last 24 hours", timedelta(hours=24)),
    "7d": ("Last 7 days", timedelta(days=7)),
    "30d": ("Last 30 days", timedelta(days=30)),
}


def grid_columns(with_type: bool = False) -> list[dict[str, Any]]:
    """Columns of the live list and the search results; times show in the browser's zone."""
    columns: list[dict[str, Any]] = [
        {"field": "timestamp", "headerName": "Time (local)", "width": 175,
         "valueFormatter": {"function": "localTime(params.value)"},
         "tooltipValueGetter": {"function": "params.value"}},
        {"field": "severity", "headerName": "Severity", "width": 112,
         "cellRenderer": "SeverityBadge"},
        # Test traffic is listed, marked "test" beside its category (it counts nowhere).
        {"field": "category", "headerName": "Category", "width": 125,
         "cellRenderer": "CategoryCell"},
        {"field": "symbol", "headerName": "Symbol", "width": 95},
        {"field": "component", "headerName": "Component", "width": 165},
    ]
    if with_type:
        columns.append({"field": "type", "headerName": "Type", "width": 190,
                        "valueFormatter": {"function": "params.value || '—'"}})
    columns.append({"field": "message", "headerName": "Message", "flex": 1, "minWidth": 250,
                    "tooltipField": "message"})
    return columns


# Plotly's mode bar without the tools that make no sense on a bar chart of counts.
GRAPH_CONFIG = {"displaylogo": False,
                "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d"]}
GRID_OPTIONS = {
    "animateRows": False,
    "suppressCellFocus": True,
    "tooltipShowDelay": 600,
    "localeText": {"noRowsToShow": "No errors to show"},
    "rowHeight": 34,
}


def severity_badge(severity: str, className: str = "") -> dbc.Badge:
    known = severity if severity in SEVERITY_COLOURS else "x"
    return dbc.Badge(severity, color=SEVERITY_COLOURS.get(severity, "secondary"),
                     className=f"sev-badge sev-{known} {className}".strip())


def skew_text(seconds: Any) -> str:
    """A clock skew as "6 h 0 min behind" / "12 s ahead" (the producer's clock against ours)."""
    if not isinstance(seconds, (int, float)):
        return "—"
    side = "ahead" if seconds > 0 else "behind"
    size = abs(seconds)
    if size < 1:
        return "in step"
    if size < 120:
        return f"{size:.0f} s {side}"
    if size < 7200:
        return f"{size / 60:.0f} min {side}"
    return f"{int(size // 3600)} h {int(size % 3600 // 60)} min {side}"


def utc_text(moment: datetime | str | None, seconds: bool = True) -> str:
    """A time for people, labelled UTC: `2025-01-26 21:20:00 UTC`."""
    moment = moment if isinstance(moment, datetime) else parse_iso_utc(moment)
    if moment is None:
        return "—"
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")


def ago(moment: datetime, now: datetime | None = None) -> str:
    seconds = max(0, int(((now or datetime.now(UTC)) - moment) / timedelta(seconds=1)))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def range_picker(range_id: str, custom_id: str, from_id: str, to_id: str, default: str,
                 choices: tuple[str, ...], with_all: bool) -> list[Any]:
    """A preset range select, and from/to inputs (browser-local) shown for "custom"."""
    options = [{"label": RANGES[v][0], "value": v} for v in choices]
    if with_all:
        options.append({"label": "All time", "value": "all"})
    options.append({"label": "Custom…", "value": "custom"})
    return [
        dbc.Select(id=range_id, options=options, value=default, className="range-select"),
        html.Div(id=custom_id, className="d-none gap-2 align-items-center custom-range",
                 children=[
                     html.Span("from", className="text-body-secondary small"),
                     dbc.Input(id=from_id, type="datetime-local", size="sm"),
                     html.Span("to", className="text-body-secondary small"),
                     dbc.Input(id=to_id, type="datetime-local", size="sm"),
                     html.Span("(your local time)", className="text-body-secondary small"),
                 ]),
    ]


def range_picker_callbacks(app: Dash, range_id: str, custom_id: str, from_id: str, to_id: str,
                           utc_id: str) -> None:
    """Show the from/to inputs for "custom"; the browser turns their local times into UTC
    (the `toUtcRange` client function) into the store `utc_id`."""

    # The layout starts on a preset range, its inputs hidden: nothing to run on load.
    @app.callback(Output(custom_id, "className"), Input(range_id, "value"),
                  prevent_initial_call=True)
    def show_custom(range_value):
        base = "gap-2 align-items-center custom-range"
        return f"d-flex {base}" if range_value == "custom" else f"d-none {base}"

    app.clientside_callback(
        ClientsideFunction("monitor", "toUtcRange"),
        Output(utc_id, "data"),
        Input(from_id, "value"),
        Input(to_id, "value"),
        prevent_initial_call=True,
    )


def range_bounds(value: str | None, custom: dict[str, Any] | None,
                 now: datetime) -> tuple[datetime | None, datetime | None]:
    """(start, end) in UTC for a range choice; custom bounds arrive as ISO UTC from the page."""
    if value in RANGES:
        return now - RANGES[value][1], None
    if value == "custom":
        custom = custom or {}

        def parse(key: str) -> datetime | None:
            raw = custom.get(key)
            if not raw:
                return None
            return datetime.fromisoformat(str(raw).replace("Z", "+00:00")).astimezone(UTC)

        return parse("from"), parse("to")
    return None, None


def range_text(start: datetime | None, end: datetime | None) -> str:
    if start is None and end is None:
        return "all time"
    if end is None:
        return f"since {utc_text(start, seconds=False)}"
    if start is None:
        return f"before {utc_text(end, seconds=False)}"
    return f"{utc_text(start, seconds=False)} – {utc_text(end, seconds=False)}"


def empty_state(title: str, hint: str) -> html.Div:
    return html.Div([html.Div(title, className="fs-5"),
                     html.Div(hint, className="text-body-secondary")],
                    className="empty-state text-center py-5")


def live_row(event: Any) -> dict[str, Any]:
    """A grid row from a ring-buffer event (queries.records.ErrorEvent)."""
    return {
        "id": event.error_id,
        "timestamp": iso_utc(event.timestamp.astimezone(UTC)),
        "severity": event.severity,
        "category": event.category,
        "symbol": event.symbol or "",
        "component": event.component or "",
        "type": event.error_type or "",
        "message": event.error_message,
        "test": event.is_test,
    }


def store_row(item: dict[str, Any]) -> dict[str, Any]:
    """A grid row from a search result item."""
    return {
        "id": item["id"],
        "timestamp": item["timestamp"],
        "severity": item["severity"],
        "category": item["category"],
        "symbol": item.get("symbol") or "",
        "component": item.get("component") or "",
        "type": item.get("type") or "",
        "message": item["message"],
        "test": bool(item.get("test")),
    }


def interval(id_: str, milliseconds: int) -> dcc.Interval:
    return dcc.Interval(id=id_, interval=milliseconds, n_intervals=0)
