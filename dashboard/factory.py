"""Build the Dash app: pages, callbacks and the REST API on one Flask server."""

from __future__ import annotations

from pathlib import Path

import dash
import dash_bootstrap_components as dbc
from sqlalchemy.engine import Engine

from dashboard import overview
from dashboard.api import create_api_blueprint, install_error_pages
from dashboard.live import LiveView

ASSETS = Path(__file__).resolve().parent.parent / "assets"


def create_dash_app(engine: Engine, live: LiveView) -> dash.Dash:
    """A Dash app serving the pages and `/api/...`; it starts no thread and opens nothing."""
    app = dash.Dash(
        __name__,
        title="TickStock Error Monitor",
        assets_folder=str(ASSETS),
        # Bootstrap is vendored in assets/: these machines have no CDN.
        external_stylesheets=[],
        suppress_callback_exceptions=True,
        update_title=None,
    )
    app.layout = dbc.Container(overview.layout(), fluid=True, className="py-3")
    overview.register_callbacks(app, engine, live)
    install_error_pages(app.server)
    app.server.register_blueprint(create_api_blueprint(engine, live))

    @app.server.get("/healthz")
    def healthz():  # type: ignore[no-untyped-def]
        return {"status": "ok"}

    return app
