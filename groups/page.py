"""Groups (`/groups`) and one group (`/groups/<fingerprint>`): triage of the error groups.

The list refreshes every few seconds but sends rows only when they changed (a digest of the
last rows sent lives in a dcc.Store), and it never touches `selectedRows` on a refresh, so a
selection survives it. Resolve and ignore go through groups/commands.py, the same validation
and the same transaction as `POST /api/groups/state`.

Titles, symbols, messages and tracebacks come from producers: they go to Dash as plain
strings or grid cell values (text), never as HTML or Markdown.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import ALL, ClientsideFunction, Dash, Input, Output, State, ctx, dcc, html, no_update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from dashboard import ids
from dashboard.components import GRAPH_CONFIG, GRID_OPTIONS, RANGES, severity_badge, utc_text
from dashboard.detail import detail_href
from dashboard.figures import axis_time, bar, figure
from dashboard.quick_list import quick_list
from groups import commands
from groups.commands import MAX_BULK
from groups.hook import GroupNotFound
from groups.reads import SORTS, group_detail, list_groups
from queries.validation import BadParameter

LIST_LIMIT = 200
REFRESH_MS = 5000
WINDOWS = ("1h", "24h", "7d", "30d")
DEFAULT_WINDOW = "7d"
STATE_CHOICES = ("unresolved", "regressed", "resolved", "ignored")
SORT_LABELS = {"last_seen": "Last seen", "count": "Events", "first_seen": "First seen"}
DEFAULT_IGNORE_COUNT = 100
MAX_QUERY = 200  # as the API allows
NO_GROUPS = "No groups to show"
SPARK_BARS = "▂▃▄▅▆▇█"
SPARK_EMPTY = "·"
STATE_COLOURS = {"unresolved": "warning", "regressed": "danger", "resolved": "success",
                 "ignored": "secondary"}

# The triage buttons: each is a state change of groups/commands.py (times and the count
# filled in when the button is pressed).
ACTIONS = {
    "resolve": "Resolve",
    "ignore": "Ignore for good",
    "ignore-1h": "Ignore for 1 hour",
    "ignore-24h": "Ignore for 24 hours",
    "ignore-count": "Ignore until N more events",
    "reopen": "Reopen",
}
_IGNORE_SPANS = {"ignore-1h": timedelta(hours=1), "ignore-24h": timedelta(hours=24)}


# -- rows for the grids -------------------------------------------------------------------
def sparkline(counts: Sequence[int]) -> str:
    """Hourly counts as a strip of block characters, oldest first; `·` is an hour with none.

    Each hour with errors is at least the lowest bar, so one error never looks like none."""
    top = max(counts, default=0)
    if top <= 0:
        return SPARK_EMPTY * len(counts)
    steps = len(SPARK_BARS)
    return "".join(SPARK_EMPTY if c <= 0 else SPARK_BARS[max(1, math.ceil(c * steps / top)) - 1]
                   for c in counts)


def symbols_text(count: int | None, top: Sequence[dict[str, Any]], shown: int = 3) -> str:
    """`3: AAPL, MSFT, TSLA`, `12: AAPL, MSFT, TSLA +9`, or `—` when no symbol was named."""
    count = count or 0
    if count == 0:
        return "—"
    names = [str(s["symbol"]) for s in top[:shown]]
    more = count - len(names)
    return f"{count}: {', '.join(names)}" + (f" +{more}" if more > 0 else "")


def group_row(group: dict[str, Any]) -> dict[str, Any]:
    """A grid row from a `list_groups` item."""
    hourly = group.get("hourly") or []
    return {
        "id": group["fingerprint"],
        "title": group["title"],
        "state": group["state"],
        "worstSeverity": group["worstSeverity"],
        "count": group["count"],
        "symbols": symbols_text(group.get("symbolCount"), group.get("topSymbols") or []),
        "spark": sparkline(hourly),
        "sparkTip": f"last 24 h, oldest first; busiest hour {max(hourly, default=0):,}",
        "firstSeen": group["firstSeen"],
        "lastSeen": group["lastSeen"],
        "type": group.get("type") or "",
        "component": group.get("component") or "",
    }


def window_hours(window: str | None) -> int | None:
    """Hours in a window choice (`1h`, `24h`, ...); None for all time."""
    if window in RANGES:
        return int(RANGES[window][1] / timedelta(hours=1))
    return None


def load_rows(engine: Engine, state: str | None, window: str | None, text: str | None,
              sort: str | None, limit: int = LIST_LIMIT,
              now: datetime | None = None) -> list[dict[str, Any]]:
    """The list's rows: one `list_groups` call (its 24-hour series is one query for all)."""
    q = (text or "").strip()[:MAX_QUERY] or None
    return [group_row(g) for g in list_groups(
        engine, state=state if state in STATE_CHOICES else None, hours=window_hours(window),
        q=q, sort=sort if sort in SORTS else "last_seen", limit=limit, now=now)]


