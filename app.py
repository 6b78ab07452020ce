"""The composition root: read settings, build the pieces, wire them, start and stop them.

`python app.py` runs the dashboard, the API and the ingest in one process on HOST:PORT
(with INGEST_ENABLED=false, the web side only, following `python -m ingest`'s live feed).
`gunicorn app:server` serves the web side only, built in each worker on its first request
(docs/deploy.md).
"""

from __future__ import annotations

import logging
import sys
import threading
from dataclasses import dataclass, replace
from typing import Any

import dash
from sqlalchemy.engine import Engine

from dashboard.factory import create_dash_app
from dashboard.security import Access, install_security, refusal_reason
from ingest.process_log import configure_logging, mask_tree, secret_fragments, stop_on_sigterm
from ingest.service import IngestService
from ingest.spool_format import SpoolBusy
from jobs.service import JobsService, jobs_for
from live.follower import LiveFeedFollower
from live.redis_client import RedisModeMismatch, check_server
from queries.engine import make_engine
from queries.schema import create_schema
from queries.search import ensure_trigram_indexes
from queries.trends import HourlyRollup
from retention.job import RetentionJob
from settings import Settings, SettingsError, load_settings

log = logging.getLogger("tickstock.app")


@dataclass
class Monitor:
    settings: Settings
    engine: Engine
    ingest: IngestService | None  # None on a web-only side (INGEST_ENABLED=false)
    dash_app: dash.Dash
    follower: LiveFeedFollower | None = None  # the web-only side's copy of the live feed
    retention: RetentionJob | None = None  # with the ingest: the daily retention run
    rollup: HourlyRollup | None = None  # the count reads behind the Overview and Trends
    jobs: JobsService | None = None  # with the ingest: runs, jobs and listener checks

    def start(self) -> None:
        if self.ingest is not None:
            self.ingest.start()
        if self.jobs is not None:
            self.jobs.start()  # after the ingest: it hands errors to the ingest's spool
        if self.follower is not None:
            self.follower.start()
        if self.retention is not None:
            self.retention.start()

    def stop(self) -> None:
        """Stop reading and flush everything received to the store."""
        if self.retention is not None:
            self.retention.stop()
        if self.jobs is not None:
            self.jobs.stop()  # before the ingest, so all it handed over is stored
        if self.ingest is not None:
            self.ingest.stop()
        if self.follower is not None:
            self.follower.stop()
        self.engine.dispose()


def build(settings: Settings) -> Monitor:
    """Build the monitor; nothing is started and no thread runs until `start()`."""
    engine = make_engine(settings.sqlalchemy_url)
    ingest: IngestService | None = None
    follower: LiveFeedFollower | None = None
    retention: RetentionJob | None = None
    jobs: JobsService | None = None
    if settings.ingest_enabled:
        create_schema(engine)
        ensure_trigram_indexes(engine, settings.search_trigram_index)
        ingest = IngestService(settings, engine)
        retention = RetentionJob.from_settings(engine, settings)
        jobs = jobs_for(ingest, settings, engine)
    else:
        # Web only: `python -m ingest` owns the schema, the ring buffer and the status.
        follower = LiveFeedFollower(settings.redis_url, settings.error_channel,
                                    settings.ring_buffer_size)
    live = ingest if ingest is not None else follower
    status = _scrubbed(_with_jobs(live.status if retention is None
                                  else _with_retention(live.status, retention), jobs), settings)
    rollup = HourlyRollup(engine)
    dash_app = create_dash_app(engine, live, rollup, status,
                               run_stall_seconds=settings.run_stall_seconds)
    install_security(dash_app, access_for(settings))
    return Monitor(settings, engine, ingest, dash_app, follower, retention, rollup, jobs)



def access_for(settings: Settings) -> Access:
    """The credentials the web side asks for; ValueError for an unusable password hash."""
    return Access(settings.admin_username, settings.admin_password,
                  settings.admin_password_hash, settings.api_token)


def _with_retention(status: Any, retention: RetentionJob) -> Any:
    """The monitor's status with the retention job's under "retention"."""
    return lambda: {**status(), "retention": retention.status()}


def _with_jobs(status: Any, jobs: JobsService | None) -> Any:
    """The monitor's status with the jobs package's threads under "jobs"."""
    return status if jobs is None else (lambda: {**status(), "jobs": jobs.status()})


def _scrubbed(status: Any, settings: Settings) -> Any:
    """`status` with every secret (passwords, token, webhook URL) masked, for the API."""
    fragments = secret_fragments(settings)
    return lambda: mask_tree(status(), fragments)


class LazyWebServer:
    """`gunicorn app:server`: the web side only (it follows `python -m ingest`'s live feed),
    built in each worker on its first request, after the fork; importing this module opens
    nothing and starts no thread. Bind address checks and worker defaults: gunicorn.conf.py.
    """

    def __init__(self) -> None:
        self.monitor: Monitor | None = None
        self._lock = threading.Lock()

    def load(self) -> Any:
        """Build and start the web side once; later calls return it."""
        with self._lock:
            if self.monitor is None:
                settings = replace(load_settings(), ingest_enabled=False)
                configure_logging(settings)
                monitor = build(settings)
                monitor.start()
                self.monitor = monitor
                log.info("web worker ready, following the live feed of %s",
                         settings.error_channel)
        return self.monitor.dash_app.server

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        monitor = self.monitor
        if monitor is not None:
            return monitor.dash_app.server(environ, start_response)
        try:
            app = self.load()
        except (SettingsError, ValueError) as exc:
            log.error("bad setting: %s", exc)
            start_response("500 Internal Server Error",
                           [("Content-Type", "text/plain; charset=utf-8")])
            return [b"The monitor's settings are wrong; see its log.\n"]
        return app(environ, start_response)


server = LazyWebServer()


def main() -> int:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
        access_for(settings)
    except (SettingsError, ValueError) as exc:
        log.error("bad setting: %s", exc)
        return 2
    configure_logging(settings)
    reason = refusal_reason(settings.host, settings.admin_credentials_set,
                            settings.allow_anonymous)
    if reason is not None:
        log.error(reason)
        return 2
    try:
        check_server(settings.redis_url)
    except RedisModeMismatch as exc:
        log.error("%s", exc)
        return 2
    try:
        monitor = build(settings)
    except Exception as exc:  # noqa: BLE001 - say why we cannot start, without a traceback
        log.error("cannot open the error store at %s: %s", settings.sqlalchemy_url.split("@")[-1],
                  exc)
        return 1
    stop_on_sigterm()
    try:
        monitor.start()
    except SpoolBusy as exc:
        log.error("%s", exc)
        monitor.engine.dispose()
        return 1
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
