"""The route table: every page's path, title and layout, once. The router (factory.py), the
navbar's links and the browser tab's title are all made from it.

A route whose path ends in `/` is a prefix: the rest of the path (URL-decoded) is its one
parameter, as in `/groups/<fingerprint>`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, unquote

from dash import dcc, html
from sqlalchemy.engine import Engine

from alerts import page as alerts
from dashboard.pages import errors, monitor, overview, trends
from groups import page as groups
from jobs import page as jobs
from live.status import StatusSource
from live.view import LiveView
from queries.trends import HourlyRollup

APP_TITLE = "TickStock Error Monitor"


@dataclass(frozen=True)
class Wiring:
    """What the layouts are built from: handed over by create_dash_app."""

    engine: Engine
    live: LiveView
    rollup: HourlyRollup
    status: StatusSource
    stall: timedelta  # when the Jobs page shows a silent running run as stalled


# (wiring, the URL's parameters, whether the browser shows the dark theme) -> the layout.
Layout = Callable[[Wiring, dict[str, str], bool], Any]


@dataclass(frozen=True)
class Route:
    name: str
    path: str
    title: str
    layout: Layout
    param: str | None = None  # the parameter a prefix route takes from the rest of the path
    in_nav: bool = True

    @property
    def prefix(self) -> bool:
        return self.path.endswith("/") and self.path != "/"


ROUTES = (
    Route("overview", "/", "Overview",
          lambda w, p, dark: overview.layout(w.engine, w.live, w.rollup)),
    Route("errors", "/errors", "Errors", lambda w, p, dark: errors.layout(w.engine, p)),
    Route("detail", "/errors/", "Error",
          lambda w, p, dark: errors.detail_layout(w.engine, w.live, p["id"]), param="id",
          in_nav=False),
    Route("trends", "/trends", "Trends", lambda w, p, dark: trends.layout(w.rollup, dark)),
    Route("groups", "/groups", "Groups", lambda w, p, dark: groups.layout(w.engine, p)),
    Route("group", "/groups/", "Group",
          lambda w, p, dark: groups.group_layout(w.engine, p["fingerprint"], dark),
          param="fingerprint", in_nav=False),
    Route("alerts", "/alerts", "Alerts", lambda w, p, dark: alerts.layout(w.engine, p)),
    Route("jobs", "/jobs", "Jobs", lambda w, p, dark: jobs.layout(w.engine, w.stall)),
    Route("monitor", "/monitor", "Monitor", lambda w, p, dark: monitor.layout(w.status)),
)
BY_NAME = {route.name: route for route in ROUTES}
# `/errors?id=...` is the detail too: links made before errors had paths of their own.
QUERY_ALIASES = {("/errors", "id"): "detail"}


def resolve(pathname: str | None, search: str | None) -> tuple[str, dict[str, str]]:
    """(route name, parameters) for a URL; `missing` with the path when nothing lives there."""
    path = (pathname or "/").rstrip("/") or "/"
    query = {k: v[-1] for k, v in parse_qs((search or "").lstrip("?")).items()}
    for (alias_path, key), name in QUERY_ALIASES.items():
        if path == alias_path and query.get(key):
            return name, {key: query[key]}
    for route in ROUTES:
        if route.prefix and path.startswith(route.path) and route.param:
            return route.name, {route.param: unquote(path[len(route.path):])}
        if not route.prefix and path == route.path:
            return route.name, query
    return "missing", {"path": path}


def render(wiring: Wiring, pathname: str | None, search: str | None,
           dark: bool = False) -> Any:
    """The layout of the page at this URL, with its data, or a "page not found"."""
    name, params = resolve(pathname, search)
    if name in BY_NAME:
        return BY_NAME[name].layout(wiring, params, dark)
    return html.Div([html.H4("Page not found"),
                     html.P(["Nothing lives at ", html.Code(params["path"]), "."]),
                     dcc.Link("Go to the overview", href="/")], className="py-4")


def nav_routes() -> list[Route]:
    return [route for route in ROUTES if route.in_nav]


def title_script() -> str:
    """The clientside callback that names the browser tab after the page."""
    exact = {r.path: r.title for r in ROUTES if not r.prefix}
    prefixes = [[r.path, r.title] for r in ROUTES if r.prefix]
    script = """function (pathname) {
        var exact = EXACT, prefixes = PREFIXES;
        var key = (pathname || "/").replace(/\\/+$/, "") || "/";
        var name = exact[key] || "";
        for (var i = 0; !name && i < prefixes.length; i++) {
            if (key.indexOf(prefixes[i][0]) === 0) { name = prefixes[i][1]; }
        }
        document.title = (name ? name + " · " : "") + APP_TITLE;
        return window.dash_clientside.no_update;
    }"""
    return (script.replace("EXACT", json.dumps(exact)).replace("PREFIXES", json.dumps(prefixes))
            .replace("APP_TITLE", json.dumps(APP_TITLE)))
