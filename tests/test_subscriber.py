"""The reader thread: reconnects after Redis restarts, notices a dead link, and keeps
running when Redis is not there at start."""

from __future__ import annotations

import time

import pytest

from ingest.subscriber import Subscriber
from tests.conftest import wait_for
from tests.redis_server import PrivateRedis


@pytest.fixture
def private_redis(tmp_path):  # type: ignore[no-untyped-def]
    server = PrivateRedis(tmp_path).start()
    yield server
    server.stop()


class Collected(list):
    """A sink that keeps what the subscriber hands it."""

    def put(self, payload: bytes, received: float) -> bool:
        self.append((payload, received))
        return True


def _subscriber(url: str, channel: str, inbox: Collected, interval: int = 2) -> Subscriber:
    return Subscriber(url, channel, inbox.put, health_check_interval=interval)


def test_hands_payloads_to_the_sink_untouched(private_redis, channel):  # type: ignore[no-untyped-def]
    inbox = Collected()
    sub = _subscriber(private_redis.url, channel, inbox)
    sub.start()
    try:
        wait_for(lambda: sub.subscribed)
        client = private_redis.client()
        for raw in (b"{}", b"\xff\xfe not utf-8", b"x" * 70000):
            assert client.publish(channel, raw) == 1
        wait_for(lambda: sub.received == 3)
    finally:
        sub.stop()
    assert [payload for payload, _ in inbox] == [
        b"{}", b"\xff\xfe not utf-8", b"x" * 70000]


def test_resubscribes_within_seconds_after_redis_restarts(private_redis, channel):  # type: ignore[no-untyped-def]
    inbox = Collected()
    sub = _subscriber(private_redis.url, channel, inbox)
    sub.start()
    try:
        wait_for(lambda: sub.subscribed)
        private_redis.client().publish(channel, b"before")
        wait_for(lambda: sub.received == 1)
        private_redis.stop()
        wait_for(lambda: not sub.subscribed, timeout=5, message="the loss to be noticed")
        assert sub.not_listening_since is not None
        time.sleep(1.0)
        private_redis.start()
        back = time.monotonic()
        wait_for(lambda: sub.subscribed, timeout=10, message="resubscription")
        assert time.monotonic() - back < 3.0
        private_redis.client().publish(channel, b"after")
        wait_for(lambda: sub.received == 2)
    finally:
        sub.stop()
    assert sub.reconnects == 1
    (gap,) = sub.gaps
    assert gap[1] is not None and gap[1] > gap[0]


def test_keeps_trying_when_redis_is_absent_at_start(tmp_path, channel):  # type: ignore[no-untyped-def]
    server = PrivateRedis(tmp_path)  # not started yet
    inbox = Collected()
    sub = _subscriber(server.url, channel, inbox)
    sub.start()
    try:
        wait_for(lambda: sub.last_error is not None, message="a failed attempt")
        assert not sub.subscribed
        assert sub.is_alive()
        server.start()
        wait_for(lambda: sub.subscribed, timeout=15, message="subscription once Redis is up")
    finally:
        sub.stop()
        server.stop()


def test_a_link_that_stops_answering_health_checks_is_dropped(private_redis, channel):  # type: ignore[no-untyped-def]
    inbox = Collected()
    sub = _subscriber(private_redis.url, channel, inbox, interval=1)
    sub.start()
    try:
        wait_for(lambda: sub.subscribed)
        # A paused server reads nothing and answers nothing, like a dead link.
        private_redis.client().execute_command("CLIENT", "PAUSE", "9000", "ALL")
        wait_for(lambda: not sub.subscribed, timeout=12, message="the dead link to be noticed")
        assert "health check" in (sub.last_error or "")
        wait_for(lambda: sub.subscribed, timeout=20, message="resubscription after the pause")
    finally:
        sub.stop()
