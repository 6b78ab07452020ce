"""Overview (`/`): counts by severity over a chosen window, and the live list.

The live list is fed from the ring buffer: every tick asks only for what is newer than the
cursor (the last sequence number seen) and adds it to the top of the grid as a transaction,
so a tick costs the same with 10 rows or 10 million stored. A full reload happens only on a
filter change, when the cursor fell behind the ring (rows were missed), or when the grid
has grown past MAX_SHOWN rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, State, ctx, dcc, html, no_update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from dashboard import ids
from dashboard.components import (
    GRID_OPTIONS,
    RANGES,
    grid_columns,
    interval,
    live_row,
    store_row,
)
from dashboard.detail import open_detail_on_click
from groups.page import (
    digest,
    group_columns,
    group_grid_options,
    open_group_on_title_click,
    overview_rows,
)
from live.view import LiveView
from queries.reads import SHOWN_SEVERITIES
from queries.records import CATEGORIES
from queries.search import KeyTerm, SearchQuery, search_errors
from queries.trends import HourlyRollup

LIVE_ROWS = 200
MAX_SHOWN = 600
# Half a second: a new error waits on average a quarter of a second for the next tick, and
# at most half a second, so publish-to-visible stays under a second (bench/dashboard.py).
LIVE_TICK_MS = 500
STATS_TICK_MS = 2000
TOP_UP_WINDOW = timedelta(hours=24)
STAT_WINDOWS = ("1h", "24h", "7d", "30d")
LIST_MODES = ("events", "groups")
EVENTS_NOTE = "Live: newest first; click a row for its detail."
GROUPS_NOTE = "Groups with errors in the window, last seen first; click a title for the group."
DEFAULT_WINDOW = "24h"
_STATS = ((ids.STAT_TOTAL, "Total", None, "secondary"),
          (ids.STAT_CRITICAL, "Critical", "critical", "danger"),
          (ids.STAT_ERROR, "Error", "error", "warning"),
          (ids.STAT_WARNING, "Warning", "warning", "info"))

TopUp = Callable[[int, Sequence[str], Sequence[str]], list[dict[str, Any]]]


# -- the live list, as plain logic --------------------------------------------------------
@dataclass
class FeedUpdate:
    transaction: dict[str, Any] | None = None
    row_data: list[dict[str, Any]] | None = None
    cursor: dict[str, Any] | None = None

    @property
    def changed(self) -> bool:
        return (self.transaction is not None or self.row_data is not None
                or self.cursor is not None)


def _with_filter(cursor: dict[str, Any], categories: Sequence[str] | None,
                 severities: Sequence[str] | None) -> dict[str, Any]:
    """The cursor, remembering the filter its list was built for (none: no key)."""
    if categories or severities:
        cursor["filter"] = [sorted(categories or ()), sorted(severities or ())]
    return cursor


def _same_filter(cursor: dict[str, Any], categories: Sequence[str] | None,
                 severities: Sequence[str] | None) -> bool:
    return cursor.get("filter") == _with_filter({}, categories, severities).get("filter")


def _keeps(categories: Sequence[str] | None,
           severities: Sequence[str] | None) -> Callable[[Any], bool]:
    cats = set(categories or ())
    sevs = set(severities or ()) or set(SHOWN_SEVERITIES)
    sevs &= set(SHOWN_SEVERITIES)  # debug and info never show in the UI

    def keep(event: Any) -> bool:
        return event.severity in sevs and (not cats or event.category in cats)

    return keep


def full_list(ring: Any, categories: Sequence[str] | None, severities: Sequence[str] | None,
              top_up: TopUp | None = None) -> FeedUpdate:
    """The newest LIVE_ROWS matching rows: the ring first, then the store for older ones."""
    entries = ring.since(0)
    keep = _keeps(categories, severities)
    rows = [live_row(e.event) for e in reversed(entries) if keep(e.event)][:LIVE_ROWS]
    if len(rows) < LIVE_ROWS and top_up is not None:
        # After a restart the ring is empty while the store is not. (A row written to the
        # store before it reached the ring is possible only in theory: the pipeline fills
        # the ring right after handing the batch to the writer, which waits to batch.)
        seen = {r["id"] for r in rows}
        try:
            older = top_up(LIVE_ROWS, list(categories or ()), list(severities or ()))
        except SQLAlchemyError:
            older = []
        rows.extend(r for r in older if r["id"] not in seen)
        rows = rows[:LIVE_ROWS]
    seq = entries[-1].seq if entries else ring.last_seq
    return FeedUpdate(row_data=rows, cursor=_with_filter({"seq": seq, "shown": len(rows)},
                                                         categories, severities))


def next_rows(ring: Any, cursor: dict[str, Any] | None, categories: Sequence[str] | None,
              severities: Sequence[str] | None, top_up: TopUp | None = None) -> FeedUpdate:
    """What a tick sends: nothing, a transaction adding the newer rows on top, or a reload.

    The cursor says which filter the shown list was built for: when it is not the current
    one, the list is reloaded whatever triggered the call. (The browser drops a request in
    flight when the same callback fires again, so a tick can carry the filter change whose
    own request was dropped, with only the interval listed as the trigger.)"""
    if not cursor or cursor.get("seq") is None:
        return full_list(ring, categories, severities, top_up)
    if not _same_filter(cursor, categories, severities):
        return full_list(ring, categories, severities, top_up)
    seq = int(cursor["seq"])
    if seq > ring.last_seq:  # the monitor restarted: its sequence began again
        return full_list(ring, categories, severities, top_up)
    entries = ring.since(seq)
    if not entries:
        return FeedUpdate()
    if ring.oldest_seq > seq + 1:  # the ring moved past the cursor: rows were missed
        return full_list(ring, categories, severities, top_up)
    keep = _keeps(categories, severities)
    rows = [live_row(e.event) for e in reversed(entries) if keep(e.event)]
    new_cursor = _with_filter({"seq": entries[-1].seq, "shown": int(cursor.get("shown", 0))},
                              categories, severities)
    if not rows:
        return FeedUpdate(cursor=new_cursor)
    if len(rows) > LIVE_ROWS or new_cursor["shown"] + len(rows) > MAX_SHOWN:
        return full_list(ring, categories, severities, top_up)
    new_cursor["shown"] += len(rows)
    return FeedUpdate(transaction={"add": rows, "addIndex": 0, "async": False},
                      cursor=new_cursor)


def store_top_up(engine: Engine) -> TopUp:
    """Older rows for the live list from the store: the last TOP_UP_WINDOW only, so that a
    narrow filter never makes this a scan of the whole month."""
    def top_up(limit: int, categories: Sequence[str],
               severities: Sequence[str]) -> list[dict[str, Any]]:
        keys = [KeyTerm("severity", tuple(severities or SHOWN_SEVERITIES))]
        if categories:
            keys.append(KeyTerm("category", tuple(categories)))
        query = SearchQuery(keys=tuple(keys)).between(
            datetime.now(UTC) - TOP_UP_WINDOW, None)
        page = search_errors(engine, query, page_size=limit, with_total=False)
        return [store_row(item) for item in page.items]

    return top_up


# -- counts by severity ---------------------------------------------------------------------
def stat_values(rollup: HourlyRollup, window: str | None,
                now: datetime | None = None) -> list[str]:
    now = now or datetime.now(UTC)
    span = RANGES.get(window or DEFAULT_WINDOW, RANGES[DEFAULT_WINDOW])[1]
    counts = rollup.severity_counts(now - span, now)
    return [f"{counts['total' if severity is None else severity]:,}"
            for _, _, severity, _ in _STATS]


def stat_links(window: str | None) -> list[str]:
    window = window if window in STAT_WINDOWS else DEFAULT_WINDOW
    links = []
    for _, _, severity, _ in _STATS:
        params = {"range": window}
        if severity:
            params["q"] = f"severity:{severity}"
        links.append("/errors?" + urlencode(params))
    return links


# -- layout -------------------------------------------------------------------------------
def layout(engine: Engine, live: LiveView, rollup: HourlyRollup) -> Any:
    try:
        values = stat_values(rollup, DEFAULT_WINDOW)
    except SQLAlchemyError:
        values = ["—"] * len(_STATS)
    first = full_list(live.ring, None, None, store_top_up(engine))
    cards = [
        dbc.Card(dcc.Link(dbc.CardBody([
            html.Div(label, className="text-body-secondary small"),
            html.Div(value, id=stat_id, className=f"stat-value text-{colour}"),
        ]), href=href, id=f"{stat_id}-link"), className="stat-card shadow-sm")
        for (stat_id, label, _, colour), value, href
        in zip(_STATS, values, stat_links(DEFAULT_WINDOW), strict=True)
    ]
    window_picker = html.Div(dbc.RadioItems(
        id=ids.STATS_WINDOW, value=DEFAULT_WINDOW,
        options=[{"label": w, "value": w} for w in STAT_WINDOWS],
        className="btn-group btn-group-sm", inputClassName="btn-check",
        labelClassName="btn btn-outline-secondary", labelCheckedClassName="active"),
        className="radio-group")
    return html.Div([
        html.Div([
            html.Div(cards, id=ids.ERROR_STATS, className="d-flex flex-wrap gap-3"),
            html.Div([html.Div("Window", className="small text-body-secondary mb-1"),
                      window_picker], className="ms-auto"),
        ], className="d-flex flex-wrap align-items-end gap-3 mb-3"),
        dbc.Row([
            dbc.Col(html.Div(dbc.RadioItems(
                id=ids.OVERVIEW_LIST_MODE, value="events",
                options=[{"label": m.capitalize(), "value": m} for m in LIST_MODES],
                className="btn-group btn-group-sm", inputClassName="btn-check",
                labelClassName="btn btn-outline-secondary", labelCheckedClassName="active"),
                className="radio-group"), width="auto", className="d-flex align-items-center"),
            dbc.Col(dcc.Dropdown(
                id=ids.CATEGORY_FILTER, multi=True, placeholder="All categories",
                options=[{"label": c, "value": c} for c in CATEGORIES]), md=5, lg=4,
                id=ids.OVERVIEW_CATEGORY_COL),
            dbc.Col(dcc.Dropdown(
                id=ids.SEVERITY_FILTER, multi=True, placeholder="All severities",
                options=[{"label": s, "value": s} for s in SHOWN_SEVERITIES]), md=4, lg=3,
                id=ids.OVERVIEW_SEVERITY_COL),
            dbc.Col(html.Small(EVENTS_NOTE,
                               id=ids.LIVE_NOTE, className="text-body-secondary"),
                    className="d-flex align-items-center"),
        ], className="mb-2 g-2"),
        html.Div(dag.AgGrid(
            id=ids.ERROR_LIST, columnDefs=grid_columns(), rowData=first.row_data,
            getRowId="params.data.id", dashGridOptions=GRID_OPTIONS,
            defaultColDef={"resizable": True, "sortable": False},
            style={"height": "100%"},
        ), className="grid-box", id=ids.OVERVIEW_EVENTS_BOX),
        # The groups list: made, with its rows, when it is first asked for (see switch_list);
        # a second grid on every first paint would cost the browser as much as the first.
        html.Div(className="grid-box d-none", id=ids.OVERVIEW_GROUPS_BOX),
        # Not None: a Store holding None sets its data as it mounts, running groups_feed.
        dcc.Store(id=ids.OVERVIEW_GROUPS_TICK, data={}),
        dcc.Store(id=ids.OVERVIEW_GROUPS_DIGEST),
        dcc.Store(id=ids.LIVE_CURSOR, data=first.cursor),
        interval(ids.LIVE_INTERVAL, LIVE_TICK_MS),
        interval(ids.STATS_INTERVAL, STATS_TICK_MS),
    ])


def groups_grid(rows: list[dict[str, Any]]) -> dag.AgGrid:
    """The Overview's groups list, arriving with its rows."""
    return dag.AgGrid(
        id=ids.OVERVIEW_GROUPS, columnDefs=group_columns(compact=True), rowData=rows,
        getRowId="params.data.id", dashGridOptions=group_grid_options(selectable=False),
        defaultColDef={"resizable": True, "sortable": False}, style={"height": "100%"})


