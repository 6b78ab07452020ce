"""The live feed between `python -m ingest` and the web workers: one numbering everywhere,
back-fill, restarts, heartbeats, and a web-only monitor that serves what it follows."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

import app as app_module
from live.feed import FeedNames, parse_published
from live.follower import LiveFeedFollower, combine
from live.publisher import LiveFeedPublisher
from live.ring_buffer import Entry
from tests.conftest import REDIS_URL, wait_for
from tests.factories import event


def _status(**overrides):
    base = {"subscribed": True, "storeOk": True, "lastBatchSeconds": 0.01,
            "counters": {"received": 1, "replayed": 0, "stored": 1}, "channel": "c"}
    base.update(overrides)
    return base


def _entries(*ids: str) -> list[Entry]:
    return [Entry(n, event(error_id=i)) for n, i in enumerate(ids, 1)]


def _held(follower: LiveFeedFollower) -> list[tuple[int, str]]:
    return [(e.seq, e.event.error_id) for e in follower.ring.since(0)]


@pytest.fixture
def feed(channel, redis_client):
    """Publishers and followers on the test's channel, all stopped and cleaned up after."""
    made: list[LiveFeedPublisher | LiveFeedFollower] = []

    class Feed:
        names = FeedNames.for_channel(channel)

        def publisher(self, capacity: int = 100, status=_status):
            publisher = LiveFeedPublisher(REDIS_URL, channel, status, capacity)
            publisher.start()
            made.append(publisher)
            return publisher

        def follower(self, capacity: int = 100, **kwargs):
            follower = LiveFeedFollower(REDIS_URL, channel, capacity, **kwargs)
            follower.start()
            made.append(follower)
            return follower

    yield Feed()
    for thing in reversed(made):
        thing.stop()
    names = FeedNames.for_channel(channel)
    redis_client.delete(names.seq, names.recent, names.status)


def test_every_follower_holds_the_same_sequence_numbers(feed):
    publisher = feed.publisher()
    followers = [feed.follower(), feed.follower()]
    wait_for(lambda: all(f.connected for f in followers))
    publisher.publish(_entries("a", "b"))
    publisher.publish(_entries("c"))
    wait_for(lambda: all(len(f.ring) == 3 for f in followers))
    first, second = (_held(f) for f in followers)
    assert first == second
    assert [i for _, i in first] == ["a", "b", "c"]
    seqs = [s for s, _ in first]
    assert seqs == list(range(seqs[0], seqs[0] + 3))
    # Large enough to follow any earlier numbering, small enough for a browser's JSON.
    assert 10**15 < seqs[0] < 2**53


def test_a_late_follower_backfills_the_newest_entries(feed):
    publisher = feed.publisher(capacity=5)
    publisher.publish(_entries(*(f"e{i}" for i in range(8))))
    wait_for(lambda: publisher.published == 8)
    follower = feed.follower()
    assert [i for _, i in _held(follower)] == ["e3", "e4", "e5", "e6", "e7"]
    assert follower.ring.last_seq == publisher.last_seq


def test_a_restarted_ingest_continues_the_numbering(feed, redis_client):
    follower = feed.follower()
    first = feed.publisher()
    first.publish(_entries("before"))
    wait_for(lambda: len(follower.ring) == 1)
    first.stop()
    second = feed.publisher()
    second.publish(_entries("after"))  # its own ring starts again at 1
    wait_for(lambda: len(follower.ring) == 2, message="the entry after the restart")
    (seq_before, _), (seq_after, _) = _held(follower)
    assert seq_after == seq_before + 1
    # Redis lost the counter (a restart without persistence): numbers still only grow.
    redis_client.delete(feed.names.seq)
    second.publish(_entries("after-redis-restart"))
    wait_for(lambda: len(follower.ring) == 3)
    assert _held(follower)[-1][0] > seq_after


def test_health_is_unknown_without_a_fresh_heartbeat(feed):
    publisher = feed.publisher()
    follower = feed.follower(stale_after=1.5)
    wait_for(lambda: follower.monitor_summary()["ingest"] == "ok", message="a heartbeat")
    assert follower.listening_state().subscribed is True
    publisher.stop()  # a clean stop removes its heartbeat
    wait_for(lambda: follower.monitor_summary()["ingest"] == "no heartbeat", timeout=5)
    state = follower.listening_state()
    assert state.subscribed is False and state.not_listening_since is not None
    assert "no heartbeat" in (state.blind_reason or "")
    status = follower.status()
    assert status["counters"]["stored"] == 1  # the last known, kept for context
    assert status["counters"]["anything"] == 0  # what the metrics ask for never fails


def test_a_heartbeat_that_stops_changing_is_stale(feed, redis_client):
    # A frozen process (SIGSTOP, a hung host) leaves its last heartbeat behind unchanged.
    frozen = json.dumps({"id": "frozen:1", "at": time.time(), "status": _status()})
    redis_client.hset(feed.names.status, "frozen:1", frozen)
    follower = feed.follower(stale_after=1.0)
    assert follower.listening_state().subscribed is True
    wait_for(lambda: follower.listening_state().subscribed is False, timeout=5)


def test_no_heartbeat_at_all_is_unknown_and_metrics_still_answer(feed):
    follower = feed.follower()
    status = follower.status()
    assert status["ingest"] == "no heartbeat" and status["subscribed"] is False
    assert status["counters"]["received"] == 0


