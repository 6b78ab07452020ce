"""One error in full: fields, message, traceback (monospace, copyable), context as JSON.

Everything here is producer text and goes to Dash as plain strings, which React renders as
text: a message of `<img src=x onerror=alert(1)>` shows those characters and runs nothing.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, dcc, html, no_update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from dashboard import ids
from dashboard.components import severity_badge, skew_text, utc_text
from queries.reads import get_error
from queries.records import iso_utc


def ring_error(ring: Any, error_id: str) -> dict[str, Any] | None:
    """An error still only in the ring buffer (not written yet), in `get_error`'s shape."""
    for entry in reversed(ring.since(0)):
        event = entry.event
        if event.error_id == error_id:
            return {
                "id": event.error_id, "type": event.error_type,
                "message": event.error_message, "severity": event.severity,
                "category": event.category, "symbol": event.symbol,
                "component": event.component, "operation": event.operation,
                "source": event.source, "traceback": event.error_traceback,
                "context": event.context, "timestamp": iso_utc(event.timestamp),
                "createdAt": None, "receivedAt": iso_utc(event.received_at),
                "clockSkewSeconds": round(event.clock_skew_seconds, 3), "test": event.is_test,
            }
    return None


def find_error(engine: Engine, ring: Any, error_id: str) -> dict[str, Any] | None:
    try:
        found = get_error(engine, error_id)
    except SQLAlchemyError:
        found = None
    return found or ring_error(ring, error_id)



# Below this the producer's clock and ours agree as far as anyone needs to know.
SHOWN_SKEW_SECONDS = 5


def skew_note(skew: Any) -> str | None:
    """"the producer's clock is 6 h 0 min behind" when the skew is worth saying, else None."""
    if not isinstance(skew, (int, float)) or abs(skew) < SHOWN_SKEW_SECONDS:
        return None
    return f"the producer's clock is {skew_text(skew)}"


def detail_href(error_id: str) -> str:
    return "/errors/" + quote(error_id, safe="")


def _field(label: str, value: Any) -> html.Tr:
    shown = "—" if value in (None, "") else str(value)
    return html.Tr([html.Th(label, className="text-body-secondary fw-normal pe-3"),
                    html.Td(shown, className="text-break")])


def _skew_field(skew: Any) -> html.Tr | None:
    note = skew_note(skew)
    if note is None:
        return None
    return html.Tr([html.Th("Clock skew", className="text-body-secondary fw-normal pe-3"),
                    html.Td(note, className="text-warning-emphasis clock-skew")])


def _copyable(block_id: str, text: str, label: str) -> html.Div:
    return html.Div([
        html.Div([
            html.Span(label, className="fw-semibold"),
            dcc.Clipboard(target_id=block_id, title=f"Copy the {label.lower()}",
                          className="copy-button ms-2"),
        ], className="d-flex align-items-center mb-1"),
        html.Pre(text, id=block_id, className="code-block"),
    ], className="mb-3")


def context_json(context: Any) -> str:
    try:
        return json.dumps(context if context is not None else {}, indent=2, ensure_ascii=False,
                          sort_keys=True, default=str)
    except (TypeError, ValueError):
        return str(context)


def render_detail(error: dict[str, Any] | None, error_id: str = "",
                  element_id: str = ids.ERROR_DETAIL, with_page_link: bool = True) -> html.Div:
    """The detail of one error (a `get_error` dict), or a not-found notice.

    `element_id` names the container and prefixes the copyable blocks' ids, so the detail
    page and the detail dialog can both be in the DOM.
    """
    if error is None:
        return html.Div(dbc.Alert(
            ["No stored error has the id ", html.Code(error_id or "—"),
             ". It may be newer than the last write (try again in a second), or older than "
             "the retention period."], color="warning"), id=element_id)
    title = error.get("type") or "—"
    header = html.Div([
        severity_badge(error["severity"], className="me-2 fs-6"),
        html.Span(title, className="fs-5 fw-semibold text-break me-2"),
        html.Span(error["category"], className="badge text-bg-light border me-2"),
        html.Span("test", className="badge text-bg-info me-2 test-badge",
                  title="Test traffic: no alert, no health change, not counted")
        if error.get("test") else None,
        html.A("Open as a page", href=detail_href(error["id"]), className="small ms-auto")
        if with_page_link else None,
    ], className="d-flex align-items-center flex-wrap gap-1 mb-3")
    fields = html.Table(html.Tbody([
        _field("Time", utc_text(error["timestamp"])),
        _field("Received", utc_text(error.get("receivedAt"))),
        _skew_field(error.get("clockSkewSeconds")),
        _field("Stored", utc_text(error.get("createdAt"))),
        _field("Error id", error["id"]),
        _field("Component", error.get("component")),
        _field("Operation", error.get("operation")),
        _field("Symbol", error.get("symbol")),
        _field("Source", error.get("source")),
    ]), className="table table-sm w-auto mb-3 detail-fields")
    message = html.Div([
        html.Div("Message", className="fw-semibold mb-1"),
        html.Div(error.get("message") or "", className="detail-message mb-3"),
    ])
    traceback = error.get("traceback")
    parts = [header, message, fields]
    if traceback:
        parts.append(_copyable(f"{element_id}-traceback", traceback, "Traceback"))
    else:
        parts.append(html.Div("No traceback was sent with this error.",
                              className="text-body-secondary mb-3"))
    parts.append(_copyable(f"{element_id}-context", context_json(error.get("context")), "Context"))
    return html.Div(parts, id=element_id, className="error-detail")


def open_detail_on_click(app: Dash, grid_id: str) -> None:
    """A click on a row of the grid `grid_id` (rows keyed by error_id) opens the error's
    detail in the shell's dialog.

    The click goes through the browser first: a grid sets its `cellClicked` as it mounts,
    and a server callback on it would be a request (or two) on every page load."""
    app.clientside_callback(
        """function (clicked) {
            return (clicked && clicked.rowId) ? clicked : window.dash_clientside.no_update;
        }""",
        Output(ids.DETAIL_CLICK, "data", allow_duplicate=True),
        Input(grid_id, "cellClicked"),
        prevent_initial_call=True,
    )


def register_callbacks(app: Dash, engine: Engine, live: Any) -> None:
    """The detail dialog, opened from a row click relayed by open_detail_on_click."""

    @app.callback(
        Output(ids.DETAIL_MODAL, "is_open", allow_duplicate=True),
        Output(ids.DETAIL_BODY, "children", allow_duplicate=True),
        Input(ids.DETAIL_CLICK, "data"),
        prevent_initial_call=True,
    )
    def open_detail(clicked):
        error_id = (clicked or {}).get("rowId")
        if not error_id:
            return no_update, no_update
        return True, render_detail(find_error(engine, live.ring, str(error_id)),
                                   str(error_id), element_id=ids.MODAL_DETAIL)
