"""The dashboard's REST routes (CONTRACT.md §4): search, trends, CSV export, and their 400s."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest

import app as app_module
from queries.store import ErrorStore
from tests.factories import event

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def monitor(make_settings, db_url):
    monitor = app_module.build(make_settings(database_url=db_url))  # not started: no ingest
    yield monitor
    monitor.stop()


@pytest.fixture
def client(monitor):
    return monitor.dash_app.server.test_client()


def _store(monitor, *events) -> None:
    store = ErrorStore(monitor.engine)
    try:
        assert not store.write_batch(list(events)).refused
    finally:
        store.close()


# -- search -------------------------------------------------------------------------------
def test_search_answers_a_page_with_a_total(monitor, client) -> None:
    _store(monitor, *(event(error_id=f"s{i}", timestamp=NOW - timedelta(minutes=i),
                            severity="critical" if i % 2 else "error") for i in range(7)))
    body = client.get("/api/errors/search?q=severity:critical&page_size=2").get_json()
    assert [i["id"] for i in body["items"]] == ["s1", "s3"]
    assert body["total"] == 3 and body["totalExact"] and body["hasMore"]
    again = client.get("/api/errors/search", query_string={
        "q": "severity:critical", "page_size": 2, "cursor": body["nextCursor"]}).get_json()
    assert [i["id"] for i in again["items"]] == ["s5"] and not again["hasMore"]


def test_search_time_range_accepts_iso_and_epoch(monitor, client) -> None:
    _store(monitor, *(event(error_id=f"t{h}", timestamp=NOW - timedelta(hours=h))
                      for h in range(4)))
    start = (NOW - timedelta(hours=2, minutes=30)).isoformat().replace("+00:00", "Z")
    end = int((NOW - timedelta(minutes=30)).timestamp())
    body = client.get("/api/errors/search", query_string={"from": start, "to": end}).get_json()
    assert [i["id"] for i in body["items"]] == ["t1", "t2"]


@pytest.mark.parametrize("query, says", [
    ("q=severity:loud", "severity must be one of"),
    ("page=0", "page must be from 1"),
    ("page_size=501", "page_size must be from 1 to 500"),
    ("page=abc", "page must be a whole number"),
    ("from=yesterday", "from must be an ISO-8601 time"),
    ("from=2025-01-02T00:00:00Z&to=2025-01-01T00:00:00Z", "before its end"),
    ("cursor=bogus", "cursor"),
    ("page=500&page_size=50", "deeper than"),
])
def test_search_bad_parameters_are_400s(client, query: str, says: str) -> None:
    response = client.get(f"/api/errors/search?{query}")
    assert response.status_code == 400
    assert says in response.get_json()["error"]


def test_static_routes_win_over_the_error_id_route(monitor, client) -> None:
    # An error whose id looks like a route is still reachable under its own id's path
    # when the id is not one of the route names; the route names themselves are routes.
    _store(monitor, event(error_id="search"), event(error_id="a/b.csv"))
    assert "items" in client.get("/api/errors/search").get_json()
    assert "bySeverity" in client.get("/api/errors/trends").get_json()
    assert client.get("/api/errors/export.csv").mimetype == "text/csv"
    assert client.get("/api/errors/a/b.csv").get_json()["id"] == "a/b.csv"
    assert client.get("/api/errors/nothing-like-it").status_code == 404
    assert client.get("/api/errors/recent").status_code == 200


# -- trends -------------------------------------------------------------------------------
def test_trends_answers_series_and_rankings(monitor, client) -> None:
    _store(monitor, *(event(error_id=f"r{i}", timestamp=NOW - timedelta(minutes=10 * i),
                            symbol="AAPL" if i % 3 else "MSFT") for i in range(12)))
    body = client.get("/api/errors/trends?hours=3").get_json()
    assert body["bucket"] == "minute" and body["total"] == 12
    assert body["topSymbols"][0] == {"name": "AAPL", "count": 8}
    assert sum(p["error"] for p in body["bySeverity"]) == 12
    day = client.get("/api/errors/trends?hours=48&bucket=day").get_json()
    assert day["bucket"] == "day" and day["total"] == 12


@pytest.mark.parametrize("query, says", [
    ("hours=0", "hours must be from 1"),
    ("hours=99999", "hours must be from 1"),
    ("bucket=week", "bucket must be one of"),
    ("from=2025-01-02T00:00:00Z&to=2025-01-01T00:00:00Z", "from must be before to"),
    ("from=2024-01-01T00:00:00Z&to=2025-01-01T00:00:00Z", "at most"),
])
def test_trends_bad_parameters_are_400s(client, query: str, says: str) -> None:
    response = client.get(f"/api/errors/trends?{query}")
    assert response.status_code == 400
    assert says in response.get_json()["error"]


# -- export -------------------------------------------------------------------------------
def test_export_streams_the_query_as_csv(monitor, client) -> None:
    _store(monitor,
           event(error_id="x1", timestamp=NOW - timedelta(minutes=1), severity="critical",
                 error_message='=HYPERLINK("http://evil")', context={"symbol": "AAPL", "n": 1},
                 error_traceback="Traceback:\n  line 1"),
           event(error_id="x2", timestamp=NOW - timedelta(minutes=2), severity="critical",
                 error_message="plain, with a comma"),
           event(error_id="x3", timestamp=NOW - timedelta(minutes=3), severity="warning"))
    response = client.get("/api/errors/export.csv?q=severity:critical")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [r["error_id"] for r in rows] == ["x1", "x2"]
    first = rows[0]
    assert first["error_message"] == "'" + '=HYPERLINK("http://evil")'  # not a formula
    assert rows[1]["error_message"] == "plain, with a comma"
    assert json.loads(first["context"]) == {"n": 1, "symbol": "AAPL"}
    assert first["error_traceback"] == "Traceback:\n  line 1"
    assert first["timestamp"].endswith("Z")
    limited = client.get("/api/errors/export.csv?limit=1").get_data(as_text=True)
    assert len(list(csv.DictReader(io.StringIO(limited)))) == 1


def test_export_of_nothing_is_a_header(client) -> None:
    text = client.get("/api/errors/export.csv?q=nothing-matches").get_data(as_text=True)
    assert text.strip().startswith("timestamp,error_id,severity")
    assert len(text.strip().splitlines()) == 1


@pytest.mark.parametrize("query", ["q=category:nope", "limit=0", "from=soon"])
def test_export_bad_parameters_are_400s(client, query: str) -> None:
    response = client.get(f"/api/errors/export.csv?{query}")
    assert response.status_code == 400 and "error" in response.get_json()
