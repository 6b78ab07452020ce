"""Jobs and runs through the real app, real Redis and a real webhook receiver: nobody
listening, a job nobody picks up, a stalled run, a failed run, a healthy run, a missed
scheduled start (on a clock passed in), linking, dead letters and a restart."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from sqlalchemy import select

import app as app_module
from alerts.rules import AlertEngine
from dashboard import navbar
from jobs.service import JobsService
from queries.schema import error_logs, rejected_messages
from tests.conftest import jobs_names, wait_for
from tests.factories import payload

FAST = {"jobs_check_interval_ms": 100, "no_listener_seconds": 1,
        "job_submitted_timeout_seconds": 2, "run_stall_seconds": 2}


@pytest.fixture
def names(channel):
    return jobs_names(channel)


def _start(make_settings, db_url, receiver, **overrides):
    monitor = app_module.build(make_settings(
        database_url=db_url, alert_webhook_url=receiver.url, **{**FAST, **overrides}))
    monitor.start()
    wait_for(lambda: monitor.jobs.reader.subscribed and monitor.ingest.subscriber.subscribed,
             message="the processing channels and the error channel")
    return monitor


def _envelope(event: str, **payload_fields) -> bytes:
    return orjson.dumps({"event": event, "timestamp": datetime.now(UTC).isoformat(),
                         "source": "TickStockPL", "version": "1.0", "payload": payload_fields})


def _fired(receiver, rule: str) -> list[str]:
    return [b["kind"] for b in receiver.bodies if b.get("rule") == rule]


def test_a_job_nobody_picks_up_fires_no_listener_then_job_stuck_each_once(
        make_settings, db_url, receiver, redis_client, names):
    monitor = _start(make_settings, db_url, receiver)
    client = monitor.dash_app.server.test_client()
    try:
        job_id = str(uuid.uuid4())
        reached = redis_client.publish(names["listener"], orjson.dumps(
            {"job_id": job_id, "job_type": "historical_load", "symbols": ["AAPL"]}))
        assert reached == 0  # the monitor itself is not a subscriber there
        redis_client.set(f"{names['prefix']}.jobs.status:{job_id}", orjson.dumps(
            {"status": "submitted", "progress": 0, "message": "queued",
             "submitted_at": datetime.now(UTC).isoformat()}), ex=60)
        wait_for(lambda: _fired(receiver, "no_listener") == ["firing"], timeout=10,
                 message="no_listener on the webhook")
        wait_for(lambda: _fired(receiver, "job_stuck") == ["firing"], timeout=10,
                 message="job_stuck on the webhook")
        cycles = monitor.jobs.watch.cycles
        wait_for(lambda: monitor.jobs.watch.cycles >= cycles + 10, message="10 more checks")
        assert _fired(receiver, "no_listener") == ["firing"]
        assert _fired(receiver, "job_stuck") == ["firing"]
        (job,) = client.get("/api/jobs").get_json()
        assert job["jobId"] == job_id and job["status"] == "submitted"
        rules = {a["rule"] for a in client.get("/api/alerts").get_json()}
        assert {"no_listener", "job_stuck"} <= rules
        text, _classes, reason, _line = navbar.health_view(monitor.engine, monitor.ingest)
        assert text.endswith("· no listener") and names["listener"] in reason
        # A data loader subscribes: the no_listener alert resolves, once.
        loader = redis_client.pubsub()
        loader.subscribe(names["listener"])
        wait_for(lambda: _fired(receiver, "no_listener") == ["firing", "resolved"],
                 message="no_listener resolved")
        loader.close()
    finally:
        monitor.stop()


def test_the_monitor_never_counts_as_a_subscriber_of_the_data_loader_channel(
        make_settings, db_url, receiver, redis_client, names):
    monitor = _start(make_settings, db_url, receiver)
    try:
        assert redis_client.pubsub_numsub(names["listener"]) == [
            (names["listener"].encode(), 0)]
        assert redis_client.publish(names["listener"], b"{}") == 0  # patterns count here
        assert redis_client.publish(f"{names['prefix']}:import:progress", b"{}") == 1
    finally:
        monitor.stop()


def _run(redis_client, names, run_id: str, rate: float = 99.5,
         complete: bool = True) -> None:
    prefix = names["prefix"]
    redis_client.publish(f"{prefix}:processing:status",
                         _envelope("processing_started", run_id=run_id))
    redis_client.publish(f"{prefix}:import:started",
                         _envelope("import_started", run_id=run_id, total_symbols=10))
    redis_client.publish(f"{prefix}:import:progress", _envelope(
        "import_progress", run_id=run_id, completed_symbols=5, total_symbols=10,
        percent_complete=50.0, eta_seconds=30))
    if not complete:
        return
    redis_client.publish(f"{prefix}:import:completed", _envelope(
        "import_completed", run_id=run_id, total_symbols=10, success_rate=rate,
        duration_seconds=12.5))
    redis_client.publish(f"{prefix}:processing:status",
                         _envelope("processing_completed", run_id=run_id, duration_seconds=20))


def test_a_run_whose_events_stop_fires_run_stalled(
        make_settings, db_url, receiver, redis_client, names):
    monitor = _start(make_settings, db_url, receiver)
    client = monitor.dash_app.server.test_client()
    try:
        _run(redis_client, names, "run-stall", complete=False)
        wait_for(lambda: _fired(receiver, "run_stalled") == ["firing"], timeout=10,
                 message="run_stalled")
        run = client.get("/api/runs/run-stall").get_json()
        assert run["shownState"] == "stalled" and run["phases"][0]["percent"] == 50.0
        # It talks again: resolved.
        redis_client.publish(f"{names['prefix']}:import:progress", _envelope(
            "import_progress", run_id="run-stall", completed_symbols=6, total_symbols=10))
        wait_for(lambda: _fired(receiver, "run_stalled") == ["firing", "resolved"],
                 message="run_stalled resolved")
    finally:
        monitor.stop()


def test_a_run_completing_with_success_rate_80_fires_run_failed_and_a_healthy_one_nothing(
        make_settings, db_url, receiver, redis_client, names):
    monitor = _start(make_settings, db_url, receiver)
    client = monitor.dash_app.server.test_client()
    try:
        _run(redis_client, names, "run-healthy")
        wait_for(lambda: client.get("/api/runs/run-healthy").status_code == 200
                 and client.get("/api/runs/run-healthy").get_json()["state"] == "completed",
                 message="the healthy run completed")
        _run(redis_client, names, "run-80", rate=80)
        wait_for(lambda: _fired(receiver, "run_failed") == ["firing"], timeout=10,
                 message="run_failed")
        cycles = monitor.jobs.watch.cycles
        wait_for(lambda: monitor.jobs.watch.cycles >= cycles + 30, message="3 s of checks")
        assert [(b["rule"], b["key"]) for b in receiver.bodies
                if b["rule"].startswith("run_")] == [("run_failed", "run-80")]
        healthy = client.get("/api/runs/run-healthy").get_json()
        assert healthy["durationSeconds"] == 20 and healthy["phases"][0]["successRate"] == 99.5
        assert healthy["medianDurationSeconds"] == 20
        assert [r["runId"] for r in client.get("/api/runs").get_json()] == [
            "run-80", "run-healthy"]
        assert client.get("/api/runs/nope").status_code == 404
    finally:
        monitor.stop()


def test_errors_are_linked_and_unknown_shapes_dead_lettered_with_their_channel(
        make_settings, db_url, receiver, redis_client, names, channel):
    monitor = _start(make_settings, db_url, receiver)
    client = monitor.dash_app.server.test_client()
    prefix = names["prefix"]
    try:
        _run(redis_client, names, "run-linked", complete=False)
        redis_client.publish(channel, payload(error_id="linked-1",
                                              context={"run_id": "run-linked"}))
        redis_client.publish(f"{prefix}:indicators:progress", _envelope(
            "processing_error", run_id="run-linked", severity="error",
            message="indicator crashed", error_id="linked-2"))
        redis_client.publish(f"{prefix}:monitoring", orjson.dumps(
            {"event": "ALERT_TRIGGERED", "level": "critical", "message": "disk full",
             "error_id": "alert-1"}))
        redis_client.publish(f"{prefix}:monitoring", orjson.dumps(
            {"event": "ALERT_TRIGGERED", "level": "info", "message": "fyi"}))
        redis_client.publish(f"{prefix}:monitoring", b"not json, ignored here")
        redis_client.publish(f"{prefix}:cache:progress", b"[1, 2, 3]")
        wait_for(lambda: monitor.ingest.counters()["stored"] == 3
                 and monitor.ingest.counters()["rejected"] == 1,
                 message="3 stored, 1 dead letter")
        wait_for(lambda: {e["id"] for e in client.get("/api/runs/run-linked").get_json()[
            "errors"]} == {"linked-1", "linked-2"}, message="both errors linked")
        with monitor.engine.connect() as conn:
            channels = dict(conn.execute(select(error_logs.c.error_id, error_logs.c.context))
                            .all())
            reason = conn.execute(select(rejected_messages.c.reason)).scalar_one()
        assert channels["linked-2"]["channel"] == f"{prefix}:indicators:progress"
        assert channels["alert-1"]["channel"] == f"{prefix}:monitoring"
        assert f"{prefix}:cache:progress" in reason
        assert monitor.ingest.counters()["external_received"] == 3
    finally:
        monitor.stop()


def test_a_restart_rebuilds_running_runs_and_open_jobs(
        make_settings, db_url, receiver, redis_client, names):
    key = f"{names['prefix']}.jobs.status:job-r"
    redis_client.set(key, orjson.dumps({"status": "running", "progress": 40}), ex=60)
    first = _start(make_settings, db_url, receiver, run_stall_seconds=600)
    try:
        _run(redis_client, names, "run-r", complete=False)
        wait_for(lambda: first.jobs.watch.cycles > 2 and not first.jobs.watch._saved_runs == {}
                 and "run-r" in first.jobs.watch._saved_runs, message="the run saved")
    finally:
        first.stop()
    redis_client.delete(key)  # expired while the monitor was down
    again = _start(make_settings, db_url, receiver, run_stall_seconds=600)
    client = again.dash_app.server.test_client()
    try:
        assert again.jobs.runs.runs["run-r"].phases["import"].percent == 50.0
        wait_for(lambda: client.get("/api/jobs").get_json()[0]["status"] == "lost",
                 message="the job whose key went is lost")
        wait_for(lambda: _fired(receiver, "job_stuck") == ["firing"], message="job_stuck")
    finally:
        again.stop()


def test_a_missed_scheduled_start_fires_run_missed_on_a_clock_passed_in(
        make_settings, engine):
    # Monday 2026-11-02, 16:10 in New York is 21:10 UTC.
    now = [datetime(2026, 11, 2, 20, 0, tzinfo=UTC)]
    notices: list = []
    # The listener check runs too (nobody listens in a test): only run_missed counts here.
    alerts = AlertEngine(clock=lambda: now[0], on_notice=lambda n: n.alert["rule"] == "run_missed"
                         and notices.append(n))
    jobs = JobsService(make_settings(run_missed_grace_seconds=600), engine, alerts,
                       submit_error=lambda raw, channel: True,
                       dead_letter=lambda raw, channel, reason: True, clock=lambda: now[0])
    jobs.missed.watching(now[0])
    for minutes in (0, 70, 79):  # 21:10 + 9 min: still within the grace
        now[0] = datetime(2026, 11, 2, 20, 0, tzinfo=UTC) + timedelta(minutes=minutes)
        jobs.watch.check()
    assert notices == []
    now[0] = datetime(2026, 11, 2, 21, 21, tzinfo=UTC)
    jobs.watch.check()
    jobs.watch.check()
    assert [(n.kind, n.alert["rule"], n.alert["key"]) for n in notices] == [
        ("firing", "run_missed", "2026-11-02T21:10:00Z")]
    # A late start resolves it.
    jobs.reader.handle(_envelope("processing_started", run_id="late"),
                       "tickstock:processing:status")
    jobs.watch.check()
    assert [n.kind for n in notices] == ["firing", "resolved"]
    jobs.watch.stop()


def test_errors_on_the_processing_and_monitoring_channels_are_stored_once_and_alerted(
        make_settings, db_url, receiver, redis_client, names):
    """Issue 15's check: errors that never reach the error channel are stored and alerted."""
    monitor = _start(make_settings, db_url, receiver)
    client = monitor.dash_app.server.test_client()
    prefix = names["prefix"]
    try:
        redis_client.publish(f"{prefix}:import:completed", _envelope(
            "processing_error", severity="critical", component="data_import",
            error_code="API_RATE_LIMIT", message="Polygon import aborted: rate limit",
            error_id="import-failed-1"))
        redis_client.publish(f"{prefix}:monitoring", orjson.dumps(
            {"event_type": "ALERT_TRIGGERED", "timestamp": datetime.now(UTC).isoformat(),
             "alert": {"level": "critical", "component": "DatabasePool",
                       "message": "connection pool exhausted"}}))
        wait_for(lambda: monitor.ingest.counters()["stored"] == 2, message="both stored")
        wait_for(lambda: len([b for b in receiver.bodies
                              if b.get("rule") == "critical_error"]) == 2,
                 message="one critical_error notice for each")
        imported = client.get("/api/errors/import-failed-1").get_json()
        assert imported["severity"] == "critical" and imported["category"] == "network"
        assert imported["context"]["channel"] == f"{prefix}:import:completed"
        recent = {e["component"]: e for e in client.get("/api/errors/recent").get_json()}
        assert recent["DatabasePool"]["severity"] == "critical"
        assert recent["DatabasePool"]["message"] == "connection pool exhausted"
        # Re-sent copies are the same rows: stored once.
        redis_client.publish(f"{prefix}:import:completed", _envelope(
            "processing_error", severity="critical", component="data_import",
            error_code="API_RATE_LIMIT", message="Polygon import aborted: rate limit",
            error_id="import-failed-1"))
        wait_for(lambda: monitor.ingest.counters()["duplicate"] == 1, message="the copy")
        with monitor.engine.connect() as conn:
            assert len(conn.execute(select(error_logs.c.error_id)).all()) == 2
    finally:
        monitor.stop()
