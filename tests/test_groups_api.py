"""The groups routes: list, detail, triage, and their 400s and 404s."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import wait_for
from tests.factories import payload


@pytest.fixture
def monitor(start_monitor, db_url):
    return start_monitor(database_url=db_url)


@pytest.fixture
def client(monitor):
    return monitor.dash_app.server.test_client()


def _publish_group(monitor, redis_client, channel, n=3):
    for i, symbol in enumerate(("AAPL", "MSFT", "TSLA")[:n]):
        redis_client.publish(channel, payload(
            error_message=f"failed for {symbol} after {i} retries", severity="error",
            context={"symbol": symbol, "component": "Loader", "operation": "load"}))
    wait_for(lambda: monitor.ingest.counters()["stored"] == n)


def test_published_errors_become_one_group_that_can_be_resolved(
        monitor, client, redis_client, channel):
    _publish_group(monitor, redis_client, channel)
    (group,) = client.get("/api/groups").get_json()
    assert group["count"] == 3 and group["symbolCount"] == 3 and group["state"] == "unresolved"
    detail = client.get(f"/api/groups/{group['fingerprint']}").get_json()
    assert len(detail["events"]) == 3 and len(detail["hourly"]["counts"]) == 7 * 24 + 1
    answer = client.post(f"/api/groups/{group['fingerprint']}/state", json={"state": "resolved"})
    assert answer.status_code == 200
    assert client.get("/api/groups?state=resolved").get_json()[0]["state"] == "resolved"
    redis_client.publish(channel, payload(error_message="failed for X after 9 retries",
                                          context={"component": "Loader", "operation": "load"}))
    wait_for(lambda: client.get("/api/groups").get_json()[0]["state"] == "regressed",
             message="the regression")


def test_bulk_ignore_until_a_time(monitor, client, redis_client, channel):
    _publish_group(monitor, redis_client, channel, n=1)
    (group,) = client.get("/api/groups").get_json()
    until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    answer = client.post("/api/groups/state", json={
        "fingerprints": [group["fingerprint"]], "state": "ignored", "until": until})
    assert answer.status_code == 200
    assert client.get("/api/groups?state=ignored").get_json()[0]["ignoreUntil"]


@pytest.mark.parametrize("body, fragment", [
    ({"state": "regressed"}, "state must be one of"),
    ({"state": "closed"}, "state must be one of"),
    ([], "must be a JSON object"),
    ({"state": "ignored", "until": "tomorrow"}, "until must be an ISO-8601 time"),
    ({"state": "ignored", "until": "2001-01-01T00:00:00Z"}, "until must be in the future"),
    ({"state": "ignored", "count": 0}, "count must be a whole number"),
    ({"state": "ignored", "count": "5"}, "count must be a whole number"),
    ({"state": "resolved", "count": 5}, "count goes with state ignored only"),
])
def test_bad_state_changes_get_400(monitor, client, redis_client, channel, body, fragment):
    _publish_group(monitor, redis_client, channel, n=1)
    (group,) = client.get("/api/groups").get_json()
    answer = client.post(f"/api/groups/{group['fingerprint']}/state", json=body)
    assert answer.status_code == 400
    assert fragment in answer.get_json()["error"]


def test_unknown_groups_get_404(client):
    assert client.get("/api/groups/" + "0" * 40).status_code == 404
    answer = client.post("/api/groups/" + "0" * 40 + "/state", json={"state": "resolved"})
    assert answer.status_code == 404 and "no group" in answer.get_json()["error"]


@pytest.mark.parametrize("query, fragment", [
    ("state=closed", "state must be one of"), ("sort=name", "sort must be one of"),
    ("hours=-1", "hours must be from"), ("limit=5000", "limit must be from"),
    ("q=" + "x" * 201, "q must be at most 200 characters"),
])
def test_bad_list_parameters_get_400(client, query, fragment):
    answer = client.get(f"/api/groups?{query}")
    assert answer.status_code == 400 and fragment in answer.get_json()["error"]
