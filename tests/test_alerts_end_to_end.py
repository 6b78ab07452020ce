"""Alerts through the running monitor: a critical reaches the webhook and the API, a silence
holds it back, and a restart does not send it again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import app as app_module
from tests.conftest import wait_for
from tests.factories import payload


def _monitor(make_settings, db_url, receiver):
    monitor = app_module.build(make_settings(database_url=db_url,
                                             alert_webhook_url=receiver.url))
    monitor.start()
    wait_for(lambda: monitor.ingest.subscriber.subscribed)
    return monitor


def test_a_critical_reaches_the_webhook_and_the_alerts_api_once(
        make_settings, db_url, receiver, redis_client, channel):
    monitor = _monitor(make_settings, db_url, receiver)
    client = monitor.dash_app.server.test_client()
    try:
        for _ in range(3):
            redis_client.publish(channel, payload(severity="critical", category="network",
                                                  error_message="Polygon feed down"))
        wait_for(lambda: len(receiver.bodies) >= 1, timeout=5)
        wait_for(lambda: [a["count"] for a in client.get("/api/alerts").get_json()] == [3],
                 timeout=5, message="the alert with its 3 events")
        (alert,) = client.get("/api/alerts").get_json()
        assert alert["rule"] == "critical_error" and alert["state"] == "firing"
        assert alert["notices"] == 1
        assert len(receiver.bodies) == 1  # three events, one group: one notification
        body = receiver.bodies[0]
        assert "Polygon feed down" in body["text"] and body["kind"] == "firing"
        status = client.get("/api/monitor/status").get_json()
        assert status["alerts"]["webhook"]["delivered"] == 1
    finally:
        monitor.stop()

    again = _monitor(make_settings, db_url, receiver)
    try:
        redis_client.publish(channel, payload(severity="critical", category="network",
                                              error_message="Polygon feed down"))
        wait_for(lambda: again.ingest.counters()["stored"] == 1)
        wait_for(lambda: again.ingest.alert_keeper.saved >= 1, timeout=5)
        assert len(receiver.bodies) == 1  # still firing from before the restart: not re-sent
    finally:
        again.stop()


def test_a_silence_holds_the_notification_but_the_alert_is_recorded(
        make_settings, db_url, receiver, redis_client, channel):
    monitor = _monitor(make_settings, db_url, receiver)
    client = monitor.dash_app.server.test_client()
    try:
        answer = client.post("/api/alerts/silences", json={
            "rule": "critical_error", "minutes": 60, "reason": "maintenance",
            "createdBy": "ops"})
        assert answer.status_code == 201
        silence = answer.get_json()
        assert client.get("/api/alerts/silences").get_json()[0]["id"] == silence["id"]
        wait_for(lambda: monitor.ingest.alerts._silences, timeout=10,
                 message="the silence to reach the engine")
        redis_client.publish(channel, payload(severity="critical", error_message="x"))
        wait_for(lambda: len(client.get("/api/alerts").get_json()) == 1, timeout=5)
        (alert,) = client.get("/api/alerts").get_json()
        assert alert["suppressed"] == f"silenced:{silence['id']}" and alert["notices"] == 0
        assert receiver.bodies == []
        assert client.delete(f"/api/alerts/silences/{silence['id']}").status_code == 204
        assert client.delete(f"/api/alerts/silences/{silence['id']}").status_code == 404
        wait_for(lambda: len(receiver.bodies) == 1, timeout=10,
                 message="the held-back firing to be sent once the silence is gone")
    finally:
        monitor.stop()


@pytest.mark.parametrize("body, fragment", [
    ({"rule": "everything", "minutes": 5}, "rule must be one of"),
    ({"rule": "error_rate"}, "give until"),
    ({"rule": "error_rate", "minutes": 0}, "minutes must be a whole number"),
    ({"rule": "error_rate", "until": "soon"}, "until must be an ISO-8601 time"),
    ({"rule": "error_rate", "until": "2000-01-01T00:00:00Z"}, "until must be in the future"),
    ({"rule": "error_rate", "minutes": 5, "key": ""}, "key must be a non-empty string"),
    ([1, 2], "must be a JSON object"),
])
def test_bad_silences_get_400(make_settings, db_url, body, fragment):
    monitor = app_module.build(make_settings(database_url=db_url))
    answer = monitor.dash_app.server.test_client().post("/api/alerts/silences", json=body)
    assert answer.status_code == 400 and fragment in answer.get_json()["error"]
    monitor.engine.dispose()


def test_alert_lists_reject_bad_states(make_settings, db_url):
    monitor = app_module.build(make_settings(database_url=db_url))
    client = monitor.dash_app.server.test_client()
    assert client.get("/api/alerts?state=open").status_code == 400
    assert client.get("/api/alerts?state=all").status_code == 200
    until = (datetime.now(UTC) + timedelta(days=100)).isoformat()
    answer = client.post("/api/alerts/silences", json={"rule": "error_rate", "until": until})
    assert answer.status_code == 400 and "at most 90 days" in answer.get_json()["error"]
    monitor.engine.dispose()
