"""The navbar on every page: links, the health badge (`health-status`), what the monitor sees,
and the settings (dark theme, sound and browser notification for criticals, both off by
default and remembered by the browser)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import dash_bootstrap_components as dbc
from dash import ClientsideFunction, Dash, Input, Output, State, dcc, html, no_update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from alerts.catalog import NO_LISTENER
from alerts.store import count_firing, firing_keys
from dashboard import ids
from dashboard.components import ago, interval
from dashboard.routes import Route, nav_routes
from live.view import LiveView
from queries.health import Health, health_status

LABELS = {"operational": "Operational", "degraded": "Degraded", "critical": "Critical",
          "unknown": "Unknown"}
NAV_TICK_MS = 1000


def health_view(engine: Engine, live: LiveView,
                now: datetime | None = None) -> tuple[str, str, str, str]:
    """(badge text, badge classes, reason, monitor line) for the health badge."""
    state = live.listening_state()
    health: Health = health_status(engine, state.subscribed, state.store_ok, now,
                                   state.blind_reason)
    line = monitor_line(state, now)
    text, colour, reason = LABELS[health.status], health.colour, health.reason
    deaf = _channels_without_listener(engine)
    if deaf:
        # TickStockPL's data loader is gone: the monitor sees no error, yet jobs go nowhere.
        text += " · no listener"
        colour = "yellow" if colour == "green" else colour
        reason = (f"{reason}; " if reason else "") + \
            f"nobody listens on {', '.join(deaf)}"
    return (text, f"badge health-badge health-{colour}", reason, line)


def _channels_without_listener(engine: Engine) -> list[str]:
    try:
        return firing_keys(engine, NO_LISTENER)
    except SQLAlchemyError:
        return []


def monitor_line(state: Any, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    if not state.subscribed and state.blind_reason:
        return "ingest not running: no heartbeat"
    if not state.subscribed:
        since = state.not_listening_since
        return (f"not listening since {since:%H:%M:%S} UTC" if since
                else "not listening to the channel")
    if not state.store_ok:
        return "listening; the error store is unreachable"
    seen = state.last_message_at
    return f"listening · last message {ago(seen, now)} ago" if seen else \
        "listening · no message yet"


ALERTS_BADGE_CLASSES = "ms-1 alerts-badge"


def alerts_badge(engine: Engine) -> tuple[str, str, str]:
    """(text, classes, title) of the red count of firing alerts next to "Alerts".

    One count on the indexed `alerts.state`; hidden when nothing fires, and hidden rather
    than failing when the store (or the alerts table) cannot be read."""
    try:
        firing = count_firing(engine)
    except SQLAlchemyError:
        return "", f"{ALERTS_BADGE_CLASSES} d-none", ""
    if not firing:
        return "", f"{ALERTS_BADGE_CLASSES} d-none", ""
    return (str(firing), ALERTS_BADGE_CLASSES,
            f"{firing} alert{'s' if firing != 1 else ''} firing")


def layout(engine: Engine, live: LiveView) -> Any:
    try:
        text, classes, reason, line = health_view(engine, live)
    except Exception:  # noqa: BLE001 - the first paint must not fail; the tick will retry
        text, classes, reason, line = "Unknown", "badge health-badge health-gray", "", ""
    settings = dbc.Popover(dbc.PopoverBody([
        dbc.Switch(id=ids.THEME_SWITCH, label="Dark theme", value=False,
                   persistence=True, persistence_type="local"),
        html.Hr(className="my-2"),
        html.Div("For critical errors:", className="small text-body-secondary mb-1"),
        dbc.Switch(id=ids.SOUND_SWITCH, label="Play a sound", value=False,
                   persistence=True, persistence_type="local"),
        dbc.Switch(id=ids.BROWSER_SWITCH, label="Browser notification", value=False,
                   persistence=True, persistence_type="local"),
    ]), target=ids.SETTINGS_BUTTON, trigger="legacy", placement="bottom-end")
    badge_text, badge_classes, badge_title = alerts_badge(engine)
    badge = dbc.Badge(badge_text, id=ids.ALERTS_BADGE, color="danger", pill=True,
                      className=badge_classes, title=badge_title)
    # A plain <nav>: it takes the page's light or dark theme (dbc.Navbar fixes one).
    return html.Nav(dbc.Container([
        dcc.Link("TickStock Error Monitor", href="/", className="navbar-brand fw-semibold"),
        dbc.Nav([
            dbc.NavItem(dbc.NavLink(_link_text(route, badge), href=route.path,
                                    active="exact" if route.path == "/" else "partial"))
            for route in nav_routes()
        ], className="me-auto", navbar=True),
        html.Div([
            html.Span(line, id=ids.MONITOR_LINE, className="small text-body-secondary me-3 "
                                                           "d-none d-lg-inline"),
            html.Span(text, id=ids.HEALTH_STATUS, className=classes, title=reason,
                      role="status"),
            dbc.Button("⚙", id=ids.SETTINGS_BUTTON, color="link", size="sm",
                       className="ms-2 settings-button", title="Settings"),
            settings,
        ], className="d-flex align-items-center"),
        interval(ids.NAV_INTERVAL, NAV_TICK_MS),
    ], fluid=True, className="flex-wrap"),
        className="navbar navbar-expand-md bg-body-tertiary border-bottom mb-3")


def _link_text(route: Route, alerts_badge: Any) -> Any:
    """A nav link's text; the Alerts link carries the count of firing alerts."""
    return [route.title, alerts_badge] if route.name == "alerts" else route.title


def register_callbacks(app: Dash, engine: Engine, live: LiveView) -> None:
    @app.callback(
        Output(ids.HEALTH_STATUS, "children"),
        Output(ids.HEALTH_STATUS, "className"),
        Output(ids.HEALTH_STATUS, "title"),
        Output(ids.MONITOR_LINE, "children"),
        Input(ids.NAV_INTERVAL, "n_intervals"),
        prevent_initial_call=True,
    )
    def refresh_health(_tick):
        return health_view(engine, live)

    @app.callback(
        Output(ids.ALERTS_BADGE, "children"),
        Output(ids.ALERTS_BADGE, "className"),
        Output(ids.ALERTS_BADGE, "title"),
        Input(ids.NAV_INTERVAL, "n_intervals"),
        State(ids.ALERTS_BADGE, "children"),
        State(ids.ALERTS_BADGE, "className"),
        prevent_initial_call=True,
    )
    def refresh_alerts_badge(_tick, shown, shown_classes):
        text, classes, title = alerts_badge(engine)
        if (text, classes) == (shown or "", shown_classes):
            return no_update, no_update, no_update  # an empty answer most seconds
        return text, classes, title

    app.clientside_callback(
        ClientsideFunction("monitor", "setTheme"),
        Output(ids.THEME_STORE, "data"),
        Input(ids.THEME_SWITCH, "value"),
        State(ids.THEME_STORE, "data"),
    )
    app.clientside_callback(
        ClientsideFunction("monitor", "askNotificationPermission"),
        Output(ids.CLIENT_EFFECT, "data", allow_duplicate=True),
        Input(ids.BROWSER_SWITCH, "value"),
        prevent_initial_call=True,
    )
    app.clientside_callback(
        ClientsideFunction("monitor", "alertCritical"),
        Output(ids.CLIENT_EFFECT, "data", allow_duplicate=True),
        Input(ids.CRITICAL_SIGNAL, "data"),
        State(ids.SOUND_SWITCH, "value"),
        State(ids.BROWSER_SWITCH, "value"),
        prevent_initial_call=True,
    )
