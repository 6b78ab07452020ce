"""`python -m ingest`: the ingest as its own process, for a web side served elsewhere.

It reads ERROR_CHANNEL (or the stream), stores every error, runs the daily retention job,
and publishes the live feed (`live/feed.py`) that each web worker (`gunicorn
app:server`, or `python app.py` with INGEST_ENABLED=false) follows. Run it exactly once per
channel with INGEST_SOURCE=pubsub; with INGEST_SOURCE=stream, as many as you like share the
stream's consumer group (retention then runs in one of them at a time: a PostgreSQL
advisory lock makes the others skip).

SIGTERM and Ctrl-C stop it cleanly: reading stops, everything received is stored, the last
entries are published and the heartbeat is removed. Exit codes: 0 after a clean stop, 1 when
the store cannot be opened or SPOOL_DIR is in use by another ingest, 2 for a bad setting.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from typing import Any

import redis

from ingest.process_log import (
    configure_logging,
    mask_tree,
    redact_url,
    secret_fragments,
    stop_on_sigterm,
)
from ingest.service import IngestService
from ingest.spool_format import SpoolBusy
from ingest.stream_source import default_consumer
from jobs.service import jobs_for
from live.publisher import LiveFeedPublisher
from live.redis_client import RedisModeMismatch, check_server
from queries.engine import make_engine
from queries.schema import create_schema
from queries.search import ensure_trigram_indexes
from retention.job import RetentionJob
from settings import SettingsError, load_settings

log = logging.getLogger("tickstock.ingest")


def main() -> int:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
    except SettingsError as exc:
        log.error("bad setting: %s", exc)
        return 2
    configure_logging(settings)
    try:
        check_server(settings.redis_url)
    except RedisModeMismatch as exc:
        log.error("%s", exc)
        return 2
    engine = make_engine(settings.sqlalchemy_url)
    try:
        create_schema(engine)
        ensure_trigram_indexes(engine, settings.search_trigram_index)
    except Exception as exc:  # noqa: BLE001 - say why we cannot start, without a traceback
        log.error("cannot open the error store at %s: %s", redact_url(settings.sqlalchemy_url),
                  exc)
        return 1
    ingest = IngestService(settings, engine)
    retention = RetentionJob.from_settings(engine, settings)
    jobs = jobs_for(ingest, settings, engine)
    fragments = secret_fragments(settings)

    def status() -> dict[str, Any]:
        # What the web workers show as /api/monitor/status, as `python app.py` has it.
        return {**ingest.status(), "retention": retention.status(), "jobs": jobs.status()}

    publisher = LiveFeedPublisher(settings.redis_url, settings.error_channel, status,
                                  settings.ring_buffer_size,
                                  scrub=lambda found: mask_tree(found, fragments),
                                  slot=settings.stream_consumer
                                  or default_consumer(settings.spool_dir))
    ingest.pipeline.add_listener(publisher.publish)
    stop_on_sigterm()
    try:
        ingest.start()
    except SpoolBusy as exc:
        log.error("%s", exc)
        engine.dispose()
        return 1
    try:
        jobs.start()
        retention.start()
        publisher.start()
        log.info("ingest process running; live feed on %s", publisher.names.channel)
        while True:
            time.sleep(1.0)
            try:
                ingest.check_peers(publisher.silent_peers(settings.ingest_down_seconds))
            except redis.RedisError as exc:
                log.debug("cannot read the deployment's heartbeats: %s", exc)
    except KeyboardInterrupt:
        log.info("stopping: flushing what was received")
    finally:
        # A second Ctrl-C or SIGTERM must not cut the flush short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        retention.stop()
        jobs.stop()  # before the ingest, so all it handed over is stored
        ingest.stop()
        publisher.stop()  # after the ingest, so its last entries are published too
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
