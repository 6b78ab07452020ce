"""The reader process: journals payloads untouched, reconnects after Redis restarts, notices
a dead link, keeps running when Redis is not there at start, journals everything published
before a stop, is restarted when it dies, and dies with the process that started it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ingest.spool import Spool
from ingest.subscriber import Subscriber
from tests.conftest import wait_for
from tests.redis_server import PrivateRedis

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def private_redis(tmp_path):
    server = PrivateRedis(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def spool(tmp_path):
    spool = Spool(tmp_path / "spool")
    spool.open()
    yield spool
    spool.close()


def _subscriber(url: str, channel: str, spool: Spool, interval: int = 2) -> Subscriber:
    return Subscriber(url, channel, spool, health_check_interval=interval)


def _journaled(spool: Spool) -> list[bytes]:
    records, _ = spool.read(1_000_000, timeout=0)
    return [payload for payload, _ in records]


def _running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie nobody has reaped yet counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def test_journals_payloads_untouched(private_redis, channel, spool):
    sub = _subscriber(private_redis.url, channel, spool)
    sub.start()
    try:
        wait_for(lambda: sub.subscribed)
        client = private_redis.client()
        for raw in (b"{}", b"\xff\xfe not utf-8", b"x" * 70000):
            assert client.publish(channel, raw) == 1
        wait_for(lambda: sub.received == 3)
        assert sub.last_message_time() is not None
    finally:
        sub.stop()
    assert _journaled(spool) == [b"{}", b"\xff\xfe not utf-8", b"x" * 70000]


def test_resubscribes_within_seconds_after_redis_restarts(private_redis, channel, spool):
    sub = _subscriber(private_redis.url, channel, spool)
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
    assert _journaled(spool) == [b"before", b"after"]


def test_keeps_trying_when_redis_is_absent_at_start(tmp_path, channel, spool):
    server = PrivateRedis(tmp_path)  # not started yet
    sub = _subscriber(server.url, channel, spool)
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


def test_a_link_that_stops_answering_health_checks_is_dropped(private_redis, channel, spool):
    sub = _subscriber(private_redis.url, channel, spool, interval=1)
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


def test_a_stop_journals_everything_published_before_it(private_redis, channel, spool):
    sub = _subscriber(private_redis.url, channel, spool)
    sub.start()
    try:
        wait_for(lambda: sub.subscribed)
        client = private_redis.client()
        pipe = client.pipeline(transaction=False)
        for i in range(20_000):
            pipe.publish(channel, b"m%d" % i)
        assert sum(pipe.execute()) == 20_000
    finally:
        sub.stop()  # at once: most of the 20,000 are still in Redis or in the socket
    assert not sub.is_alive() and not sub.subscribed
    assert sub.received == 20_000
    assert _journaled(spool) == [b"m%d" % i for i in range(20_000)]
    assert sub.gaps == []  # a requested stop is not a gap in listening


def test_a_reader_that_dies_is_restarted_and_the_gap_recorded(private_redis, channel, spool):
    sub = _subscriber(private_redis.url, channel, spool)
    sub.start()
    try:
        wait_for(lambda: sub.subscribed)
        client = private_redis.client()
        client.publish(channel, b"one")
        wait_for(lambda: sub.received == 1)
        first = sub.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: sub.pid != first and sub.subscribed, timeout=10,
                 message="a new reader to subscribe")
        client.publish(channel, b"two")
        wait_for(lambda: sub.received == 2)
    finally:
        sub.stop()
    assert sub.restarts == 1 and sub.reconnects == 1
    assert "exited" in (sub.last_error or "")
    assert _journaled(spool) == [b"one", b"two"]


def test_readers_killed_mid_stream_leave_every_journaled_record_counted(
        private_redis, channel, spool):
    """kill -9 the reader three times while messages stream in: what each one journaled is
    counted once, by it or by the reader started in its place, never twice, never missed."""
    import threading

    sub = _subscriber(private_redis.url, channel, spool)
    sub.start()
    done = threading.Event()

    def publish() -> None:
        client = private_redis.client()
        i = 0
        while not done.is_set():
            pipe = client.pipeline(transaction=False)
            for _ in range(200):
                pipe.publish(channel, b"m%d" % i)
                i += 1
            pipe.execute()

    publisher = threading.Thread(target=publish, daemon=True)
    try:
        wait_for(lambda: sub.subscribed)
        publisher.start()
        for _ in range(3):
            wait_for(lambda: sub.received > 0)
            before = sub.pid
            time.sleep(0.3)
            os.kill(before, signal.SIGKILL)
            wait_for(lambda killed=before: sub.pid != killed and sub.subscribed, timeout=10,
                     message="a new reader to subscribe")
        time.sleep(0.3)
    finally:
        done.set()
        publisher.join(10)
        sub.stop()
    assert sub.restarts == 3
    journaled = _journaled(spool)
    assert len(journaled) > 1000
    assert sub.received == len(journaled) == spool.read_records
    assert spool.unread == 0


_PARENT = textwrap.dedent("""
    import sys, time
    from ingest.spool import Spool
    from ingest.subscriber import Subscriber
    spool = Spool(sys.argv[1])
    spool.open()
    sub = Subscriber(sys.argv[2], sys.argv[3], spool, health_check_interval=2)
    sub.start()
    while not sub.subscribed:
        time.sleep(0.05)
    print(sub.pid, flush=True)
    time.sleep(60)
""")


def test_the_reader_exits_when_its_parent_is_killed(private_redis, channel, tmp_path):
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, str(tmp_path / "spool"), private_redis.url, channel],
        cwd=ROOT, stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None
        reader_pid = int(parent.stdout.readline())
        assert _running(reader_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        wait_for(lambda: not _running(reader_pid), timeout=5,
                 message="the orphaned reader to exit")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)
    # Nothing of ours is left subscribed to the channel.
    wait_for(lambda: private_redis.client().pubsub_numsub(channel)[0][1] == 0, timeout=5)
