"""The composition root: read settings, build the pieces, wire them, start and stop them.

`python app.py` runs the dashboard, the API and the ingest in one process on HOST:PORT.
"""

from __future__ import annotations

import logging
import signal
import sys
from dataclasses import dataclass

import dash
from sqlalchemy.engine import Engine

from dashboard.factory import create_dash_app
from dashboard.groups_api import create_groups_blueprint
from dashboard.monitor_api import create_monitor_blueprint
from ingest.service import IngestService
from queries.engine import make_engine
from queries.schema import create_schema
from settings import Settings, SettingsError, load_settings

log = logging.getLogger("tickstock.app")


@dataclass
class Monitor:
    settings: Settings
    engine: Engine
    ingest: IngestService
    dash_app: dash.Dash

    def start(self) -> None:
        self.ingest.start()

    def stop(self) -> None:
        """Stop reading and flush everything received to the store."""
        self.ingest.stop()
        self.engine.dispose()


def build(settings: Settings) -> Monitor:
    """Build the monitor; nothing is started and no thread runs until `start()`."""
    engine = make_engine(settings.sqlalchemy_url)
    create_schema(engine)
    ingest = IngestService(settings, engine)
    dash_app = create_dash_app(engine, ingest)
    dash_app.server.register_blueprint(create_monitor_blueprint(ingest.status))
    dash_app.server.register_blueprint(create_groups_blueprint(engine))
    return Monitor(settings, engine, ingest, dash_app)


def _raise_keyboard_interrupt(_signum, _frame) -> None:  # type: ignore[no-untyped-def]
    raise KeyboardInterrupt


def main() -> int:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
    except SettingsError as exc:
        log.error("bad setting: %s", exc)
        return 2
    try:
        monitor = build(settings)
    except Exception as exc:  # noqa: BLE001 - say why we cannot start, without a traceback
        log.error("cannot open the error store at %s: %s", settings.sqlalchemy_url.split("@")[-1],
                  exc)
        return 1
    # SIGTERM (systemd, docker stop) gets the same clean stop as Ctrl-C.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    monitor.start()
    log.info("dashboard on http://%s:%d/", settings.host, settings.port)
    try:
        from waitress import serve

        serve(monitor.dash_app.server, host=settings.host, port=settings.port, threads=8,
              ident="tickstock-error-monitor", _quiet=True)
    except KeyboardInterrupt:
        log.info("stopping: flushing what was received")
    finally:
        monitor.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