# -- callbacks ----------------------------------------------------------------------------
def register_callbacks(app: Dash, engine: Engine, live: LiveView,
                       rollup: HourlyRollup) -> None:
    top_up = store_top_up(engine)

    @app.callback(
        Output(ids.ERROR_LIST, "rowTransaction"),
        Output(ids.ERROR_LIST, "rowData"),
        Output(ids.LIVE_CURSOR, "data"),
        Input(ids.LIVE_INTERVAL, "n_intervals"),
        Input(ids.CATEGORY_FILTER, "value"),
        Input(ids.SEVERITY_FILTER, "value"),
        State(ids.LIVE_CURSOR, "data"),
        prevent_initial_call=True,
    )
    def feed(_tick, categories, severities, cursor):
        # A filter change can arrive in one request with a tick: look at every trigger.
        fired = {p.split(".")[0] for p in ctx.triggered_prop_ids}
        if fired & {ids.CATEGORY_FILTER, ids.SEVERITY_FILTER}:
            update = full_list(live.ring, categories, severities, top_up)
        else:
            update = next_rows(live.ring, cursor, categories, severities, top_up)
        if not update.changed:
            return no_update, no_update, no_update
        if update.row_data is not None:
            # A reload clears the last transaction too: dash-ag-grid applies the
            # rowTransaction prop it holds again when rowData changes, which brought rows
            # the new filter excludes back.
            return None, update.row_data, update.cursor
        return (update.transaction if update.transaction is not None else no_update,
                no_update,
                update.cursor if update.cursor is not None else no_update)

    @app.callback(
        *(Output(stat_id, "children") for stat_id, *_ in _STATS),
        *(Output(f"{stat_id}-link", "href") for stat_id, *_ in _STATS),
        Input(ids.STATS_INTERVAL, "n_intervals"),
        Input(ids.STATS_WINDOW, "value"),
        prevent_initial_call=True,
    )
    def stats(_tick, window):
        try:
            values = stat_values(rollup, window)
        except SQLAlchemyError:
            values = ["—"] * len(_STATS)
        links = stat_links(window) if f"{ids.STATS_WINDOW}.value" in ctx.triggered_prop_ids \
            else [no_update] * len(_STATS)
        return *values, *links

    open_detail_on_click(app, ids.ERROR_LIST)

    # -- the groups list (the events/groups switch) --------------------------------------
    @app.callback(
        Output(ids.OVERVIEW_EVENTS_BOX, "className"),
        Output(ids.OVERVIEW_GROUPS_BOX, "className"),
        Output(ids.OVERVIEW_CATEGORY_COL, "className"),
        Output(ids.OVERVIEW_SEVERITY_COL, "className"),
        Output(ids.LIVE_NOTE, "children"),
        Output(ids.OVERVIEW_GROUPS_BOX, "children"),
        Output(ids.OVERVIEW_GROUPS_DIGEST, "data", allow_duplicate=True),
        Input(ids.OVERVIEW_LIST_MODE, "value"),
        State(ids.STATS_WINDOW, "value"),
        prevent_initial_call=True,
    )
    def switch_list(mode, window):
        # The events grid keeps its feed while hidden, so switching back shows it current.
        if mode != "groups":
            return "grid-box", "grid-box d-none", "", "", EVENTS_NOTE, no_update, no_update
        try:
            rows = overview_rows(engine, window if window in STAT_WINDOWS else DEFAULT_WINDOW)
        except SQLAlchemyError:
            rows = []
        return ("grid-box d-none", "grid-box", "d-none", "d-none", GROUPS_NOTE,
                groups_grid(rows), digest(rows))

    # The groups list follows the counts' tick, relayed in the browser only while it is
    # shown: in events mode the Overview makes no request more than it did before.
    app.clientside_callback(
        """function (tick, stats, mode) {
            if (mode !== "groups") { return window.dash_clientside.no_update; }
            return {tick: tick, window: stats};
        }""",
        Output(ids.OVERVIEW_GROUPS_TICK, "data"),
        Input(ids.STATS_INTERVAL, "n_intervals"),
        Input(ids.STATS_WINDOW, "value"),
        State(ids.OVERVIEW_LIST_MODE, "value"),
        prevent_initial_call=True,
    )

    @app.callback(
        Output(ids.OVERVIEW_GROUPS, "rowData"),
        Output(ids.OVERVIEW_GROUPS_DIGEST, "data"),
        Input(ids.OVERVIEW_GROUPS_TICK, "data"),
        State(ids.STATS_WINDOW, "value"),
        State(ids.OVERVIEW_GROUPS_DIGEST, "data"),
        prevent_initial_call=True,
    )
    def groups_feed(_tick, window, last_digest):
        try:
            rows = overview_rows(engine, window if window in STAT_WINDOWS else DEFAULT_WINDOW)
        except SQLAlchemyError:
            return no_update, no_update
        fresh = digest(rows)
        if fresh == last_digest:
            return no_update, no_update
        return rows, fresh

    open_group_on_title_click(app, ids.OVERVIEW_GROUPS)