def overview_rows(engine: Engine, window: str | None,
                  now: datetime | None = None) -> list[dict[str, Any]]:
    """The Overview's groups: active in the stats window, newest last_seen first."""
    return load_rows(engine, None, window, None, "last_seen", limit=100, now=now)


def digest(rows: list[dict[str, Any]]) -> str:
    return hashlib.sha1(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()


# -- columns ------------------------------------------------------------------------------
_STATE_CLASSES = {f"group-state-{s}": f"params.value == '{s}'" for s in STATE_COLOURS}
_TIME = {"valueFormatter": {"function": "localTime(params.value)"},
         "tooltipValueGetter": {"function": "params.value"}}


def group_columns(compact: bool = False) -> list[dict[str, Any]]:
    """The groups grid's columns; `compact` is the Overview's narrower set."""
    columns: list[dict[str, Any]] = [
        {"field": "state", "headerName": "State", "width": 142,
         "cellClass": "group-state-cell", "cellClassRules": _STATE_CLASSES},
        {"field": "title", "headerName": "Title", "flex": 1, "minWidth": 260,
         "tooltipField": "title", "cellClass": "group-title-link"},
        {"field": "worstSeverity", "headerName": "Worst", "width": 108,
         "cellRenderer": "SeverityBadge"},
        {"field": "count", "headerName": "Events", "width": 100, "type": "numericColumn",
         "valueFormatter": {"function": "Number(params.value).toLocaleString()"}},
    ]
    if not compact:
        columns.append({"field": "spark", "headerName": "Last 24 h", "width": 240,
                        "cellClass": "group-spark", "tooltipField": "sparkTip"})
    columns.append({"field": "symbols", "headerName": "Symbols", "width": 190,
                    "tooltipField": "symbols"})
    if not compact:
        columns.append({"field": "firstSeen", "headerName": "First seen (local)", "width": 170,
                        **_TIME})
    columns.append({"field": "lastSeen", "headerName": "Last seen (local)", "width": 170,
                    **_TIME})
    return columns


def group_grid_options(selectable: bool) -> dict[str, Any]:
    options = {**GRID_OPTIONS, "localeText": {"noRowsToShow": NO_GROUPS},
               "rowClassRules": {"group-row-regressed": "params.data.state == 'regressed'"}}
    if selectable:
        # Checkboxes only: a click on a title opens the group, it must not also select it.
        options["rowSelection"] = {"mode": "multiRow", "checkboxes": True,
                                   "headerCheckbox": True, "enableClickSelection": False}
    return options


def group_href(fingerprint: str) -> str:
    return "/groups/" + quote(fingerprint, safe="")


def open_group_on_title_click(app: Dash, grid_id: str) -> None:
    """A click on a title in the groups grid `grid_id` opens the group's page; a click
    elsewhere (a checkbox, a count) goes nowhere.

    In the browser (`openGroup` in assets/20-monitor.js): a grid sets its `cellClicked` as
    it mounts, and a server callback on it would be a request on every page load."""
    app.clientside_callback(
        ClientsideFunction("monitor", "openGroup"),
        Output(ids.URL, "href", allow_duplicate=True),
        Input(grid_id, "cellClicked"),
        prevent_initial_call=True,
    )


# -- triage -------------------------------------------------------------------------------
@dataclass(frozen=True)
class StateChange:
    ok: bool
    message: str

    @property
    def colour(self) -> str:
        return "success" if self.ok else "warning"


def _done_text(action: str, n: int, until: datetime | None, count: int | None) -> str:
    what = f"{n} group" + ("" if n == 1 else "s")
    if action == "resolve":
        return f"Resolved {what}"
    if action == "reopen":
        return f"Reopened {what}"
    if until is not None:
        return f"Ignored {what} until {utc_text(until, seconds=False)}"
    if count is not None:
        return f"Ignored {what} until {count:,} more event" + ("" if count == 1 else "s")
    return f"Ignored {what} for good"


def change_state(engine: Engine, fingerprints: Sequence[str], action: str,
                 ignore_count: Any = None, titles: Sequence[str] = (),
                 now: datetime | None = None) -> StateChange:
    """Apply a triage button to groups, validated as the API validates, all or nothing."""
    now = now or datetime.now(UTC)
    fingerprints = list(dict.fromkeys(str(f) for f in fingerprints))
    if not fingerprints:
        return StateChange(False, "Nothing changed: select one or more groups first.")
    if len(fingerprints) > MAX_BULK:
        return StateChange(False, f"Nothing changed: at most {MAX_BULK} groups at once.")
    if action not in ACTIONS:
        return StateChange(False, f"Nothing changed: unknown action {action[:40]!r}.")
    state = {"resolve": "resolved", "reopen": "unresolved"}.get(action, "ignored")
    until = now + _IGNORE_SPANS[action] if action in _IGNORE_SPANS else None
    if action == "ignore-count":
        if ignore_count in (None, ""):
            return StateChange(False, "Nothing changed: enter how many more events (N).")
        # A number input may hand over 5.0 for 5; anything else goes to the validation.
        if isinstance(ignore_count, float) and ignore_count.is_integer():
            ignore_count = int(ignore_count)
    else:
        ignore_count = None
    try:
        request = commands.state_request(state, now, until=until, count=ignore_count)
        commands.change_states(engine, fingerprints, request, now)
        until, count = request.until, request.count
    except BadParameter as exc:
        return StateChange(False, f"Nothing changed: {exc}.")
    except GroupNotFound as exc:
        return StateChange(False, f"Nothing changed: no group with fingerprint "
                                  f"{str(exc)[:64]!r} (removed by retention?).")
    except SQLAlchemyError:
        return StateChange(False, "Nothing changed: the error store cannot be written right "
                                  "now.")
    named = [t for t in titles if t][:3]
    text = _done_text(action, len(fingerprints), until, count)
    if named:
        text += ": " + "; ".join(named) + (" …" if len(fingerprints) > len(named) else "")
    return StateChange(True, text + ".")


def _clicked_action(pattern_type: str) -> str | None:
    """The triage button behind this request, if a button (not a tick) fired it."""
    for trigger in ctx.triggered:
        key, _, prop = trigger["prop_id"].rpartition(".")
        if prop != "n_clicks" or not trigger.get("value") or not key.startswith("{"):
            continue
        found = json.loads(key)
        if found.get("type") == pattern_type:
            return str(found.get("action"))
    return None


def triage_controls(pattern_type: str, count_id: str, with_reopen: bool) -> html.Div:
    """Resolve, the ignore choices with their N, and (on a group's page) Reopen."""
    def button(action: str, **kwargs: Any) -> dbc.Button:
        return dbc.Button(ACTIONS[action], id={"type": pattern_type, "action": action},
                          size="sm", **kwargs)

    ignore_items = [dbc.DropdownMenuItem(ACTIONS[a], id={"type": pattern_type, "action": a})
                    for a in ("ignore", "ignore-1h", "ignore-24h", "ignore-count")]
    parts: list[Any] = [
        button("resolve", color="success"),
        dbc.DropdownMenu(ignore_items, label="Ignore", size="sm", color="secondary",
                         className="triage-ignore"),
        dbc.InputGroup([
            dbc.InputGroupText("N ="),
            dbc.Input(id=count_id, type="number", min=1, step=1, value=DEFAULT_IGNORE_COUNT,
                      className="triage-count"),
        ], size="sm", className="w-auto"),
    ]
    if with_reopen:
        parts.append(button("reopen", color="secondary", outline=True))
    return html.Div(parts, className="d-flex flex-wrap align-items-center gap-2")


# -- badges and text ------------------------------------------------------------------------
def state_badge(state: str) -> dbc.Badge:
    return dbc.Badge(state, color=STATE_COLOURS.get(state, "secondary"),
                     className=f"group-state group-state-badge-{state}")


def state_note(group: dict[str, Any]) -> str:
    """What the state means for this group: since when, until when."""
    state = group["state"]
    if state == "ignored":
        if group.get("ignoreUntil"):
            return f"until {utc_text(group['ignoreUntil'], seconds=False)}"
        if group.get("ignoreUntilCount") is not None:
            left = max(0, group["ignoreUntilCount"] - group["count"])
            return f"until {left:,} more event" + ("" if left == 1 else "s")
        return "for good"
    if state == "resolved" and group.get("resolvedAt"):
        return f"since {utc_text(group['resolvedAt'], seconds=False)}"
    if state == "regressed" and group.get("regressedAt"):
        return (f"since {utc_text(group['regressedAt'], seconds=False)}: a new event "
                "arrived after it was resolved")
    return ""


def state_block(group: dict[str, Any]) -> list[Any]:
    note = state_note(group)
    return [state_badge(group["state"]),
            html.Span(note, className="small text-body-secondary ms-2") if note else None]


# -- the list page --------------------------------------------------------------------------
def _select(id_: str, options: list[dict[str, str]], value: str, label: str) -> Any:
    return dbc.InputGroup([dbc.InputGroupText(label), dbc.Select(
        id=id_, options=options, value=value)], size="sm", className="w-auto")


def layout(engine: Engine, params: dict[str, str]) -> Any:
    """The groups list; the URL may set `state`, `range` (1h, 24h, 7d, 30d, all), `q`, `sort`."""
    state = params.get("state", "all") if params.get("state") in STATE_CHOICES else "all"
    window = params.get("range", DEFAULT_WINDOW)
    window = window if window in (*WINDOWS, "all") else DEFAULT_WINDOW
    sort = params.get("sort", "last_seen") if params.get("sort") in SORTS else "last_seen"
    text = params.get("q", "")[:MAX_QUERY]
    try:
        rows: list[dict[str, Any]] = load_rows(engine, state, window, text, sort)
        problem = None
    except SQLAlchemyError:
        rows, problem = [], "The error store cannot be read right now."
    filters = html.Div([
        _select(ids.GROUPS_STATE, [{"label": "All", "value": "all"}] + [
            {"label": s, "value": s} for s in STATE_CHOICES], state, "State"),
        _select(ids.GROUPS_WINDOW, [{"label": RANGES[w][0], "value": w} for w in WINDOWS]
                + [{"label": "All time", "value": "all"}], window, "Seen"),
        _select(ids.GROUPS_SORT, [{"label": v, "value": k} for k, v in SORT_LABELS.items()],
                sort, "Sort"),
        dbc.Input(id=ids.GROUPS_TEXT, type="search", value=text, debounce=True,
                  placeholder="Filter by title, type or component", maxLength=MAX_QUERY,
                  size="sm", className="groups-text", autoComplete="off"),
    ], className="d-flex flex-wrap gap-2 mb-2")
    return html.Div([
        filters,
        html.Div([
            html.Span("Selected:", className="small text-body-secondary"),
            triage_controls(ids.GROUPS_ACTION, ids.GROUPS_IGNORE_N, with_reopen=True),
            html.Small(_summary(len(rows), window, sort) if problem is None else problem,
                       id=ids.GROUPS_SUMMARY, className="text-body-secondary ms-auto",
                       role="status"),
        ], className="d-flex flex-wrap align-items-center gap-2 mb-2"),
        html.Div(dbc.Alert(id=ids.GROUPS_NOTICE, is_open=False, dismissable=True,
                           className="py-2"), role="status"),
        # The rows paint as a plain table first; the grid, handed over in a store, takes
        # its place after that paint (dashboard/quick_list.py).
        html.Div([
            quick_list(rows, group_href, NO_GROUPS),
            html.Div(id=ids.GROUPS_GRID_SLOT, className="grid-slot"),
        ], className="grid-box quick-box"),
        dcc.Store(id=ids.GROUPS_GRID_SPEC, data=[dag.AgGrid(
            id=ids.GROUPS_GRID, columnDefs=group_columns(), rowData=rows,
            getRowId="params.data.id", dashGridOptions=group_grid_options(selectable=True),
            defaultColDef={"resizable": True, "sortable": False}, selectedRows=[],
            style={"height": "100%"},
        )]),
        dcc.Store(id=ids.GROUPS_DIGEST, data=digest(rows)),
        dcc.Interval(id=ids.GROUPS_INTERVAL, interval=REFRESH_MS, n_intervals=0),
    ])


def _summary(n: int, window: str | None, sort: str | None) -> str:
    span = RANGES[window][0].lower() if window in RANGES else "all time"
    many = f"the first {n:,}" if n >= LIST_LIMIT else f"{n:,}"
    return (f"{many} group{'' if n == 1 else 's'} seen {span} · by "
            f"{SORT_LABELS.get(sort or '', 'Last seen').lower()}")


# -- one group ------------------------------------------------------------------------------
def _missing(fingerprint: str) -> Any:
    return html.Div([
        html.H4("No such group"),
        html.P(["No error group has the fingerprint ", html.Code(fingerprint or "—"),
                ". Retention may have removed it with its last events, or the link is "
                "mistyped."]),
        dcc.Link("← All groups", href="/groups"),
    ], id=ids.GROUP_PAGE, className="py-4")


def chart_series(group: dict[str, Any], min_hours: int = 24) -> dict[str, Any]:
    """The hourly series the chart draws: the group's life, at most the last 7 days.

    A group younger than `min_hours` still gets that many hours, so that a new group's few
    bars stand against an axis of hours rather than filling the chart."""
    start = datetime.fromisoformat(group["hourly"]["start"].replace("Z", "+00:00"))
    counts = list(group["hourly"]["counts"])
    if group.get("firstSeen"):
        first = datetime.fromisoformat(group["firstSeen"].replace("Z", "+00:00"))
        skip = min(int((first - start) / timedelta(hours=1)), len(counts) - min_hours)
        if skip > 0:
            start, counts = start + timedelta(hours=skip), counts[skip:]
    return {"start": start.isoformat(), "counts": counts}


def hourly_figure(series: dict[str, Any] | None, dark: bool) -> dict[str, Any]:
    traces = []
    if series and series.get("counts"):
        start = datetime.fromisoformat(series["start"]).astimezone(UTC).replace(tzinfo=None)
        x = [axis_time(start + timedelta(hours=i)) for i in range(len(series["counts"]))]
        traces.append(bar(x, series["counts"], "#e15759",
                          width=3_600_000 * 0.9,  # ms: one bar per hour, whatever the data
                          hovertemplate="%{x|%Y-%m-%d %H:00} UTC: %{y:,}<extra></extra>"))
    return figure(traces, dark, 260, "Hour (UTC)", "events", bargap=0.05, showlegend=False,
                  margin={"l": 10, "r": 10, "t": 10, "b": 10})


def _events_table(events: list[dict[str, Any]]) -> Any:
    if not events:
        return html.Div("No stored events (retention may have removed them).",
                        className="text-body-secondary")
    return html.Table([
        html.Thead(html.Tr([html.Th("Time (UTC)"), html.Th("Severity"), html.Th("Symbol"),
                            html.Th("Message")])),
        html.Tbody([html.Tr([
            html.Td(utc_text(e["timestamp"]), className="text-nowrap"),
            html.Td(severity_badge(e["severity"])),
            html.Td(e.get("symbol") or "—"),
            html.Td(dcc.Link(e.get("message") or "(no message)", href=detail_href(e["id"]),
                             title=e.get("message") or ""), className="group-event-message"),
        ]) for e in events]),
    ], className="table table-sm table-hover group-events")


def _fact(label: str, value: Any) -> Any:
    return html.Div([html.Div(label, className="small text-body-secondary"),
                     html.Div(value, className="fw-semibold")], className="group-fact")


def group_layout(engine: Engine, fingerprint: str, dark: bool = False) -> Any:
    """One group: header and triage, hourly chart, symbols, recent events, latest traceback;
    the chart drawn here, in the browser's theme, so nothing runs after the page arrives."""
    try:
        group = group_detail(engine, fingerprint, events=50)
    except SQLAlchemyError:
        return html.Div(dbc.Alert("The error store cannot be read right now.",
                                  color="warning"), id=ids.GROUP_PAGE)
    if group is None:
        return _missing(fingerprint)
    about = " · ".join(str(v) for v in (group.get("type"), group.get("category"),
                                        group.get("component"), group.get("operation")) if v)
    symbols = group.get("topSymbols") or []
    traceback = group.get("latestTraceback")
    series = chart_series(group)
    return html.Div([
        dcc.Link("← All groups", href="/groups", className="d-inline-block mb-3"),
        html.H4(group["title"], className="text-break group-title"),
        html.Div(about, className="text-body-secondary small mb-2 text-break"),
        html.Div([
            html.Div(state_block(group), id=ids.GROUP_STATE,
                     className="d-flex align-items-center"),
            triage_controls(ids.GROUP_ACTION, ids.GROUP_IGNORE_N, with_reopen=True),
        ], className="d-flex flex-wrap align-items-center gap-3 mb-2"),
        html.Div(dbc.Alert(id=ids.GROUP_NOTICE, is_open=False, dismissable=True,
                           className="py-2"), role="status"),
        html.Div([
            _fact("Events", f"{group['count']:,}"),
            _fact("Worst severity", severity_badge(group["worstSeverity"])),
            _fact("First seen", utc_text(group["firstSeen"])),
            _fact("Last seen", utc_text(group["lastSeen"])),
            _fact("Symbols", f"{group.get('symbolCount') or 0:,}"),
        ], className="d-flex flex-wrap gap-4 mb-3"),
        html.H6("Events per hour"),
        dcc.Graph(id=ids.GROUP_CHART, config=GRAPH_CONFIG,
                  figure=hourly_figure(series, dark)),
        dcc.Store(id=ids.GROUP_SERIES, data=series),
        html.H6("Symbols affected", className="mt-3"),
        html.Div([
            html.Span(f"{s['symbol']} ({s['count']:,})", className="badge text-bg-light border "
                                                              "me-1 group-symbol")
            for s in symbols
        ] + ([html.Span(f"and {group['symbolCount'] - len(symbols):,} more",
                        className="small text-body-secondary")]
             if (group.get("symbolCount") or 0) > len(symbols) else [])
           if symbols else "No symbol was named in these errors.",
           id=ids.GROUP_SYMBOLS, className="mb-3"),
        html.H6(f"Recent events (newest {len(group['events'])})"),
        html.Div(_events_table(group["events"]), id=ids.GROUP_EVENTS,
                 className="mb-3 group-events-box"),
        html.Div([
            html.Span("Latest traceback", className="fw-semibold"),
            dcc.Clipboard(target_id=ids.GROUP_TRACEBACK, title="Copy the traceback",
                          className="copy-button ms-2") if traceback else None,
        ], className="d-flex align-items-center mb-1"),
        html.Pre(traceback, id=ids.GROUP_TRACEBACK, className="code-block") if traceback
        else html.Div("No traceback was sent with these errors.",
                      className="text-body-secondary"),
        dcc.Store(id=ids.GROUP_FINGERPRINT, data=fingerprint),
    ], id=ids.GROUP_PAGE, className="group-page")


# -- callbacks ------------------------------------------------------------------------------
def register_callbacks(app: Dash, engine: Engine) -> None:
    @app.callback(
        Output(ids.GROUPS_GRID, "rowData"),
        Output(ids.GROUPS_GRID, "selectedRows"),
        Output(ids.GROUPS_DIGEST, "data"),
        Output(ids.GROUPS_SUMMARY, "children"),
        Output(ids.GROUPS_NOTICE, "children"),
        Output(ids.GROUPS_NOTICE, "color"),
        Output(ids.GROUPS_NOTICE, "is_open"),
        Input(ids.GROUPS_INTERVAL, "n_intervals"),
        Input(ids.GROUPS_STATE, "value"),
        Input(ids.GROUPS_WINDOW, "value"),
        Input(ids.GROUPS_TEXT, "value"),
        Input(ids.GROUPS_SORT, "value"),
        Input({"type": ids.GROUPS_ACTION, "action": ALL}, "n_clicks"),
        State(ids.GROUPS_GRID, "selectedRows"),
        State(ids.GROUPS_IGNORE_N, "value"),
        State(ids.GROUPS_DIGEST, "data"),
        prevent_initial_call=True,
    )
    def groups_list(_tick, state, window, text, sort, _clicks, selected, ignore_n,
                    last_digest):
        action = _clicked_action(ids.GROUPS_ACTION)
        notice: tuple[Any, Any, Any] = (no_update, no_update, no_update)
        selection: Any = no_update
        if action is not None:
            chosen = selected if isinstance(selected, list) else []
            change = change_state(engine, [r["id"] for r in chosen if r.get("id")], action,
                                  ignore_n, [str(r.get("title") or "") for r in chosen])
            notice = (change.message, change.colour, True)
            if change.ok:
                selection, last_digest = [], None  # done: show the new states at once
        try:
            rows = load_rows(engine, state, window, text, sort)
        except SQLAlchemyError:
            return (no_update, selection, no_update, "The error store cannot be read right now.",
                    *notice)
        fresh = digest(rows)
        if fresh == last_digest:
            return (no_update, selection, no_update, no_update, *notice)
        return rows, selection, fresh, _summary(len(rows), window, sort), *notice

    # After the first paint, the grid takes the plain table's place.
    app.clientside_callback(
        ClientsideFunction("monitor", "mountAfterPaint"),
        Output(ids.GROUPS_GRID_SLOT, "children"),
        Input(ids.GROUPS_GRID_SPEC, "data"),
    )

    open_group_on_title_click(app, ids.GROUPS_GRID)

    @app.callback(
        Output(ids.GROUP_STATE, "children"),
        Output(ids.GROUP_NOTICE, "children"),
        Output(ids.GROUP_NOTICE, "color"),
        Output(ids.GROUP_NOTICE, "is_open"),
        Input({"type": ids.GROUP_ACTION, "action": ALL}, "n_clicks"),
        State(ids.GROUP_FINGERPRINT, "data"),
        State(ids.GROUP_IGNORE_N, "value"),
        prevent_initial_call=True,
    )
    def triage_group(_clicks, fingerprint, ignore_n):
        action = _clicked_action(ids.GROUP_ACTION)
        if action is None or not fingerprint:
            return no_update, no_update, no_update, no_update
        change = change_state(engine, [fingerprint], action, ignore_n)
        try:
            group = group_detail(engine, fingerprint, events=1)
        except SQLAlchemyError:
            group = None
        block = state_block(group) if group is not None else no_update
        return block, change.message, change.colour, True

    @app.callback(
        Output(ids.GROUP_CHART, "figure"),
        Input(ids.GROUP_SERIES, "data"),
        Input(ids.THEME_STORE, "data"),
        prevent_initial_call=True,  # the layout drew it
    )
    def draw_chart(series, theme):
        return hourly_figure(series, theme == "dark")

