"""Errors handed to the ingest from the processing channels (IngestService.submit_external):
journaled in their own spool, stored with their channel, dead letters too, counted in the
same accounting, and replayed after a restart."""

from __future__ import annotations

import orjson
from sqlalchemy import select

from ingest.service import IngestService
from live.status import conservation
from queries.schema import error_logs, rejected_messages
from tests.conftest import wait_for

PROCESSING_ERROR = {"event": "processing_error", "timestamp": "2026-01-26T21:20:00Z",
                    "source": "daily_processing", "version": "1.0",
                    "payload": {"severity": "error", "component": "indicators",
                                "message": "indicator job crashed", "run_id": "run-7",
                                "error_code": "IndicatorCrash"}}


def test_an_external_error_is_stored_with_its_channel_and_counted(
        engine, db_url, make_settings):
    ingest = IngestService(make_settings(database_url=db_url), engine)
    ingest.start()
    try:
        assert ingest.submit_external(orjson.dumps(PROCESSING_ERROR),
                                      "tickstock:indicators:progress")
        assert ingest.dead_letter_external(b"[1, 2]", "tickstock:import:progress",
                                           "unknown event shape")
        wait_for(lambda: ingest.counters()["stored"] == 1
                 and ingest.counters()["rejected"] == 1, message="1 stored, 1 dead letter")
        counters = ingest.counters()
        assert counters["received"] == 2 and counters["external_received"] == 2
        assert conservation(counters)["holds"]
        assert len(ingest.ring.since(0)) == 1
    finally:
        ingest.stop()
    with engine.connect() as conn:
        stored = conn.execute(select(error_logs.c.error_message, error_logs.c.context)).one()
        rejected = conn.execute(select(rejected_messages.c.reason, rejected_messages.c.raw)).one()
    assert stored.error_message == "indicator job crashed"
    assert stored.context["channel"] == "tickstock:indicators:progress"
    assert stored.context["run_id"] == "run-7"
    assert "tickstock:import:progress" in rejected.reason and rejected.raw == "[1, 2]"


def test_external_events_left_in_their_spool_are_stored_after_a_restart(
        engine, db_url, make_settings, tmp_path):
    settings = make_settings(database_url=db_url)
    first = IngestService(settings, engine)
    first.start()
    first.pipeline.stop()  # nothing is read from the spools any more: what arrives waits
    for i in range(3):
        first.submit_external(orjson.dumps({**PROCESSING_ERROR, "payload": {
            **PROCESSING_ERROR["payload"], "message": f"crash {i}"}}), "tickstock:monitoring")
    first.stop()
    assert first.counters()["stored"] == 0
    again = IngestService(settings, engine)
    again.start()
    try:
        wait_for(lambda: again.counters()["stored"] == 3, message="3 replayed and stored")
        assert again.counters()["replayed"] == 3
        assert conservation(again.counters())["holds"]
    finally:
        again.stop()
