"""INGEST_SOURCE=stream: what was added while the monitor was down is stored, entries are
acknowledged only once committed, and monitors in one group share the load."""

from __future__ import annotations

import json
import time
import uuid

import psycopg2
import pytest
from sqlalchemy import func, select

from ingest.service import IngestService
from live.status import conservation
from queries.schema import error_logs
from tests.conftest import fresh_schema, wait_for


@pytest.fixture
def stream(redis_client):
    name = f"test:{uuid.uuid4().hex}:stream"
    yield name
    redis_client.delete(name)


def _entry(i: int) -> dict[str, bytes]:
    return {"data": json.dumps({"error_id": f"s-{i}", "severity": "error",
                                "message": f"failure {i}", "category": "network"}).encode()}


def _count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(error_logs)).scalar_one()


def _pending(redis_client, stream: str, group: str) -> int:
    return redis_client.xpending(stream, group)["pending"]


def test_entries_added_while_down_are_stored_and_acknowledged(
        engine, db_url, make_settings, redis_client, stream):
    for i in range(500):
        redis_client.xadd(stream, _entry(i))
    redis_client.xadd(stream, {"severity": "critical", "message": "fields, no data",
                               "error_id": "plain-fields"})
    settings = make_settings(database_url=db_url, ingest_source="stream", error_stream=stream)
    ingest = IngestService(settings, engine)
    ingest.start()
    try:
        wait_for(lambda: ingest.counters()["stored"] == 501, timeout=20)
        wait_for(lambda: _pending(redis_client, stream, settings.stream_group) == 0,
                 message="every entry acknowledged")
        assert ingest.subscriber.acked == 501
    finally:
        ingest.stop()
    assert _count(engine) == 501
    assert conservation(ingest.counters())["holds"]


def test_entries_are_not_acknowledged_before_the_store_commits(
        pg_url, make_settings, redis_client, stream):
    from queries.engine import make_engine

    engine = make_engine(pg_url)
    fresh_schema(engine)
    locker = psycopg2.connect(pg_url)
    locker.cursor().execute("LOCK TABLE error_logs IN ACCESS EXCLUSIVE MODE")
    settings = make_settings(database_url=pg_url, ingest_source="stream", error_stream=stream)
    ingest = IngestService(settings, engine)
    ingest.start()
    try:
        for i in range(200):
            redis_client.xadd(stream, _entry(i))
        wait_for(lambda: ingest.counters()["received"] == 200)
        assert _pending(redis_client, stream, settings.stream_group) == 200
        locker.rollback()
        wait_for(lambda: _pending(redis_client, stream, settings.stream_group) == 0,
                 timeout=20, message="acknowledgement after the commit")
        assert _count(engine) == 200
    finally:
        locker.close()
        ingest.stop()
        engine.dispose()


def test_two_monitors_in_one_group_share_the_stream_without_double_storage(
        engine, db_url, make_settings, redis_client, stream, tmp_path):
    monitors = [
        IngestService(make_settings(database_url=db_url, ingest_source="stream",
                                    error_stream=stream, stream_consumer=f"worker-{n}",
                                    spool_dir=str(tmp_path / f"spool-{n}")), engine)
        for n in (1, 2)]
    for monitor in monitors:
        monitor.start()
    try:
        wait_for(lambda: all(m.subscriber.subscribed for m in monitors))
        for start in range(0, 5000, 100):
            pipe = redis_client.pipeline(transaction=False)
            for i in range(start, start + 100):
                pipe.xadd(stream, _entry(i))
            pipe.execute()
        wait_for(lambda: sum(m.counters()["stored"] for m in monitors) == 5000, timeout=30)
    finally:
        for monitor in monitors:
            monitor.stop()
    assert _count(engine) == 5000
    assert sum(m.counters()["duplicate"] for m in monitors) == 0
    assert all(m.counters()["received"] > 0 for m in monitors)  # both took a share


def _stream_settings(make_settings, db_url, stream, tmp_path, name, **extra):
    return make_settings(database_url=db_url, ingest_source="stream", error_stream=stream,
                         stream_consumer=name, spool_dir=str(tmp_path / f"spool-{name}"),
                         **extra)


def test_a_dead_consumers_20000_pending_entries_are_all_reclaimed_within_15_s(
        engine, db_url, make_settings, redis_client, stream, tmp_path):
    settings = _stream_settings(make_settings, db_url, stream, tmp_path, "survivor",
                                stream_claim_idle_ms=1000, stream_reclaim_interval_ms=500)
    redis_client.xgroup_create(stream, settings.stream_group, id="0", mkstream=True)
    for start in range(0, 20_000, 1000):
        pipe = redis_client.pipeline(transaction=False)
        for i in range(start, start + 1000):
            pipe.xadd(stream, _entry(i))
        pipe.execute()
    # A consumer that read everything and died before acknowledging any of it.
    while redis_client.xreadgroup(settings.stream_group, "dead", {stream: ">"}, count=5000):
        pass
    assert _pending(redis_client, stream, settings.stream_group) == 20_000
    survivor = IngestService(settings, engine)
    survivor.start()
    try:
        wait_for(lambda: survivor.counters()["stored"] == 20_000, timeout=15,
                 message="every entry of the dead consumer stored by the survivor")
        wait_for(lambda: _pending(redis_client, stream, settings.stream_group) == 0,
                 message="nothing pending")
        wait_for(lambda: [c["name"] for c in redis_client.xinfo_consumers(
            stream, settings.stream_group)] == [b"survivor"], timeout=10,
            message="the dead consumer removed once empty")
        assert survivor.status()["stream"]["claimed"] == 20_000
    finally:
        survivor.stop()
    assert _count(engine) == 20_000
    assert conservation(survivor.counters())["holds"]


