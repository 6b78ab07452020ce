"""The Monitor page (`/monitor`): its texts from a real ingest's status, its ticks, and the
page in a browser.

Browser test: `DASH_TEST_CHROMEPATH=/usr/lib/chromium/chromium python -m pytest --headless ...`.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from dash import no_update

import app as app_module
from dashboard import ids
from dashboard.pages import monitor
from ingest.service import IngestService
from live.follower import LiveFeedFollower
from queries.engine import make_engine
from queries.schema import create_schema
from retention.job import RetentionJob
from tests.conftest import REDIS_URL, wait_for
from tests.factories import payload
from tests.redis_server import PrivateRedis, free_port

NOW = datetime(2025, 1, 26, 21, 20, tzinfo=UTC)


def text_of(node: Any) -> str:
    """Everything a component tree would show, as one string (what a reader sees)."""
    if node is None or node is no_update:
        return ""
    if isinstance(node, str | int | float):
        return str(node)
    if isinstance(node, list | tuple):
        return " ".join(text_of(n) for n in node)
    return text_of(getattr(node, "children", None))


def rows_of(section: dict[str, Any]) -> dict[str, str]:
    return {label: value for label, value in section["rows"]}


def counts(view: dict[str, Any]) -> dict[str, str]:
    return {name: count for name, count, _rate, _meaning in view["counters"]["rows"]}


@pytest.fixture
def ingest(engine, db_url, make_settings) -> Iterator[IngestService]:
    service = IngestService(make_settings(database_url=db_url), engine)
    service.start()
    wait_for(lambda: service.subscriber.subscribed, message="subscription")
    yield service
    service.stop()


# -- texts from a real status ------------------------------------------------------------------
def test_published_messages_show_as_counts_rates_and_conservation_ok(
        ingest, redis_client, channel) -> None:
    for i in range(3):
        redis_client.publish(channel, payload(error_id=f"mon-{i}"))
    redis_client.publish(channel, b"{not json")
    redis_client.publish(channel, payload(error_id="mon-0"))  # a re-sent copy
    wait_for(lambda: ingest.counters()["stored"] == 3 and ingest.counters()["duplicate"] == 1,
             message="3 stored, 1 duplicate")
    now = datetime.now(UTC)
    view = monitor.monitor_view(ingest.status(), now)

    assert counts(view) == {"received": "5", "replayed": "0", "stored": "3", "duplicate": "1",
                            "rejected": "1", "refused": "0", "log_only": "0", "dropped": "0",
                            "reconnects": "0"}
    # The ingest rates every counter (the API and /metrics serve the same numbers).
    rates = {name: rate for name, _c, rate, _m in view["counters"]["rows"]}
    assert all(rate.endswith("/s") for rate in rates.values()), rates
    redis_client.publish(channel, payload(error_id="mon-late"))
    wait_for(lambda: ingest.counters()["stored"] == 4, message="the late one stored")
    time.sleep(0.6)  # a rate needs half a second between its samples
    status = ingest.status()
    assert set(status["rates"]) == set(counts(view))
    assert status["rates"]["received"] > 0 and status["rates"]["dropped"] == 0

    conservation = view["conservation"]
    assert conservation["state"] == "OK" and conservation["tone"] == "success"
    assert conservation["left"] == "received 5 + replayed 0 = 5"
    assert conservation["right"] == ("stored 3 + duplicate 1 + rejected 1 + refused 0 + "
                                     "log_only 0 + pending 0 + dropped 0 = 5")

    listening = view["listening"]
    assert listening["state"] == "Listening" and listening["tone"] == "success"
    fields = rows_of(listening)
    assert fields["Channel"] == channel
    assert fields["Source"] == f"Redis pub/sub: channel {channel}"
    assert fields["Last message"].split(" (")[0] in {"0 s ago", "1 s ago", "2 s ago"}

    store = view["store"]
    assert store["state"] == "OK"
    assert rows_of(store)["Last error"] == "none"
    assert re.fullmatch(r"\d+ rows in [\d.]+ (ms|s)", rows_of(store)["Last batch"])
    assert re.fullmatch(r"[\d.]+ (ms|s)", rows_of(store)["Store latency"])
    assert rows_of(view["queue"])["Spool unread"] == "0"
    assert rows_of(view["queue"])["Pending write"] == "0"
    assert view["history"]["rows"] == []
    assert "No incidents" in text_of(monitor.render_section("history", view["history"]))


def test_an_unreachable_store_shows_since_when_why_and_the_messages_pending(
        make_settings, redis_client, channel, tmp_path) -> None:
    # A PostgreSQL port nothing listens on: the store is away from the start.
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    engine = make_engine(url)
    service = IngestService(make_settings(database_url=url), engine)
    service.start()
    try:
        wait_for(lambda: service.subscriber.subscribed, message="subscription")
        redis_client.publish(channel, payload(error_id="away-1"))
        redis_client.publish(channel, payload(error_id="away-2"))
        wait_for(lambda: service.writer.store_ok is False and
                 service.counters()["received"] == 2, timeout=20, message="the store down")
        now = datetime.now(UTC)
        view = monitor.monitor_view(service.status(), now)
    finally:
        service.stop()
        engine.dispose()
    assert view["store"]["state"].startswith("Unreachable since ")
    assert view["store"]["state"].endswith(" ago)")
    assert rows_of(view["store"])["Last error"] != "none"
    assert rows_of(view["store"])["Last commit"] == "none yet"
    assert rows_of(view["store"])["Last batch"] == "none yet"
    # Nothing is lost: what could not be stored is pending, and the books balance.
    assert view["conservation"]["state"] == "OK"
    assert "pending 2" in view["conservation"]["right"]
    what, start, end, _lasted, reason = view["history"]["rows"][0]
    assert (what, end) == ("store unreachable", "ongoing")
    assert start.endswith(" ago)") and reason not in ("", "—")
    table = text_of(monitor.render_section("history", view["history"]))
    assert "store unreachable" in table and "ongoing" in table


def test_a_redis_outage_is_listed_newest_first_with_its_duration(
        make_settings, tmp_path) -> None:
    server = PrivateRedis(tmp_path).start()
    settings = make_settings(redis_url=server.url, redis_health_check_interval=1)
    engine = make_engine(settings.database_url)
    create_schema(engine)
    service = IngestService(settings, engine)
    service.start()
    try:
        wait_for(lambda: service.subscriber.subscribed, message="subscription")
        server.stop()
        wait_for(lambda: not service.subscriber.subscribed, timeout=20, message="the loss")
        down = monitor.monitor_view(service.status(), datetime.now(UTC))
        server = PrivateRedis(tmp_path, server.port).start()
        wait_for(lambda: service.subscriber.subscribed, timeout=30, message="resubscribed")
        up = monitor.monitor_view(service.status(), datetime.now(UTC))
    finally:
        service.stop()
        server.stop()
        engine.dispose()
    assert down["listening"]["state"].startswith("Not listening since ")
    assert down["listening"]["tone"] == "danger"
    assert down["history"]["rows"][0][0] == "not listening"
    assert down["history"]["rows"][0][2] == "ongoing"
    assert up["listening"]["state"] == "Listening"
    what, _start, end, lasted, _reason = up["history"]["rows"][0]
    assert what == "not listening" and end != "ongoing" and lasted != "—"
    assert counts(up)["reconnects"] != "0"


def test_webhook_failures_are_counted_and_its_url_never_shown(
        engine, db_url, make_settings, redis_client, channel) -> None:
    secret = f"T0/B0/{uuid.uuid4().hex}"
    settings = make_settings(database_url=db_url,
                             alert_webhook_url=f"http://127.0.0.1:{free_port()}/hooks/{secret}",
                             alert_webhook_max_tries=1)
    service = IngestService(settings, engine)
    quiet = monitor.webhook_view(IngestService(make_settings(), engine).status(), NOW)
    service.start()
    try:
        wait_for(lambda: service.subscriber.subscribed, message="subscription")
        # One critical fires one alert (a `database` one would fire a second).
        redis_client.publish(channel, payload(severity="critical", category="pattern"))
        wait_for(lambda: service.notifier is not None and service.notifier.stats.failed >= 1
                 and service.notifier.pending == 0, timeout=20, message="a failed delivery")
        status = service.status()
    finally:
        service.stop()
    view = monitor.monitor_view(status, datetime.now(UTC))
    webhook = view["webhook"]
    assert webhook["state"] == "Failing: nothing delivered" and webhook["tone"] == "danger"
    fields = rows_of(webhook)
    assert fields["Sent"] == "0" and fields["Failed"] == "1" and fields["Retries"] == "0"
    assert fields["Last error (any time)"].startswith("URLError: ")
    assert fields["Alerts firing"].startswith("1 ")
    shown = text_of([monitor.render_section(n, s) for n, s in view.items()])
    assert secret not in shown and "/hooks/" not in shown

    assert quiet["state"] == "Not configured"
    assert rows_of(quiet)["Webhook"] == "none: ALERT_WEBHOOK_URL is empty"


def test_retention_shows_not_run_then_its_last_run_and_a_failure(
        engine, make_settings) -> None:
    settings = make_settings()
    job = RetentionJob.from_settings(engine, settings)
    status = IngestService(settings, engine).status()
    before = monitor.retention_view({**status, "retention": job.status()}, NOW)
    assert before["state"] == "Not run yet"
    assert rows_of(before)["Last run"] == "—"
    assert rows_of(before)["Keeps"].startswith("30 days; runs daily at 03:00")

    job.run()
    after = monitor.retention_view({**status, "retention": job.status()}, datetime.now(UTC))
    assert after["state"] == "OK" and after["tone"] == "success"
    fields = rows_of(after)
    assert fields["Rows removed"] == "0" and fields["Error"] == "none"
    assert fields["Last run"].endswith(" ago)") and fields["Duration"] != "—"

    failed = {**job.status(), "lastRunOk": False, "lastError": "permission denied for table"}
    view = monitor.retention_view({**status, "retention": failed}, datetime.now(UTC))
    assert view["state"] == "Failed" and rows_of(view)["Error"] == "permission denied for table"
    soon = (NOW + timedelta(hours=5)).isoformat()
    assert monitor.when_text(soon, NOW) == "2025-01-27 02:20:00 UTC (in 5 h)"


def test_a_web_side_with_no_ingest_says_so_and_shows_no_verdict() -> None:
    follower = LiveFeedFollower(REDIS_URL, f"test:{uuid.uuid4().hex}:errors", 10)
    view = monitor.monitor_view(follower.status(), datetime.now(UTC))
    assert view["listening"]["state"].startswith("No heartbeat from the ingest process")
    assert rows_of(view["listening"])["Ingest processes"] == "0 reporting"
    assert view["conservation"]["state"] == "UNKNOWN"
    assert view["retention"]["state"] == "Not reported"
    assert view["webhook"]["state"] == "Not reported"
    # An empty status (keys missing) still gives a whole page.
    empty = monitor.monitor_view({}, NOW)
    assert empty["listening"]["state"] == "Not listening"
    assert set(counts(empty).values()) == {"—"}
    assert text_of([monitor.render_section(n, s) for n, s in empty.items()])


def test_small_texts() -> None:
    assert monitor.duration_text(0.0123) == "12 ms"
    assert monitor.duration_text(4.25) == "4.2 s"
    assert monitor.duration_text(185) == "3 min 5 s"
    assert monitor.duration_text(7800) == "2 h 10 min"
    assert monitor.duration_text(None) == "—"
    assert monitor.bytes_text(512) == "512 B"
    assert monitor.bytes_text(524288000) == "500.0 MiB"
    assert monitor.when_text("2025-01-26T21:19:57Z", NOW) == "2025-01-26 21:19:57 UTC (3 s ago)"
    assert monitor.when_text(None, NOW) == "—"
    assert monitor.rate_text(1.5) == "1.50/s" and monitor.rate_text(None) == "—"
    reason = monitor.problem_text(ConnectionError(
        "Error connecting to redis://admin:hunter2@cache:6379/0 and https://hooks.example/T/X"))
    assert "hunter2" not in reason and "/T/X" not in reason and "admin" not in reason
    assert reason.startswith("ConnectionError: Error connecting to redis://cache:6379/…")


def test_a_leak_shows_as_mismatch_with_both_sides_after_a_second_reading(ingest) -> None:
    healthy = ingest.status()
    leaking = {**healthy, "counters": {**healthy["counters"], "received": 7}}
    view = monitor.conservation_view(leaking)
    assert view["state"] == "MISMATCH" and view["tone"] == "danger"
    assert view["left"] == "received 7 + replayed 0 = 7"
    assert view["right"].endswith("dropped 0 = 0")
    assert view["note"] == "7 unaccounted for"
    shown = text_of(monitor.render_section("conservation", view))
    assert "MISMATCH" in shown and "= 7" in shown and "= 0" in shown

    # One reading caught mid-flight is read again; a leak that stays is reported.
    readings = iter([leaking, healthy])
    assert monitor.read_status(lambda: next(readings)) is healthy
    assert monitor.read_status(lambda: leaking) is leaking


# -- ticks ----------------------------------------------------------------------------------------
def test_a_tick_sends_only_what_changed_and_a_failing_status_is_said(ingest) -> None:
    status = ingest.status()

    def fixed() -> dict[str, Any]:
        return status

    first, updated, problem, digests = monitor.refresh(fixed, {}, NOW)
    assert set(first) == set(monitor.SECTIONS) and updated == "updated 2025-01-26 21:20:00 UTC"
    assert problem is no_update
    second, _updated, _problem, digests = monitor.refresh(fixed, digests, NOW)
    assert second == {}  # the same status at the same moment: nothing to send

    def broken() -> dict[str, Any]:
        raise ConnectionError("ingest status read failed: Connection refused")

    changed, updated, problem, failed = monitor.refresh(broken, digests, NOW)
    assert changed == {} and updated is no_update
    assert text_of(problem) == ("Status unavailable: ConnectionError: ingest status read "
                                "failed: Connection refused. Showing the status read at "
                                "2025-01-26 21:20:00 UTC.")
    _changed, _updated, problem, _digests = monitor.refresh(fixed, failed, NOW)
    assert problem is None  # the banner goes with the first good reading


def test_the_page_renders_and_says_when_the_status_cannot_be_read(ingest) -> None:
    page = text_of(monitor.layout(ingest.status))
    for title in ("Redis subscription", "Listening", "Store", "Conservation", "Counters",
                  "Incident history", "Retention", "Alert webhook", "OK", "received"):
        assert title in page

    def broken() -> dict[str, Any]:
        raise RuntimeError("no ingest")

    page = text_of(monitor.layout(broken))
    assert "Status unavailable: RuntimeError: no ingest." in page


def test_monitor_route_serves_the_page(make_settings) -> None:
    built = app_module.build(make_settings())
    try:
        client = built.dash_app.server.test_client()
        body = {"output": f"{ids.PAGE}.children",
                "outputs": {"id": ids.PAGE, "property": "children"},
                "inputs": [{"id": ids.URL, "property": "pathname", "value": "/monitor"},
                           {"id": ids.URL, "property": "search", "value": ""}],
                "state": [], "changedPropIds": [f"{ids.URL}.pathname"]}
        answer = client.post("/_dash-update-component", json=body)
        assert answer.status_code == 200
        page = str(answer.get_json())
        assert ids.MONITOR_VERDICT in page and ids.MONITOR_INTERVAL in page
        assert "Not run yet" in page  # the retention job's status reached the page
    finally:
        built.stop()


# -- in a browser ------------------------------------------------------------------------------
@pytest.mark.browser
def test_mo001_counters_reach_the_published_count_and_conservation_is_ok(
        dash_duo, make_settings, pg_url, pg_engine, redis_client, channel) -> None:
    running = app_module.build(make_settings(database_url=pg_url))
    running.start()
    try:
        wait_for(lambda: running.ingest.subscriber.subscribed, message="subscription")
        dash_duo.start_server(running.dash_app)
        dash_duo.wait_for_page(f"{dash_duo.server_url}/monitor")
        dash_duo.wait_for_text_to_equal(f"#{ids.MONITOR_COUNT}-received", "0", timeout=10)
        for i in range(4):
            redis_client.publish(channel, payload(error_id=f"mo001-{uuid.uuid4().hex}-{i}"))
        dash_duo.wait_for_text_to_equal(f"#{ids.MONITOR_COUNT}-received", "4", timeout=10)
        dash_duo.wait_for_text_to_equal(f"#{ids.MONITOR_COUNT}-stored", "4", timeout=10)
        dash_duo.wait_for_text_to_equal(f"#{ids.MONITOR_VERDICT}", "OK", timeout=10)
        conservation = dash_duo.find_element(f"#{ids.MONITOR_CONSERVATION}").text
        assert "received 4 + replayed 0 = 4" in conservation
        assert "stored 4 + " in conservation
        listening = dash_duo.find_element(f"#{ids.MONITOR_LISTENING}").text
        assert "Listening" in listening and channel in listening
        # The page keeps ticking: "last message" moves on without a reload.
        first = dash_duo.find_element(f"#{ids.MONITOR_UPDATED}").text
        time.sleep(2.2)
        assert dash_duo.find_element(f"#{ids.MONITOR_UPDATED}").text != first
        assert "No incidents" in dash_duo.find_element(f"#{ids.MONITOR_HISTORY}").text
        assert dash_duo.get_logs() == [], "the browser console reported errors"
    finally:
        running.stop()



def test_a_process_whose_retention_run_another_took_says_it_stands_by(
        engine, make_settings) -> None:
    settings = make_settings()
    first, second = (RetentionJob.from_settings(engine, settings) for _ in range(2))
    assert first.run_scheduled() is not None
    assert second.run_scheduled() is None
    status = IngestService(settings, engine).status()
    view = monitor.retention_view({**status, "retention": second.status()}, datetime.now(UTC))
    assert view["state"] == "Standing by"
    assert "was taken by" in rows_of(view)["Standing by"]
    mine = monitor.retention_view({**status, "retention": first.status()}, datetime.now(UTC))
    assert mine["state"] == "OK"
