"""The corpus of real TickStock messages (tests/real_shapes.py) through the running app,
against real Redis and PostgreSQL: what each one must show, recurrences kept, health by the
time received, and test traffic that changes nothing."""

from __future__ import annotations

import time
from urllib.parse import quote

import orjson
import pytest

from tests.conftest import wait_for
from tests.real_shapes import cases, minimal_message


@pytest.fixture
def monitor(start_monitor, pg_url, receiver):
    from queries.engine import make_engine
    from tests.conftest import fresh_schema

    engine = make_engine(pg_url)
    fresh_schema(engine)
    engine.dispose()
    return start_monitor(database_url=pg_url, alert_webhook_url=receiver.url)


def _stored(monitor, count: int) -> None:
    wait_for(lambda: monitor.ingest.counters()["stored"] >= count, timeout=10,
             message=f"{count} rows stored")


def test_every_real_shape_shows_what_the_operator_must_see(monitor, redis_client, channel):
    client = monitor.dash_app.server.test_client()
    corpus = cases()
    for case in corpus:
        assert redis_client.publish(channel, orjson.dumps(case.message)) == 1
    _stored(monitor, len(corpus))
    for case in corpus:
        answer = client.get("/api/errors/" + quote(case.message["error_id"], safe=""))
        assert answer.status_code == 200, case.name
        error = answer.get_json()
        for key, wanted in case.expect.items():
            assert error[key] == wanted, f"{case.name}: {key} is {error[key]!r}"
        for key in case.context_has:
            assert key in error["context"], f"{case.name}: context lacks {key}"
        if case.skew_hours is not None:
            assert abs(error["clockSkewSeconds"] - case.skew_hours * 3600) < 60, case.name
        else:
            assert abs(error["clockSkewSeconds"]) < 60, case.name


def test_fifty_recurrences_of_a_minimal_message_are_fifty_rows_and_one_group_of_fifty(
        monitor, redis_client, channel):
    client = monitor.dash_app.server.test_client()
    raw = orjson.dumps(minimal_message())
    pipe = redis_client.pipeline(transaction=False)
    for _ in range(50):
        pipe.publish(channel, raw)
    pipe.execute()
    _stored(monitor, 50)
    assert monitor.ingest.counters()["duplicate"] == 0
    wait_for(lambda: [g["count"] for g in client.get("/api/groups").get_json()]
             == [50], timeout=5, message="one group counting 50")
    recent = client.get("/api/errors/recent?limit=100").get_json()
    assert len(recent) == 50 and len({e["id"] for e in recent}) == 50


def test_a_critical_six_hours_in_the_past_turns_health_red_at_once_and_shows_its_skew(
        monitor, redis_client, channel):
    client = monitor.dash_app.server.test_client()
    (skewed,) = [c for c in cases() if c.skew_hours == -6]
    assert client.get("/api/errors/health").get_json()["health"] == "green"
    sent = time.monotonic()
    redis_client.publish(channel, orjson.dumps(skewed.message))
    wait_for(lambda: client.get("/api/errors/health").get_json()["health"] == "red",
             timeout=1.0, interval=0.02, message="health red within a second")
    assert time.monotonic() - sent < 1.0
    assert client.get("/api/errors/recent").get_json()[0]["id"] == skewed.message["error_id"]
    status = client.get("/api/monitor/status").get_json()
    flagged = [p for p in status["clockSkew"]["producers"] if p["flagged"]]
    assert [p["source"] for p in flagged] == ["TickStockPL"]
    assert abs(flagged[0]["skewSeconds"] + 6 * 3600) < 60


def test_test_traffic_is_stored_and_marked_but_changes_no_health_and_sends_no_webhook(
        monitor, redis_client, channel, receiver):
    client = monitor.dash_app.server.test_client()
    tests = [c for c in cases() if c.expect.get("test") is True]
    for case in tests:
        redis_client.publish(channel, orjson.dumps(case.message))
    _stored(monitor, len(tests))
    time.sleep(0.5)  # what would have fired has had time to
    health = client.get("/api/errors/health").get_json()
    assert (health["health"], health["criticalErrors"]) == ("green", 0)
    assert receiver.bodies == []
    assert monitor.ingest.alerts.firing() == []
    assert client.get("/api/errors/statistics?hours=1").get_json()["total"] == 0
    assert client.get("/api/errors/recent").get_json() == []
    assert len(client.get("/api/errors/recent?test=true").get_json()) == len(tests)
    found = client.get("/api/errors/search?q=test:true").get_json()["items"]
    assert {i["id"] for i in found} == {c.message["error_id"] for c in tests}
    assert all(i["test"] for i in found)
    assert client.get("/api/errors/search").get_json()["items"] == []
    detail = client.get("/api/errors/" + tests[0].message["error_id"]).get_json()
    assert detail["test"] is True


def test_simulate_sends_every_shape_and_each_normalises_to_an_error() -> None:
    import random
    from datetime import UTC, datetime

    from ingest.normalise import Limits, normalise
    from ingest.simulate import SHAPES
    from queries.records import ErrorEvent

    rng = random.Random(15)
    results = {name: normalise(orjson.dumps(build(rng)), datetime.now(UTC), Limits())
               for name, build in SHAPES.items()}
    assert all(isinstance(r, ErrorEvent) for r in results.values()), results
    assert results["test-script"].is_test
    assert results["error-publisher"].error_traceback is None
    assert results["skewed-clock"].clock_skew_seconds < -5 * 3600