def test_a_live_consumer_whose_store_is_locked_keeps_its_entries(
        pg_url, make_settings, redis_client, stream, tmp_path):
    from queries.engine import make_engine

    engine = make_engine(pg_url)
    fresh_schema(engine)
    settings = _stream_settings(make_settings, pg_url, stream, tmp_path, "live",
                                stream_claim_idle_ms=2000, stream_reclaim_interval_ms=300)
    locker = psycopg2.connect(pg_url)
    locker.cursor().execute("LOCK TABLE error_logs IN ACCESS EXCLUSIVE MODE")
    live = IngestService(settings, engine)
    live.start()
    try:
        for i in range(300):
            redis_client.xadd(stream, _entry(i))
        wait_for(lambda: live.counters()["received"] == 300)
        # Three times the claim threshold with the store away: a peer finds nothing idle.
        for _ in range(12):
            time.sleep(0.5)
            claimed = redis_client.xautoclaim(stream, settings.stream_group, "peer",
                                              min_idle_time=2000, start_id="0-0", count=1000)
            assert claimed[1] == [], "a peer took entries of a consumer that is alive"
        locker.rollback()
        wait_for(lambda: _pending(redis_client, stream, settings.stream_group) == 0,
                 timeout=20, message="stored and acknowledged by the live consumer")
    finally:
        locker.close()
        live.stop()
    assert _count(engine) == 300
    assert live.counters()["duplicate"] == 0
    engine.dispose()


def test_entries_trimmed_before_they_were_read_are_counted_as_lost(
        engine, db_url, make_settings, redis_client, stream, tmp_path):
    settings = _stream_settings(make_settings, db_url, stream, tmp_path, "one",
                                stream_reclaim_interval_ms=300)
    first = IngestService(settings, engine)
    first.start()
    wait_for(lambda: first.subscriber.subscribed)
    first.stop()
    for start in range(0, 5000, 1000):
        pipe = redis_client.pipeline(transaction=False)
        for i in range(start, start + 1000):
            pipe.xadd(stream, _entry(i))
        pipe.execute()
    redis_client.xtrim(stream, maxlen=1000, approximate=False)
    again = IngestService(settings, engine)
    again.start()
    try:
        wait_for(lambda: again.counters()["stored"] == 1000, timeout=20)
        wait_for(lambda: again.status()["stream"]["lostTrimmed"] == 4000, timeout=10,
                 message="4,000 trimmed entries reported")
        wait_for(lambda: [a for a in again.alerts.firing() if a.rule == "stream_lost"],
                 timeout=5, message="the stream_lost alert")
        (lost,) = [a for a in again.alerts.firing() if a.rule == "stream_lost"]
        assert lost.key == stream and "4,000 entries" in lost.summary
    finally:
        again.stop()
    assert _count(engine) == 1000


def test_on_a_redis_cluster_two_monitors_store_every_stream_entry_once(
        engine, db_url, cluster_settings, redis_cluster, channel, tmp_path):
    """Issue 16: REDIS_CLUSTER=true reads `{<channel>}:stream` (XREADGROUP, XAUTOCLAIM, XINFO
    through a RedisCluster); what was added before and during the run is stored once and
    acknowledged."""
    settings = [cluster_settings(database_url=db_url, ingest_source="stream",
                                 stream_consumer=f"worker-{n}",
                                 spool_dir=str(tmp_path / f"spool-{n}")) for n in (1, 2)]
    stream = settings[0].error_stream
    assert stream == "{" + channel + "}:stream"
    cluster = redis_cluster.client()
    for i in range(300):
        cluster.xadd(stream, _entry(i))
    monitors = [IngestService(s, engine) for s in settings]
    for monitor in monitors:
        monitor.start()
    try:
        wait_for(lambda: all(m.subscriber.subscribed for m in monitors))
        for start in range(300, 2000, 100):
            pipe = cluster.pipeline(transaction=False)
            for i in range(start, start + 100):
                pipe.xadd(stream, _entry(i))
            pipe.execute()
        wait_for(lambda: sum(m.counters()["stored"] for m in monitors) == 2000, timeout=30)
        wait_for(lambda: _pending(cluster, stream, settings[0].stream_group) == 0,
                 message="every entry acknowledged")
        # The trimmed-entries check reads XINFO through the cluster too: nothing lost.
        wait_for(lambda: all(m.subscriber.trim_checks > 0 for m in monitors),
                 message="the lost-trimmed count read from XINFO")
    finally:
        for monitor in monitors:
            monitor.stop()
        cluster.close()
    assert _count(engine) == 2000
    assert sum(m.counters()["duplicate"] for m in monitors) == 0
    assert all(m.subscriber.lost_trimmed == 0 for m in monitors)
    assert all(conservation(m.counters())["holds"] for m in monitors)
