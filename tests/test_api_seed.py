"""The four seed routes of CONTRACT.md §4 and their 400s, on a running monitor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import app as app_module
from queries.store import ErrorStore
from tests.factories import event


@pytest.fixture
def monitor(start_monitor, db_url):
    return start_monitor(database_url=db_url)


@pytest.fixture
def client(monitor):
    return monitor.dash_app.server.test_client()


def _store(monitor, *events) -> None:
    store = ErrorStore(monitor.engine)
    store.write_batch(list(events))
    store.close()


def test_recent_lists_newest_first_in_the_contract_shape(monitor, client):
    now = datetime.now(UTC)
    _store(monitor, *(event(error_id=f"r{i}", timestamp=now - timedelta(minutes=i))
                      for i in range(5)))
    answer = client.get("/api/errors/recent?limit=3")
    assert answer.status_code == 200
    body = answer.get_json()
    assert [e["id"] for e in body] == ["r0", "r1", "r2"]
    assert set(body[0]) == {"id", "type", "message", "severity", "category", "symbol",
                            "component", "timestamp"}
    assert body[0]["timestamp"].endswith("Z")


@pytest.mark.parametrize("query, fragment", [
    ("limit=0", "limit must be from 1 to 1000"),
    ("limit=1001", "limit must be from 1 to 1000"),
    ("limit=abc", "limit must be a whole number"),
    ("limit=1.5", "limit must be a whole number"),
])
def test_recent_rejects_bad_limits(client, query, fragment):
    answer = client.get(f"/api/errors/recent?{query}")
    assert answer.status_code == 400
    assert fragment in answer.get_json()["error"]


def test_statistics_counts_by_severity_and_category_in_the_window(monitor, client):
    now = datetime.now(UTC)
    _store(monitor,
           event(severity="critical", category="database", timestamp=now),
           event(severity="error", category="pattern", timestamp=now - timedelta(hours=1)),
           event(severity="warning", category="pattern", timestamp=now - timedelta(hours=2)),
           event(severity="error", category="network", timestamp=now - timedelta(hours=30)))
    body = client.get("/api/errors/statistics?hours=24").get_json()
    assert body == {"timeRange": "last_24_hours",
                    "bySeverity": {"warning": 1, "error": 1, "critical": 1},
                    "byCategory": {"pattern": 2, "database": 1}, "total": 3}
    assert client.get("/api/errors/statistics").get_json()["timeRange"] == "last_24_hours"
    assert client.get("/api/errors/statistics?hours=48").get_json()["total"] == 4


@pytest.mark.parametrize("query", ["hours=0", "hours=-3", "hours=x", "hours=99999"])
def test_statistics_rejects_bad_hours(client, query):
    answer = client.get(f"/api/errors/statistics?{query}")
    assert answer.status_code == 400
    assert "hours" in answer.get_json()["error"]


def test_health_follows_the_rule_over_the_last_five_minutes(monitor, client):
    now = datetime.now(UTC)
    body = client.get("/api/errors/health").get_json()
    assert (body["status"], body["health"]) == ("operational", "green")
    assert body["monitor"]["subscribed"] is True
    _store(monitor, *(event(severity="error", timestamp=now) for _ in range(11)))
    body = client.get("/api/errors/health").get_json()
    assert (body["status"], body["health"], body["errors"]) == ("degraded", "yellow", 11)
    _store(monitor, event(severity="critical", timestamp=now - timedelta(minutes=6)))
    assert client.get("/api/errors/health").get_json()["status"] == "degraded"
    _store(monitor, event(severity="critical", timestamp=now))
    body = client.get("/api/errors/health").get_json()
    assert (body["status"], body["health"], body["criticalErrors"]) == ("critical", "red", 1)
    assert set(body) >= {"status", "health", "criticalErrors", "errors", "checkTime"}


def test_health_is_unknown_while_not_subscribed(make_settings, db_url):
    # Built but not started: the monitor is blind, so it must not look green.
    monitor = app_module.build(make_settings(database_url=db_url))
    body = monitor.dash_app.server.test_client().get("/api/errors/health").get_json()
    assert (body["status"], body["health"]) == ("unknown", "gray")
    assert "not subscribed" in body["reason"]
    monitor.engine.dispose()


def test_one_error_in_full_and_404_when_unknown(monitor, client):
    _store(monitor, event(error_id="with/slash:and spaces", error_traceback="Traceback ...",
                          context={"symbol": "AAPL", "metadata": {"attempt": 2}}))
    answer = client.get("/api/errors/with/slash:and%20spaces")
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["id"] == "with/slash:and spaces"
    assert body["traceback"] == "Traceback ..."
    assert body["context"] == {"symbol": "AAPL", "metadata": {"attempt": 2}}
    missing = client.get("/api/errors/no-such-error")
    assert missing.status_code == 404
    assert "no-such-error" in missing.get_json()["error"]


def test_unknown_api_paths_answer_json_not_html(client):
    answer = client.get("/api/nothing/here")
    assert answer.status_code == 404
    assert answer.is_json and "error" in answer.get_json()
    assert client.post("/api/errors/recent").status_code == 405


def test_the_page_and_liveness_are_served(client):
    assert client.get("/").status_code == 200
    assert client.get("/healthz").get_json() == {"status": "ok"}