def test_unreadable_feed_messages_are_counted_and_skipped(feed, redis_client):
    follower = feed.follower()
    wait_for(lambda: follower.connected)
    redis_client.publish(feed.names.channel, b"not a feed message")
    redis_client.publish(feed.names.channel, b"12|[{\"error_id\": 1}]")
    publisher = feed.publisher()
    publisher.publish(_entries("good"))
    wait_for(lambda: len(follower.ring) == 1)
    assert follower.undecodable == 2


def test_the_publisher_never_blocks_the_pipeline_when_redis_is_away():
    publisher = LiveFeedPublisher("redis://127.0.0.1:1/0", "nowhere", _status, 10,
                                  max_pending=100)
    publisher.start()
    try:
        started = time.monotonic()
        for _ in range(50):
            publisher.publish(_entries("a", "b", "c", "d", "e"))
        assert time.monotonic() - started < 0.5
        wait_for(lambda: publisher.last_error is not None, message="the Redis error noted")
        assert publisher.dropped + publisher.lost + len(publisher._pending) == 250
    finally:
        publisher.stop()


def test_wire_format_round_trips_an_event():
    original = event(error_id="w1", context={"symbol": "AAPL", "n": [1, 2]}, symbol="AAPL")
    from live.feed import encode_event

    message = b"41|[" + encode_event(original) + b"]"
    (entry,) = parse_published(message)
    assert entry.seq == 41 and entry.event == original


def test_several_ingest_processes_are_summed():
    one = _status(counters={"received": 3, "replayed": 0, "stored": 3, "duplicate": 0,
                            "rejected": 0, "refused": 0, "log_only": 0, "spool_unread": 0,
                            "pending_write": 0, "dropped": 0},
                  lastMessageAt="2026-01-01T00:00:01Z", storeOk=None)
    two = _status(counters={"received": 4, "replayed": 0, "stored": 4, "duplicate": 0,
                            "rejected": 0, "refused": 0, "log_only": 0, "spool_unread": 0,
                            "pending_write": 0, "dropped": 0},
                  subscribed=False, lastMessageAt="2026-01-01T00:00:05Z")
    combined = combine([one, two])
    assert combined["counters"]["received"] == 7
    assert combined["conservation"]["holds"] is True
    assert combined["subscribed"] is True  # the stream is read while any reader is up
    assert combined["storeOk"] is True
    assert combined["lastMessageAt"] == "2026-01-01T00:00:05Z"
    assert len(combined["ingestProcesses"]) == 2
    assert combine([one, _status(storeOk=False)])["storeOk"] is False


def test_a_web_only_monitor_serves_the_feed_of_an_ingest_elsewhere(
        make_settings, sqlite_url, redis_client):
    settings = make_settings(database_url=sqlite_url)
    # The ingest process, in miniature: IngestService plus the publisher, as ingest/__main__.
    ingest_side = app_module.build(settings)
    publisher = LiveFeedPublisher(REDIS_URL, settings.error_channel,
                                  ingest_side.ingest.status, settings.ring_buffer_size)
    ingest_side.ingest.pipeline.add_listener(publisher.publish)
    web = app_module.build(make_settings(database_url=sqlite_url, ingest_enabled=False))
    assert web.ingest is None and web.follower is not None
    client = web.dash_app.server.test_client()
    try:
        web.start()
        assert client.get("/api/errors/health").get_json()["status"] == "unknown"
        assert client.get("/metrics").status_code == 200
        ingest_side.start()
        publisher.start()
        wait_for(lambda: client.get("/api/errors/health").get_json()["monitor"]["subscribed"],
                 message="a heartbeat saying the ingest listens")
        for i in range(5):
            redis_client.publish(settings.error_channel,
                                 json.dumps({"error_id": f"web-{i}", "severity": "error",
                                             "message": "seen from the web side"}))
        wait_for(lambda: len(web.follower.ring) == 5, message="the live feed")
        status = client.get("/api/monitor/status").get_json()
        assert status["ingest"] == "ok"
        assert status["follower"]["ringBuffer"]["size"] == 5
        wait_for(lambda: client.get("/api/monitor/status").get_json()["counters"]["stored"]
                 == 5, message="the stored count in the heartbeat")
        assert "tickstock_monitor_stored_total 5.0" in client.get("/metrics").text
        health = client.get("/api/errors/health").get_json()
        assert health["status"] == "operational" and health["monitor"]["ingestProcesses"] == 1
        assert [e.event.error_id for e in web.follower.ring.since(0)] == [
            f"web-{i}" for i in range(5)]
    finally:
        web.stop()
        ingest_side.stop()
        publisher.stop()
        names = FeedNames.for_channel(settings.error_channel)
        redis_client.delete(names.seq, names.recent, names.status)


def test_importing_app_connects_to_nothing_and_starts_no_thread(tmp_path):
    code = ("import threading, app; "
            "assert app.server.monitor is None; "
            "print(sorted(t.name for t in threading.enumerate()))")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60,
                          env={"PYTHONPATH": str(Path(app_module.__file__).parent),
                               "REDIS_URL": "redis://127.0.0.1:1/0"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['MainThread']"

