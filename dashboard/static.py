"""Two things about Dash's own bundles that make every page load lighter.

- Plotly: dcc.Graph loads plotly.js (4.8 MB, every trace type) when a page first shows a
  chart. Our charts are bar charts only, so the same URL answers with plotly.js's "basic"
  build of the same version (1.2 MB: scatter, bar, pie), vendored in dashboard/vendor/
  (`npm pack plotly.js-basic-dist-min@4.1.1`; MIT, see its LICENSE there). Use another
  trace type and it must come back: the chart would show "trace type not found".
- Our assets: Dash names them with their file's time (`/assets/x.css?m=<mtime>`), so a
  changed file has a new URL; under that name they are kept for a year and not asked about
  again. Revalidated (Flask's default), the stylesheets and the script that every page
  waits for before it runs cost three round trips on each load, behind whatever the server
  was answering at the time.
- Revalidation: Dash's lazily loaded chunks (dash-ag-grid's 870 kB async-community.js, the
  dropdown's) have no fingerprint and no Cache-Control, and the security headers turn a
  missing one into `no-store`, which made the browser fetch them whole on every load. They
  get `no-cache` instead: kept, and revalidated by ETag (a 304).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import dash
import flask

PLOTLY_JS = "/_dash-component-suites/plotly/package_data/plotly.min.js"
PLOTLY_BASIC = Path(__file__).resolve().parent / "vendor" / "plotly-basic-4.1.1.min.js"
SUITES = "/_dash-component-suites/"
ASSETS = "/assets/"
IMMUTABLE = "max-age=31536000, immutable"


@cache
def _plotly_basic() -> bytes:
    return PLOTLY_BASIC.read_bytes()


def install(app: dash.Dash) -> None:
    """Serve the small plotly.js, keep fingerprinted assets for good and unfingerprinted
    bundles revalidating."""
    plotly_url = app.get_relative_path(PLOTLY_JS)
    suites = app.get_relative_path(SUITES)
    assets = app.get_relative_path(ASSETS)

    @app.server.before_request
    def small_plotly() -> flask.Response | None:
        if flask.request.path != plotly_url:
            return None
        response = flask.Response(_plotly_basic(), mimetype="application/javascript")
        response.cache_control.no_cache = True
        response.add_etag()
        return response.make_conditional(flask.request)

    @app.server.after_request
    def revalidate(response: flask.Response) -> flask.Response:
        # Runs before or after the security headers, depending on which was installed first.
        path = flask.request.path
        if (path.startswith(assets) and flask.request.args.get("m")
                and response.status_code in (200, 304)):
            response.headers["Cache-Control"] = IMMUTABLE
            return response
        if (path.startswith(suites) and response.headers.get("ETag")
                and response.headers.get("Cache-Control", "no-store") == "no-store"):
            response.headers["Cache-Control"] = "no-cache"
        return response
