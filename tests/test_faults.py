"""Nothing lost: database outages, Redis restarts, kill -9, floods. Private servers only.

Each test starts its own redis-server and/or PostgreSQL cluster, so stopping them disturbs
nothing else. Conservation (received + replayed = stored + duplicate + rejected + refused +
log_only + pending + dropped) is checked after each.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import psycopg2
import pytest
from sqlalchemy import text

from ingest.service import IngestService
from live.status import conservation
from queries.engine import make_engine
from queries.schema import create_schema
from tests.conftest import wait_for
from tests.pg_cluster import PrivatePostgres
from tests.redis_server import PrivateRedis, free_port

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def private_redis(tmp_path):
    folder = tmp_path / "redis"
    folder.mkdir()
    server = PrivateRedis(folder).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def private_pg():
    cluster = PrivatePostgres().init()
    cluster.start()
    yield cluster
    cluster.destroy()


def _message(i: int) -> bytes:
    return json.dumps({"error_id": f"msg-{i:07d}", "severity": "error", "category": "pattern",
                       "message": f"failure {i}", "context": {"symbol": "AAPL"}}).encode()


def _stored_ids(url: str) -> list[str]:
    conn = psycopg2.connect(url)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT error_id FROM error_logs")
        ids = [row[0] for row in cur.fetchall()]
    conn.close()
    return ids


def _fresh_database(cluster: PrivatePostgres, name: str) -> str:
    admin = psycopg2.connect(cluster.url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cur.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    url = cluster.url.rsplit("/", 1)[0] + f"/{name}"
    engine = make_engine(url)
    create_schema(engine)
    engine.dispose()
    return url


def _assert_conserved(ingest: IngestService) -> None:
    result = conservation(ingest.counters())
    assert result["holds"], (result, ingest.counters())


def test_a_15_second_database_outage_loses_nothing(private_pg, private_redis, make_settings,
                                                   channel):
    url = _fresh_database(private_pg, "outage")
    engine = make_engine(url)
    ingest = IngestService(make_settings(redis_url=private_redis.url, database_url=url),
                           engine)
    ingest.start()
    publisher = private_redis.client()
    try:
        wait_for(lambda: ingest.subscriber.subscribed)
        for i in range(10_000):
            publisher.publish(channel, _message(i))
            if i == 3000:
                wait_for(lambda: ingest.counters()["stored"] >= 2000, timeout=20)
                private_pg.stop()
                down = time.monotonic()
            if i % 500 == 0:
                time.sleep(0.1)  # a stream, not one burst: the outage falls in its middle
        assert ingest.writer.store_ok is False or time.monotonic() - down > 15
        time.sleep(max(0.0, 15 - (time.monotonic() - down)))
        assert ingest.counters()["stored"] < 10_000
        assert ingest.counters()["spool_unread"] + ingest.counters()["pending_write"] > 0
        private_pg.start()
        back = time.monotonic()
        wait_for(lambda: ingest.counters()["stored"] == 10_000, timeout=60,
                 message="all 10,000 stored after the outage")
        recovery = time.monotonic() - back
    finally:
        ingest.stop()
        engine.dispose()
    ids = _stored_ids(url)
    assert len(ids) == 10_000 and len(set(ids)) == 10_000
    assert ingest.counters()["duplicate"] == 0
    _assert_conserved(ingest)
    assert any(h["what"] == "store unreachable" and h["to"] for h in ingest.status()["history"])
    print(f"\n15 s database outage: all 10,000 stored {recovery:.1f} s after it came back")


def test_listening_again_within_3_s_of_redis_coming_back(private_redis, make_settings,
                                                         engine, db_url, channel):
    ingest = IngestService(make_settings(redis_url=private_redis.url, database_url=db_url),
                           engine)
    ingest.start()
    heard: list[str] = []
    stop = threading.Event()
    # Redis answers PUBLISH before it writes the message to its subscriber; killed between the
    # two writes it loses a message its publisher was told reached one listener. That window
    # is Redis's, not ours, so the publisher holds while the kill lands, once the reader has
    # every message Redis acknowledged; it publishes through the outage and after it.
    hold, holding = threading.Event(), threading.Event()

    def publish() -> None:
        i = 0
        while not stop.is_set():
            if hold.is_set():
                holding.set()
                time.sleep(0.002)
                continue
            holding.clear()
            try:
                client = private_redis.client()
                if client.publish(channel, _message(i)) == 1:
                    heard.append(f"msg-{i:07d}")
                i += 1
            except Exception:  # noqa: BLE001 - Redis is down for a while: keep trying
                time.sleep(0.01)
            time.sleep(0.002)

    publisher = threading.Thread(target=publish)
    try:
        wait_for(lambda: ingest.subscriber.subscribed)
        publisher.start()
        time.sleep(1)
        hold.set()
        wait_for(holding.is_set, timeout=5, message="the publisher holding")
        wait_for(lambda: ingest.subscriber.received >= len(heard), timeout=10,
                 message="the reader receiving every message Redis acknowledged")
        private_redis.stop()
        hold.clear()
        wait_for(lambda: not ingest.subscriber.subscribed, timeout=5)
        status = ingest.status()
        assert status["subscribed"] is False and status["notListeningSince"]
        time.sleep(2)
        private_redis.start()
        back = time.monotonic()
        wait_for(lambda: ingest.subscriber.subscribed, timeout=10)
        relisten = time.monotonic() - back
        time.sleep(1)
        stop.set()
        publisher.join()
        deadline = time.monotonic() + 20  # the missing ones are named below
        while ingest.counters()["stored"] < len(heard) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        ingest.stop()
    assert relisten < 3.0
    from sqlalchemy import select

    from queries.schema import error_logs
    with engine.connect() as conn:
        stored = set(conn.execute(select(error_logs.c.error_id)).scalars())
    missing = sorted(set(heard) - stored)  # every message published to a listener is stored
    assert not missing, f"{len(missing)} not stored: {missing[:10]}; {ingest.counters()}"
    _assert_conserved(ingest)
    gaps = [h for h in ingest.status()["history"] if h["what"] == "not listening"]
    assert len(gaps) == 1 and gaps[0]["to"]
    print(f"\nRedis restart: listening again {relisten:.2f} s after Redis was back; "
          f"{len(heard)} heard, all stored")


def _get(url: str):
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.loads(answer.read())


def test_kill_9_then_restart_stores_everything_received(private_redis, pg_url, tmp_path,
                                                        channel):
    engine = make_engine(pg_url)
    from tests.conftest import fresh_schema
    fresh_schema(engine)
    engine.dispose()
    port = free_port()
    env = {**os.environ, "REDIS_URL": private_redis.url, "ERROR_CHANNEL": channel,
           "DATABASE_URL": pg_url, "PORT": str(port), "SPOOL_DIR": str(tmp_path / "spool"),
           # A slow writer: most of what is received is still uncommitted at the kill.
           "BATCH_MAX_WAIT_MS": "60000", "BATCH_MAX_ROWS": "100000"}
    base = f"http://127.0.0.1:{port}"

    def start() -> subprocess.Popen[bytes]:
        process = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=tmp_path,
                                   env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)

        def listening() -> bool:
            try:
                return _get(f"{base}/api/monitor/status")["subscribed"]
            except OSError:
                return False

        wait_for(listening, timeout=30, interval=0.1, message="the app to listen")
        return process

    process = start()
    publisher = private_redis.client()
    pipe = publisher.pipeline(transaction=False)
    for i in range(20_000):
        pipe.publish(channel, _message(i))
    pipe.execute()
    wait_for(lambda: _get(f"{base}/api/monitor/status")["counters"]["received"] >= 20_000,
             timeout=30)
    received = _get(f"{base}/api/monitor/status")["counters"]["received"]
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    assert len(_stored_ids(pg_url)) < received  # the kill really left work undone

    env["BATCH_MAX_WAIT_MS"] = "100"
    restarted = time.monotonic()
    process = start()
    try:
        wait_for(lambda: len(_stored_ids(pg_url)) >= received, timeout=60,
                 message="the replay to store everything received before the kill")
        replay = time.monotonic() - restarted
        status = _get(f"{base}/api/monitor/status")
        assert status["counters"]["replayed"] > 0
        assert status["conservation"]["holds"], status["counters"]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    ids = set(_stored_ids(pg_url))
    assert {f"msg-{i:07d}" for i in range(received)} <= ids
    print(f"\nkill -9 after {received} received: all {received} stored after the restart "
          f"({status['counters']['replayed']} replayed from the spool), {replay:.1f} s after "
          "the restart began (process start included)")


def test_a_throttled_consumer_is_not_cut_during_a_200k_burst(private_redis, pg_url,
                                                             make_settings, channel):
    engine = make_engine(pg_url)
    from tests.conftest import fresh_schema
    fresh_schema(engine)
    # The store crawls: a lock held elsewhere stalls every write during the burst.
    locker = psycopg2.connect(pg_url)
    cur = locker.cursor()
    cur.execute("LOCK TABLE error_logs IN ACCESS EXCLUSIVE MODE")
    ingest = IngestService(make_settings(redis_url=private_redis.url, database_url=pg_url,
                                         queue_max_messages=20_000), engine)
    ingest.start()
    total = 200_000
    try:
        wait_for(lambda: ingest.subscriber.subscribed)
        publisher = private_redis.client()
        for start in range(0, total, 1000):
            pipe = publisher.pipeline(transaction=False)
            for i in range(start, start + 1000):
                pipe.publish(channel, _message(i))
            pipe.execute()
        wait_for(lambda: ingest.counters()["received"] == total, timeout=120,
                 message="the reader to drain the burst while the store is stalled")
        assert ingest.counters()["stored"] == 0
        spooled = ingest.counters()["spool_unread"]
        assert spooled > 100_000  # waiting on disk, not in memory
        locker.rollback()
        released = time.monotonic()
        wait_for(lambda: ingest.counters()["stored"] == total, timeout=180)
        drained = time.monotonic() - released
    finally:
        locker.close()
        ingest.stop()
    assert ingest.counters()["reconnects"] == 0
    assert ingest.counters()["dropped"] == 0
    _assert_conserved(ingest)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(DISTINCT error_id) FROM error_logs")).scalar() \
            == total
    engine.dispose()
    print(f"\n{total:,}-message burst into a stalled store: all received ({spooled:,} waiting "
          f"in the spool), 0 dropped, 0 reconnects, all {total:,} stored {drained:.1f} s after "
          f"the store was released ({total / drained:,.0f} msg/s from the spool)")
