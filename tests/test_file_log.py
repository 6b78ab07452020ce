"""The rotating log file: its line format, levels, one line a message, rotation."""

from __future__ import annotations

import re

from ingest.file_log import close_error_log, log_line, open_error_log, write_event
from ingest.pipeline import Pipeline
from ingest.service import IngestService
from tests.conftest import wait_for
from tests.factories import event, payload

LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} - tickstock\.error_monitor - "
                  r"(DEBUG|INFO|WARNING|ERROR|CRITICAL) - (.*)$")


def test_line_format_is_the_contracts(tmp_path):
    path = tmp_path / "deep" / "folder" / "errors.log"
    logger = open_error_log(str(path), 10_000_000, 5)
    write_event(logger, event(category="pattern", error_type="PatternDetectionError",
                              error_message="Pattern detection failed for Doji",
                              severity="critical", symbol="AAPL"))
    write_event(logger, event(category="network", error_type=None, error_message="no symbol",
                              severity="warning", symbol=None))
    close_error_log(logger)
    lines = path.read_text(encoding="utf-8").splitlines()
    first, second = (LINE.match(line) for line in lines)
    assert first and first.groups() == (
        "CRITICAL", "[pattern] PatternDetectionError: Pattern detection failed for Doji "
                    "(Symbol: AAPL)")
    assert second and second.groups() == ("WARNING", "[network] —: no symbol")


def test_a_multiline_message_stays_on_one_line():
    text = log_line(event(error_message="line one\nFAKE - CRITICAL - forged\r\n"))
    assert "\n" not in text and "\r" not in text
    assert "line one\\nFAKE" in text


def test_the_file_rotates_at_its_size_and_keeps_backups(tmp_path):
    path = tmp_path / "errors.log"
    logger = open_error_log(str(path), 2000, 2)
    for i in range(200):
        write_event(logger, event(error_message=f"message number {i}"))
    close_error_log(logger)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["errors.log", "errors.log.1", "errors.log.2"]
    assert all(p.stat().st_size <= 2000 for p in tmp_path.iterdir())
    assert "message number 199" in path.read_text(encoding="utf-8")


def test_every_received_message_is_logged_at_its_severity_when_enabled(
        make_settings, engine, db_url, redis_client, channel, tmp_path):
    settings = make_settings(database_url=db_url, log_file_enabled=True)
    ingest = IngestService(settings, engine)
    ingest.start()
    try:
        wait_for(lambda: ingest.subscriber.subscribed)
        for severity in ("debug", "info", "warning", "error", "critical"):
            redis_client.publish(channel, payload(severity=severity, error_message=severity))
        redis_client.publish(channel, b"[1, 2]")
        wait_for(lambda: ingest.pipeline.processed == 6)
    finally:
        ingest.stop()
    lines = (tmp_path / "logs" / "errors.log").read_text(encoding="utf-8").splitlines()
    levels = [LINE.match(line).group(1) for line in lines]
    assert levels == ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "ERROR"]
    assert "[rejected] JSON is an array, not an object" in lines[-1]
    # debug and info are logged only, not stored.
    assert ingest.counters()["log_only"] == 2 and ingest.counters()["stored"] == 3


def test_nothing_is_written_when_the_log_file_is_disabled(
        make_settings, engine, db_url, tmp_path):
    ingest = IngestService(make_settings(database_url=db_url), engine)
    assert ingest.error_log is None
    assert isinstance(ingest.pipeline, Pipeline)
    ingest.pipeline.process([(payload(), 0.0)])
    assert not (tmp_path / "logs").exists()
