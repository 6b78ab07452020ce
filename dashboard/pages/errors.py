"""Errors (`/errors`): search every stored error, page through them, export, see one in full.

`/errors?q=severity:critical&range=7d` opens with that search; `/errors/<id>` and
`/errors?id=<id>` show one error in full.

Paging follows cursors (newest, newer, older): every page is an index range scan, as fast
at row 5,000,000 as at row 50. The preset ranges ("last 24 hours") are fixed when the search
is made, so paging does not drift as time passes; "Newest" runs it again from now.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, State, ctx, dcc, html
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from dashboard import ids
from dashboard.components import (
    GRID_OPTIONS,
    grid_columns,
    range_bounds,
    range_picker,
    range_picker_callbacks,
    range_text,
    store_row,
)
from dashboard.detail import find_error, open_detail_on_click, render_detail
from live.view import LiveView
from queries.records import iso_utc, parse_iso_utc
from queries.search import SearchError, SearchTimeout, parse_query, search_errors

PAGE_SIZE = 50
RANGE_CHOICES = ("1h", "24h", "7d", "30d")
DEFAULT_RANGE = "24h"
EXAMPLE = 'timeout severity:error,critical category:database symbol:AAPL'


@dataclass
class SearchView:
    rows: list[dict[str, Any]] = field(default_factory=list)
    summary: str = ""
    problem: str | None = None
    state: dict[str, Any] = field(default_factory=dict)
    newer_disabled: bool = True
    older_disabled: bool = True
    export_href: str = "/api/errors/export.csv"


def export_href(text: str, start: datetime | None, end: datetime | None) -> str:
    params = {"q": text}
    if start is not None:
        params["from"] = iso_utc(start)
    if end is not None:
        params["to"] = iso_utc(end)
    return "/api/errors/export.csv?" + urlencode(params)


def search_step(engine: Engine, text: str | None, range_value: str | None,
                custom: dict[str, Any] | None, action: str, state: dict[str, Any] | None,
                now: datetime | None = None) -> SearchView:
    """One step of the search page: a new search, or a move to a newer or older page.

    `state` is what the previous step returned (it lives in a dcc.Store); `action` is one of
    search, newest, newer, older.
    """
    now = now or datetime.now(UTC)
    text = (text or "").strip()
    state = dict(state or {})
    key = [text, range_value, custom or {}]
    if action in ("newer", "older") and state.get("key") == key:
        cursors = list(state.get("cursors", [None]))
        if action == "older" and state.get("next"):
            cursors.append(state["next"])
        elif action == "newer" and len(cursors) > 1:
            cursors.pop()
        start, end = parse_iso_utc(state.get("start")), parse_iso_utc(state.get("end"))
        total, exact = state.get("total"), state.get("exact", False)
        fresh = False
    else:
        cursors = [None]
        start, end = range_bounds(range_value, custom, now)
        total, exact = None, False
        fresh = True
    view = SearchView(export_href=export_href(text, start, end))
    try:
        query = parse_query(text).between(start, end)
        began = time.perf_counter()
        page = search_errors(engine, query, page=len(cursors), page_size=PAGE_SIZE,
                             cursor=cursors[-1], with_total=fresh)
        seconds = time.perf_counter() - began
    except (SearchError, SearchTimeout) as exc:
        view.problem = str(exc)
        view.summary = "No search ran."
        view.state = {"key": key, "cursors": [None]}
        return view
    except SQLAlchemyError:
        view.problem = "The error store cannot be read right now."
        view.state = {"key": key, "cursors": [None]}
        return view
    if fresh:
        total, exact = page.total, page.total_exact
    view.rows = [store_row(item) for item in page.items]
    first = (len(cursors) - 1) * PAGE_SIZE + 1
    if not view.rows:
        view.summary = f"No errors match, {range_text(start, end)}."
    else:
        of = ("many" if total is None else f"{total:,}" if exact else f"{total:,}+")
        view.summary = (f"Showing {first:,}–{first + len(view.rows) - 1:,} of {of} · "
                        f"{range_text(start, end)} · newest first · {seconds:.2f} s")
    view.state = {"key": key, "cursors": cursors, "next": page.next_cursor,
                  "start": iso_utc(start) if start else None,
                  "end": iso_utc(end) if end else None, "total": total, "exact": exact}
    view.newer_disabled = len(cursors) <= 1
    view.older_disabled = not page.has_more
    return view


# -- layout -------------------------------------------------------------------------------
def detail_layout(engine: Engine, live: LiveView, error_id: str) -> Any:
    return html.Div([
        dcc.Link("← Search errors", href="/errors", className="d-inline-block mb-3"),
        render_detail(find_error(engine, live.ring, error_id), error_id, with_page_link=False),
    ], className="detail-page")


def layout(engine: Engine, query: dict[str, str]) -> Any:
    """The search page, with the first page of its results; `query` holds the URL's `q`
    and `range`, if any."""
    text = query.get("q", "")
    chosen = query.get("range", DEFAULT_RANGE)
    if chosen not in (*RANGE_CHOICES, "all"):
        chosen = DEFAULT_RANGE
    # The first search runs here, so the results come with the page rather than one request
    # after it; the search callback runs only when the user changes something.
    view = search_step(engine, text, chosen, None, "search", None)
    help_text = html.Div([
        "Free text searches message and type. Add ",
        html.Code("severity:"), " ", html.Code("category:"), " ", html.Code("symbol:"), " ",
        html.Code("component:"), " ", html.Code("type:"),
        " terms; a comma gives alternatives (", html.Code("severity:error,critical"),
        "), a leading - excludes (", html.Code("-category:network"), ").",
    ], className="small text-body-secondary search-help mb-2")
    return html.Div([
        dbc.Row([
            dbc.Col(dbc.InputGroup([
                dbc.Input(id=ids.ERROR_SEARCH, type="search", value=text, debounce=False,
                          placeholder=f"e.g. {EXAMPLE}", autoComplete="off"),
                dbc.Button("Search", id=ids.SEARCH_BUTTON, color="primary"),
            ]), lg=6),
            dbc.Col(html.Div(range_picker(ids.SEARCH_RANGE, ids.SEARCH_CUSTOM, ids.SEARCH_FROM,
                                          ids.SEARCH_TO, chosen, RANGE_CHOICES,
                                          with_all=True),
                             className="d-flex flex-wrap gap-2"), lg=True),
            dbc.Col(html.A("Export CSV", id=ids.EXPORT_LINK, href=view.export_href,
                           className="btn btn-outline-secondary", download="",
                           title="Every error of this search, as CSV (up to 1,000,000)"),
                    width="auto"),
        ], className="g-2 mb-2 align-items-start"),
        help_text,
        dbc.Alert(view.problem or "", id=ids.SEARCH_PROBLEM, color="warning",
                  is_open=view.problem is not None, className="py-2"),
        html.Div(view.summary, id=ids.SEARCH_SUMMARY, className="small mb-2", role="status"),
        html.Div(dag.AgGrid(
            id=ids.SEARCH_RESULTS, columnDefs=grid_columns(with_type=True), rowData=view.rows,
            getRowId="params.data.id", dashGridOptions=GRID_OPTIONS,
            defaultColDef={"resizable": True, "sortable": False},
            style={"height": "100%"},
        ), className="grid-box"),
        html.Div([
            dbc.Button("⇤ Newest", id=ids.PAGER_NEWEST, color="secondary", outline=True,
                       size="sm"),
            dbc.Button("← Newer", id=ids.PAGER_NEWER, color="secondary", outline=True,
                       size="sm", disabled=view.newer_disabled),
            dbc.Button("Older →", id=ids.PAGER_OLDER, color="secondary", outline=True,
                       size="sm", disabled=view.older_disabled),
        ], className="d-flex gap-2 mt-2 justify-content-end"),
        dcc.Store(id=ids.SEARCH_STATE, data=view.state),
        dcc.Store(id=ids.SEARCH_CUSTOM_UTC, data={}),
    ])


# -- callbacks ----------------------------------------------------------------------------
_ACTIONS = {ids.PAGER_NEWER: "newer", ids.PAGER_OLDER: "older", ids.PAGER_NEWEST: "newest"}


def register_callbacks(app: Dash, engine: Engine, live: LiveView) -> None:
    @app.callback(
        Output(ids.SEARCH_RESULTS, "rowData"),
        Output(ids.SEARCH_SUMMARY, "children"),
        Output(ids.SEARCH_PROBLEM, "children"),
        Output(ids.SEARCH_PROBLEM, "is_open"),
        Output(ids.SEARCH_STATE, "data"),
        Output(ids.PAGER_NEWER, "disabled"),
        Output(ids.PAGER_OLDER, "disabled"),
        Output(ids.EXPORT_LINK, "href"),
        Input(ids.SEARCH_BUTTON, "n_clicks"),
        Input(ids.ERROR_SEARCH, "n_submit"),
        Input(ids.SEARCH_RANGE, "value"),
        Input(ids.SEARCH_CUSTOM_UTC, "data"),
        Input(ids.PAGER_NEWEST, "n_clicks"),
        Input(ids.PAGER_NEWER, "n_clicks"),
        Input(ids.PAGER_OLDER, "n_clicks"),
        State(ids.ERROR_SEARCH, "value"),
        State(ids.SEARCH_STATE, "data"),
        prevent_initial_call=True,  # the layout ran the first search
    )
    def search(_b, _s, range_value, custom, _n1, _n2, _n3, text, state):
        fired = {p.split(".")[0] for p in ctx.triggered_prop_ids}
        action = next((a for i, a in _ACTIONS.items() if i in fired), "search")
        if fired & {ids.SEARCH_BUTTON, ids.ERROR_SEARCH, ids.SEARCH_RANGE, ids.SEARCH_CUSTOM_UTC}:
            action = "search"  # a new search wins over a page move sent with it
        view = search_step(engine, text, range_value,
                           custom if range_value == "custom" else None, action, state)
        return (view.rows, view.summary, view.problem or "", view.problem is not None,
                view.state, view.newer_disabled, view.older_disabled, view.export_href)

    range_picker_callbacks(app, ids.SEARCH_RANGE, ids.SEARCH_CUSTOM, ids.SEARCH_FROM,
                           ids.SEARCH_TO, ids.SEARCH_CUSTOM_UTC)

    open_detail_on_click(app, ids.SEARCH_RESULTS)
