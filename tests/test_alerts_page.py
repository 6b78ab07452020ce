"""The Alerts page and the navbar's firing badge: the logic behind the callbacks on a real
database, the callbacks as Dash serves them, and the page in headless Chromium on a running
monitor (Redis + PostgreSQL + ingest).

Run the browser test with `DASH_TEST_CHROMEPATH=/usr/lib/chromium/chromium python -m pytest
--headless tests/test_alerts_page.py`.
"""

from __future__ import annotations

import base64
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from sqlalchemy import text

import app as app_module
from alerts import page
from alerts.keeper import alert_row
from alerts.rules import AlertEngine, AlertRules
from alerts.store import add_silence, list_silences, save_alerts
from dashboard import ids, navbar
from queries.engine import make_engine
from tests.conftest import click_settled, wait_for
from tests.factories import event, payload
from tests.test_security import callback_payload

NOW = datetime.now(UTC).replace(microsecond=0)


def _alert(rule: str = "critical_error", key: str = "fp1", state: str = "firing",
           started: datetime | None = None, **fields: Any) -> dict[str, Any]:
    """An `alerts` row as the alert keeper saves it."""
    started = started or NOW - timedelta(minutes=3)
    row = {"id": uuid.uuid4().hex, "rule": rule, "alert_key": key, "state": state,
           "started_at": started, "ended_at": started + timedelta(minutes=2)
           if state == "resolved" else None, "last_event_at": started, "event_count": 4,
           "summary": f"critical PatternDetectionError: boom ({key})",
           "sample": {"id": f"err_{key}", "type": "PatternDetectionError",
                      "message": "Pattern detection failed", "severity": "critical"},
           "last_notice": None, "notified_at": None, "notices": 0, "suppressed": None}
    row.update(fields)
    return row


