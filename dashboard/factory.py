"""Build the Dash app: the shell (navbar, notices, detail dialog), the pages, the REST API.

Routing is one dcc.Location and one callback that returns the page's layout, from the route
table (dashboard/routes.py); each page module holds its layout and registers its own
callbacks on the app it is given, so every `create_dash_app` call builds a fresh, independent
app (tests build many).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import dash
import dash_bootstrap_components as dbc
import flask
from dash import Input, Output, dcc, html
from sqlalchemy.engine import Engine

from alerts import page as alerts
from alerts.api import create_alerts_blueprint
from dashboard import detail, ids, navbar, notices, routes, static
from dashboard.api import create_api_blueprint
from dashboard.compression import compression_settings
from dashboard.errors import install_error_handlers
from dashboard.monitor_api import create_monitor_blueprint
from dashboard.pages import errors, monitor, overview, trends
from groups import page as groups
from groups.api import create_groups_blueprint
from jobs import page as jobs
from jobs.api import create_jobs_blueprint
from live.status import StatusSource
from live.view import LiveView
from queries.trends import HourlyRollup

log = logging.getLogger("tickstock.dashboard")
ASSETS = Path(__file__).resolve().parent.parent / "assets"
PAGE_COOKIE = "tsem_page"  # the page being loaded, for its layout request (first_page)
PAGE_COOKIE_SECONDS = 60
THEME_COOKIE = "tsem_theme"  # set by assets/20-monitor.js (setTheme): "dark" or "light"
GRAPH_CHUNK = "dash/dcc/async-graph.js"
CHART_PAGES = ("trends", "group")
ASYNC_CHUNKS = ("dash_ag_grid/async-community.js", "dash/dcc/async-dropdown.js")


def first_page(wiring: routes.Wiring) -> tuple[str, str, Any] | None:
    """(pathname, search, layout) of the page this browser is loading, or None.

    Dash fetches the layout from `/_dash-layout`, which does not say which page it is for;
    the page's own answer left that in a cookie (remember_page), so the layout can carry the
    page with its data and nothing waits for the router's request. A wrong guess (two tabs
    loading at the same instant) is put right in the browser: see check_page."""
    try:
        raw = flask.request.cookies.get(PAGE_COOKIE)
    except RuntimeError:  # outside a request: Dash checking the layout
        return None
    if not raw:
        return None
    url = urlsplit(unquote(raw))
    pathname, search = url.path or "/", f"?{url.query}" if url.query else ""
    try:
        return pathname, search, routes.render(wiring, pathname, search, theme() == "dark")
    except Exception:  # the router's request renders it, errors and all
        log.warning("could not render %s into the layout", pathname, exc_info=True)
        return None


def theme() -> str:
    """The theme this browser shows ("dark" or "light"), from the cookie setTheme keeps."""
    try:
        return "dark" if flask.request.cookies.get(THEME_COOKIE) == "dark" else "light"
    except RuntimeError:  # outside a request
        return "light"


def shell(engine: Engine, live: LiveView, wiring: routes.Wiring) -> Any:
    """The layout around every page, with the page itself when it is known; a function, so
    each page load gets fresh health and fresh data."""
    first = first_page(wiring)
    if first is None:
        # The location fills itself in as it mounts, which runs the router.
        location = dcc.Location(id=ids.URL, refresh="callback-nav")
        page, rendered = None, None
    else:
        # Given its path, the location sets nothing as it mounts: no router request.
        location = dcc.Location(id=ids.URL, refresh="callback-nav", pathname=first[0],
                                search=first[1])
        page, rendered = first[2], first[0] + first[1]
    return html.Div([
        location,
        navbar.layout(engine, live),
        dbc.Container(html.Div(page, id=ids.PAGE), fluid=True, className="pb-4"),
        dcc.Store(id=ids.PAGE_RENDERED, data=rendered),
        *notices.layout(live),
        dbc.Modal([
            dbc.ModalHeader(dbc.ModalTitle("Error detail")),
            dbc.ModalBody(html.Div(id=ids.DETAIL_BODY)),
        ], id=ids.DETAIL_MODAL, is_open=False, size="xl", scrollable=True),
        dcc.Store(id=ids.THEME_STORE, data=theme()),
        # Not None: a Store holding None sets its data as it mounts, which is a change.
        dcc.Store(id=ids.DETAIL_CLICK, data={}),
        dcc.Store(id=ids.CLIENT_EFFECT, data=None),
    ])


def create_dash_app(engine: Engine, live: LiveView, rollup: HourlyRollup | None = None,
                    status: StatusSource | None = None,
                    run_stall_seconds: float = 600) -> dash.Dash:
    """A Dash app serving the pages and `/api/...`; it starts no thread and opens nothing.

    `rollup` (the count reads behind the Overview's cards and the Trends page, from the
    count tables) may be handed in; by default the app makes its own. `status` is the monitor's
    status as `/api/monitor/status` serves it (secrets masked), for the Monitor page; by
    default `live.status`. `run_stall_seconds` (RUN_STALL_SECONDS) is when the Jobs page
    shows a silent running run as stalled.
    """
    # Compression (flask-compress) is configured on the Flask app before Dash switches it on:
    # the bundles (dash-ag-grid alone is 2.2 MB) go out about 4x smaller, compressed once.
    server = flask.Flask(__name__)
    server.config.update(compression_settings())
    app = dash.Dash(
        __name__,
        server=server,
        compress=True,
        title=routes.APP_TITLE,
        assets_folder=str(ASSETS),
        # Bootstrap is vendored in assets/: these machines have no CDN.
        external_stylesheets=[],
        suppress_callback_exceptions=True,
        update_title=None,
    )
    rollup = rollup or HourlyRollup(engine)
    status = status or live.status
    stall = timedelta(seconds=run_stall_seconds)
    wiring = routes.Wiring(engine, live, rollup, status, stall)
    app.layout = lambda: shell(engine, live, wiring)
    # The grid and the dropdowns live in chunks Dash loads only once the layout has arrived;
    # preloading them lets the browser fetch and compile them while it waits for the layout.
    preload = "".join(
        f'<link rel="preload" href="{app.get_relative_path(f"/_dash-component-suites/{c}")}" '
        'as="script">' for c in ASYNC_CHUNKS)
    app.index_string = app.index_string.replace("{%css%}", "{%css%}\n        " + preload, 1)
    # Pages with charts also wait for dcc.Graph's chunk and then plotly.js, one after the
    # other once the layout is in: on those pages the browser starts both at once, early.
    chart_preload = "".join(
        f'<link rel="preload" href="{app.get_relative_path(path)}" as="script">'
        for path in (f"/_dash-component-suites/{GRAPH_CHUNK}", static.PLOTLY_JS))
    plain_index = app.interpolate_index

    def interpolate_index(**parts: Any) -> str:
        name, _ = routes.resolve(flask.request.path, flask.request.query_string.decode())
        if name in CHART_PAGES:
            parts["css"] = f"{parts.get('css', '')}\n        {chart_preload}"
        return plain_index(**parts)

    app.interpolate_index = interpolate_index  # per request: the index knows its page

    @app.server.after_request
    def remember_page(response: flask.Response) -> flask.Response:
        # The page's own answer says which page the layout request that follows is for.
        request = flask.request
        if (request.method == "GET" and response.status_code == 200
                and response.mimetype == "text/html"):
            response.set_cookie(PAGE_COOKIE, quote(request.full_path.rstrip("?")),
                                max_age=PAGE_COOKIE_SECONDS, httponly=True, samesite="Strict",
                                path=app.get_relative_path("/_dash-layout"))
        return response

    # The page arrives with its data: this is the one request a page load makes before it
    # shows. The browser's theme comes as a cookie (the setTheme client function sets it),
    # so charts are drawn once, in the right theme.
    @app.callback(
        Output(ids.PAGE, "children"),
        Input(ids.URL, "pathname"),
        Input(ids.URL, "search"),
        prevent_initial_call=True,  # the layout carries the first page (or the location
    )                               # sets its path as it mounts, which runs this)
    def route(pathname: str | None, search: str | None) -> Any:
        return routes.render(wiring, pathname, search, theme() == "dark")

    # The layout was made for the page its cookie named; if that was another tab's page,
    # setting the location to where this tab is runs the router for the right one.
    app.clientside_callback(
        """function (rendered) {
            var here = window.location.pathname + window.location.search;
            var no = window.dash_clientside.no_update;
            if (rendered === null || rendered === undefined || rendered === here) {
                return [no, no];
            }
            return [window.location.pathname, window.location.search];
        }""",
        Output(ids.URL, "pathname", allow_duplicate=True),
        Output(ids.URL, "search", allow_duplicate=True),
        Input(ids.PAGE_RENDERED, "data"),
        prevent_initial_call="initial_duplicate",
    )

    # Only a link inside a dialog can navigate while one is open (their backdrops cover the
    # page): following it is the user's answer to the dialog. In the browser: dcc.Location
    # sets its pathname once as it mounts, which would make this a request on every load.
    app.clientside_callback(
        "function (_pathname, _search) { return [false, false]; }",
        Output(ids.DETAIL_MODAL, "is_open", allow_duplicate=True),
        Output(ids.CRITICAL_DIALOG, "is_open", allow_duplicate=True),
        Input(ids.URL, "pathname"),
        Input(ids.URL, "search"),
        prevent_initial_call=True,
    )

    app.clientside_callback(
        routes.title_script(),
        Output(ids.CLIENT_EFFECT, "data", allow_duplicate=True),
        Input(ids.URL, "pathname"),
        prevent_initial_call="initial_duplicate",
    )

    navbar.register_callbacks(app, engine, live)
    detail.register_callbacks(app, engine, live)
    notices.register_callbacks(app, live)
    overview.register_callbacks(app, engine, live, rollup)
    errors.register_callbacks(app, engine, live)
    trends.register_callbacks(app, rollup)
    groups.register_callbacks(app, engine)
    alerts.register_callbacks(app, engine)
    monitor.register_callbacks(app, status)
    jobs.register_callbacks(app, engine, stall)
    install_error_handlers(app.server)
    static.install(app)
    # Every blueprint, registered here and nowhere else.
    app.server.register_blueprint(create_api_blueprint(engine, live, rollup))
    app.server.register_blueprint(create_monitor_blueprint(status))
    app.server.register_blueprint(create_groups_blueprint(engine))
    app.server.register_blueprint(create_alerts_blueprint(engine))
    app.server.register_blueprint(create_jobs_blueprint(engine, run_stall_seconds))

    @app.server.get("/healthz")
    def healthz():
        return {"status": "ok"}

    return app