def _texts(component: Any) -> str:
    """Every string a rendered component tree holds, joined: what the page would show."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, str):
            found.append(node)
        elif isinstance(node, list | tuple):
            for item in node:
                walk(item)
        elif hasattr(node, "children"):
            walk(node.children)

    walk(component)
    return " | ".join(found)


# -- what the page shows ------------------------------------------------------------------
def test_alerts_from_the_engine_show_as_firing_with_their_latest_error(engine) -> None:
    saved: list[Any] = []
    rules = AlertEngine(AlertRules(), clock=lambda: NOW, on_change=saved.append)
    rules.observe([event(error_id="e/1", severity="critical", fingerprint="fpA",
                         error_message="Database connection lost")])
    save_alerts(engine, [alert_row(a) for a in saved])

    view = page.alerts_view(engine, now=NOW + timedelta(seconds=30))
    (row,) = view.firing
    assert (row["rule"], row["key"], row["count"]) == ("critical_error", "fpA", 1)
    assert row["sampleHref"] == "/errors/e%2F1" and "Database connection lost" in row["sample"]
    assert row["groupHref"] == "/groups/fpA"
    assert row["since"].endswith("(under a minute ago)")
    assert row["held"]["kind"] == "sent" and "1 notification, last firing" in row["held"]["text"]
    assert view.history == [] and view.history_total == 0


def test_held_back_notifications_say_by_which_silence_or_inhibition(engine) -> None:
    silence = add_silence(engine, "critical_error", None, NOW + timedelta(hours=1),
                          "deploying", "ops", now=NOW)
    save_alerts(engine, [
        _alert(key="silenced", suppressed=f"silenced:{silence['id']}"),
        _alert(key="gone", suppressed="silenced:0123456789abcdef"),
        _alert(rule="category_burst", key="pattern", suppressed="inhibited"),
        _alert(key="quiet")])
    held = {r["key"]: r["held"] for r in page.alerts_view(engine, now=NOW).firing}
    assert held["silenced"]["kind"] == "silenced"
    assert held["silenced"]["silence"] == silence["id"]
    for words in ("critical_error / all keys", "set by ops", "deploying"):
        assert words in held["silenced"]["text"]
    assert held["gone"]["kind"] == "silenced" and "has ended" in held["gone"]["text"]
    assert held["pattern"]["kind"] == "inhibited" and "database_error" in held["pattern"]["text"]
    assert held["quiet"] == {"kind": "pending", "text": "not sent yet"}


def test_history_is_newest_first_and_says_how_many_of_how_many(engine) -> None:
    save_alerts(engine, [_alert(key=f"k{i}", state="resolved",
                                started=NOW - timedelta(hours=i + 1)) for i in range(30)]
                + [_alert(key="now")])
    view = page.alerts_view(engine, history_limit=page.HISTORY_STEP, now=NOW)
    assert [r["key"] for r in view.firing] == ["now"]
    assert [r["key"] for r in view.history][:3] == ["k0", "k1", "k2"]
    assert len(view.history) == 25 and view.history_total == 30
    assert page.history_summary(view) == "Showing 25 of 30 resolved alerts, newest first."
    assert view.history[0]["lasted"] == "2 min"
    more = page.rendered(view)[5]
    assert "d-none" not in more
    everything = page.alerts_view(engine, history_limit=50, now=NOW)
    assert len(everything.history) == 30 and "d-none" in page.rendered(everything)[5]


def test_an_empty_page_says_so_in_words(engine) -> None:
    shown = _texts(page.layout(engine, {}))
    for words in ("No alerts firing", "No active silences", "No resolved alerts yet",
                  "Created as dashboard"):
        assert words in shown


def test_an_unchanged_page_has_the_same_digest(engine) -> None:
    save_alerts(engine, [_alert(started=NOW - timedelta(hours=3))])
    first = page.alerts_view(engine, now=NOW)
    assert first.digest() == page.alerts_view(engine, now=NOW + timedelta(seconds=20)).digest()
    add_silence(engine, "error_rate", None, NOW + timedelta(hours=1), "", "ops", now=NOW)
    assert first.digest() != page.alerts_view(engine, now=NOW).digest()


def test_producer_text_is_rendered_as_text(engine) -> None:
    nasty = '<img src=x onerror="alert(1)"><b>bold</b>'
    save_alerts(engine, [_alert(key=nasty, summary=nasty)])
    view = page.alerts_view(engine, now=NOW)
    table = page.firing_table(view.firing)
    assert nasty in _texts(table)
    assert "dangerously_allow_html" not in str(table)  # plain children, never markup


def test_a_missing_alerts_table_is_a_message_not_a_crash(engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE alerts"))
    view = page.alerts_view(engine, now=NOW)
    assert view.problem == page.UNREADABLE
    assert page.UNREADABLE in _texts(page.layout(engine, {}))


# -- silences -----------------------------------------------------------------------------
def test_a_silence_made_in_the_form_is_stored_and_listed(engine) -> None:
    silence, said = page.create_silence(engine, "symbol_pattern_failures", "  AAPL ", "60",
                                        None, " earnings ", "dashboard", now=NOW)
    assert silence is not None
    assert said == f"Silenced symbol_pattern_failures (key AAPL) until " \
                   f"{(NOW + timedelta(hours=1)).strftime('%Y-%m-%d %H:%M')} UTC."
    (stored,) = list_silences(engine, NOW)
    assert (stored["rule"], stored["key"], stored["reason"], stored["createdBy"]) == \
        ("symbol_pattern_failures", "AAPL", "earnings", "dashboard")
    (row,) = page.alerts_view(engine, now=NOW).silences
    assert row["key"] == "AAPL" and row["until"].endswith("(60 min left)")

    blank, _ = page.create_silence(engine, "error_rate", "   ", "until",
                                   (NOW + timedelta(days=2)).isoformat(), "", "ops", now=NOW)
    assert blank is not None and blank["key"] is None  # a blank key: every key of the rule


@pytest.mark.parametrize("rule, key, duration, until, fragment", [
    ("everything", None, "60", None, "Rule must be one of critical_error"),
    ("error_rate", None, "until", None, "Pick the time the silence ends"),
    ("error_rate", None, "until", "soon", "Until must be an ISO-8601 time"),
    ("error_rate", None, "until", "2000-01-01T00:00:00Z", "Until must be in the future"),
    ("error_rate", None, "until", (NOW + timedelta(days=100)).isoformat(),
     "A silence lasts at most 90 days"),
    ("error_rate", "x" * 301, "60", None, "Key must be a non-empty string"),
    ("error_rate", None, "forever", None, "Choose how long the silence lasts"),
])
def test_a_bad_silence_gets_the_apis_words(engine, rule, key, duration, until, fragment) -> None:
    silence, said = page.create_silence(engine, rule, key, duration, until, "", "ops", now=NOW)
    assert silence is None and said.startswith("Not created: ") and fragment in said
    assert list_silences(engine, NOW) == []


def test_ending_a_silence_removes_it_once(engine) -> None:
    silence = add_silence(engine, "error_rate", None, NOW + timedelta(hours=1), "", "ops",
                          now=NOW)
    assert page.end_silence(engine, silence["id"]) == (
        True, "Silence ended: its alerts notify again within seconds.")
    assert page.end_silence(engine, silence["id"]) == (False, "That silence had already ended.")
    assert page.alerts_view(engine, now=NOW).silences == []


def test_the_create_callback_records_the_admin_as_creator(make_settings, db_url) -> None:
    monitor = app_module.build(make_settings(database_url=db_url, admin_username="alice",
                                             admin_password="s3cret"))
    client = monitor.dash_app.server.test_client()
    auth = {"Authorization": "Basic " + base64.b64encode(b"alice:s3cret").decode()}
    try:
        dependencies = client.get("/_dash-dependencies", headers=auth).get_json()
        body = callback_payload(dependencies, f"{ids.SILENCE_REASON}.value", {
            f"{ids.SILENCE_CREATE}.n_clicks": 1, f"{ids.SILENCE_RULE}.value": "error_rate",
            f"{ids.SILENCE_DURATION}.value": "30", f"{ids.SILENCE_REASON}.value": "<b>db</b>",
            f"{ids.SILENCE_CHANGED}.data": 0})
        answer = client.post("/_dash-update-component", json=body, headers=auth)
        assert answer.status_code == 200, answer.data[:300]
        assert "Silenced error_rate (all keys)" in answer.get_data(as_text=True)
        (stored,) = list_silences(monitor.engine)
        assert stored["createdBy"] == "alice" and stored["reason"] == "<b>db</b>"
    finally:
        monitor.engine.dispose()


def test_the_page_renders_through_the_router(make_settings, db_url) -> None:
    monitor = app_module.build(make_settings(database_url=db_url))
    save_alerts(monitor.engine, [_alert(key="routed")])
    client = monitor.dash_app.server.test_client()
    try:
        body = callback_payload(client.get("/_dash-dependencies").get_json(),
                                f"{ids.PAGE}.children",
                                {f"{ids.URL}.pathname": "/alerts", f"{ids.URL}.search": ""})
        answer = client.post("/_dash-update-component", json=body)
        assert answer.status_code == 200
        shown = answer.get_data(as_text=True)
        assert ids.ALERTS_FIRING in shown and "routed" in shown and ids.SILENCE_FORM in shown
    finally:
        monitor.engine.dispose()


# -- the navbar badge ---------------------------------------------------------------------
def test_the_badge_counts_firing_alerts_and_hides_at_zero(engine) -> None:
    assert navbar.alerts_badge(engine)[0] == ""
    assert "d-none" in navbar.alerts_badge(engine)[1]
    save_alerts(engine, [_alert(key="a"), _alert(key="b"), _alert(key="c", state="resolved")])
    assert navbar.alerts_badge(engine) == ("2", navbar.ALERTS_BADGE_CLASSES, "2 alerts firing")


def test_the_badge_hides_when_the_table_or_the_database_is_missing(engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE alerts"))
    assert "d-none" in navbar.alerts_badge(engine)[1]
    down = make_engine("postgresql://postgres@127.0.0.1:1/nothing")
    try:
        assert "d-none" in navbar.alerts_badge(down)[1]
    finally:
        down.dispose()


# -- in the browser -----------------------------------------------------------------------
@pytest.fixture
def monitor(start_monitor, pg_url, pg_engine):
    # pg_engine gives this test empty tables on the run's PostgreSQL database.
    return start_monitor(database_url=pg_url)


@pytest.mark.browser
def test_al001_silence_a_firing_alert_from_the_page(dash_duo, monitor, redis_client,
                                                    channel) -> None:
    dash_duo.start_server(monitor.dash_app)
    dash_duo.driver.get(f"{dash_duo.server_url}/alerts")
    dash_duo.wait_for_contains_text(f"#{ids.ALERTS_FIRING}", "No alerts firing", timeout=10)
    assert not dash_duo.find_element(f"#{ids.ALERTS_BADGE}").is_displayed()

    tag = uuid.uuid4().hex[:6]
    message = f"<b>Feed down</b> {tag}"
    redis_client.publish(channel, payload(severity="critical", category="network",
                                          error_message=message, error_id=f"al_{tag}"))
    dash_duo.wait_for_text_to_equal(f"#{ids.ALERTS_BADGE}", "1", timeout=10)
    dash_duo.wait_for_contains_text(f"#{ids.ALERTS_FIRING}", message, timeout=10)
    assert dash_duo.driver.find_elements(By.CSS_SELECTOR, f"#{ids.ALERTS_FIRING} b") == []
    href = dash_duo.driver.execute_script(  # one read: immune to a redraw in between
        "return document.querySelector(arguments[0]).getAttribute('href')",
        f"#{ids.ALERTS_FIRING} a.alert-sample")
    assert href == f"/errors/al_{tag}"
    # The critical also opens the shell's dialog, whose backdrop covers the page; a click
    # during its opening animation can miss, so dismiss until it is gone.
    dash_duo.wait_for_contains_text(f"#{ids.CRITICAL_DIALOG}", message, timeout=10)

    def dismissed() -> bool:
        for button in dash_duo.driver.find_elements(By.ID, ids.CRITICAL_DISMISS):
            try:
                button.click()
            except WebDriverException:
                pass  # animating or already redrawn: the next round tries again
        time.sleep(0.3)
        return not dash_duo.driver.find_elements(By.ID, ids.CRITICAL_DIALOG)

    wait_for(dismissed, timeout=10, interval=0.2, message="the critical dialog to close")

    click_settled(dash_duo, f"#{ids.ALERTS_FIRING} button")  # "Silence this"
    (firing,) = monitor.ingest.alerts.firing()
    wait_for(lambda: dash_duo.find_element(f"#{ids.SILENCE_KEY}").get_attribute("value")
             == firing.key, message="the form to be filled from the alert")
    assert dash_duo.find_element(f"#{ids.SILENCE_RULE}").get_attribute("value") == \
        "critical_error"
    dash_duo.find_element(f"#{ids.SILENCE_REASON}").send_keys(f"vendor outage {tag}")
    dash_duo.find_element(f"#{ids.SILENCE_CREATE}").click()
    dash_duo.wait_for_contains_text(f"#{ids.SILENCE_FEEDBACK}", "Silenced critical_error",
                                    timeout=8)
    dash_duo.wait_for_contains_text(f"#{ids.SILENCE_LIST}", f"vendor outage {tag}", timeout=8)
    assert "dashboard" in dash_duo.find_element(f"#{ids.SILENCE_LIST}").text
    # The alert keeper hands the silence to the engine within 3 s; the page follows.
    dash_duo.wait_for_contains_text(f"#{ids.ALERTS_FIRING}", "silenced", timeout=15)
    dash_duo.wait_for_contains_text(f"#{ids.ALERTS_FIRING}", f"vendor outage {tag}",
                                    timeout=8)

    click_settled(dash_duo, f"#{ids.SILENCE_LIST} button")  # "End"
    dash_duo.wait_for_contains_text(f"#{ids.SILENCE_LIST}", "No active silences", timeout=8)
    dash_duo.wait_for_contains_text(f"#{ids.SILENCE_FEEDBACK}", "Silence ended", timeout=8)
    dash_duo.wait_for_contains_text(f"#{ids.ALERTS_FIRING}", "notified", timeout=15)
    assert dash_duo.get_logs() == [], "the browser console reported errors"
