"""Webhook delivery against a real local HTTP server: retries, 429, a dead receiver."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from redis.backoff import ExponentialWithJitterBackoff

from alerts.rules import Notice
from alerts.webhook import WebhookNotifier, retry_after_seconds
from tests.conftest import wait_for

NOTICE = Notice("firing", {"id": "a1", "rule": "critical_error", "key": "fp", "count": 1,
                           "summary": "critical PolygonAPIError: down", "startedAt": "t"})


class Receiver:
    """A local HTTP server whose answers a test scripts: a list of (status, headers)."""

    def __init__(self, script=None, hang: bool = False, port: int = 0) -> None:
        self.script = list(script or [])
        self.hang = hang
        self.bodies: list[dict] = []
        self.times: list[float] = []
        # The Idempotency-Key of every POST (answered or not) and of the delivered ones.
        self.keys: list[str | None] = []
        self.delivered_keys: list[str | None] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # the name http.server calls
                length = int(self.headers["Content-Length"])
                body = json.loads(self.rfile.read(length))
                receiver.times.append(time.monotonic())
                receiver.keys.append(self.headers.get("Idempotency-Key"))
                if receiver.hang:
                    time.sleep(3)
                status, headers = receiver.script.pop(0) if receiver.script else (200, {})
                if status == 200:
                    receiver.bodies.append(body)
                    receiver.delivered_keys.append(self.headers.get("Idempotency-Key"))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fast_backoff():
    return ExponentialWithJitterBackoff(cap=0.2, base=0.05)


def test_a_notice_is_posted_as_slack_text_plus_fields(fast_backoff):
    receiver = Receiver()
    notifier = WebhookNotifier(receiver.url, backoff=fast_backoff)
    notifier.start()
    try:
        notifier.send(NOTICE)
        wait_for(lambda: notifier.stats.delivered == 1)
    finally:
        notifier.stop()
        receiver.close()
    (body,) = receiver.bodies
    assert body["text"].startswith("🔴 FIRING [critical_error]")
    assert body["kind"] == "firing" and body["rule"] == "critical_error" and body["id"] == "a1"


def test_a_receiver_failing_until_its_third_try_gets_it_once(fast_backoff):
    receiver = Receiver(script=[(500, {}), (503, {}), (200, {})])
    notifier = WebhookNotifier(receiver.url, max_tries=5, backoff=fast_backoff)
    notifier.start()
    try:
        notifier.send(NOTICE)
        wait_for(lambda: notifier.stats.delivered == 1)
    finally:
        notifier.stop()
        receiver.close()
    assert len(receiver.times) == 3 and len(receiver.bodies) == 1
    assert notifier.stats.retries == 2 and notifier.stats.failed == 0


def test_a_429_retry_after_is_honoured(fast_backoff):
    receiver = Receiver(script=[(429, {"Retry-After": "1"}), (200, {})])
    notifier = WebhookNotifier(receiver.url, backoff=fast_backoff)
    notifier.start()
    try:
        notifier.send(NOTICE)
        wait_for(lambda: notifier.stats.delivered == 1, timeout=5)
    finally:
        notifier.stop()
        receiver.close()
    assert receiver.times[1] - receiver.times[0] >= 0.95


def test_giving_up_after_max_tries_is_counted(fast_backoff):
    receiver = Receiver(script=[(500, {})] * 10)
    notifier = WebhookNotifier(receiver.url, max_tries=3, backoff=fast_backoff)
    notifier.start()
    try:
        notifier.send(NOTICE)
        wait_for(lambda: notifier.stats.failed == 1)
    finally:
        notifier.stop()
        receiver.close()
    assert len(receiver.times) == 3 and notifier.stats.last_error == "HTTP 500"


def test_a_receiver_that_never_answers_does_not_block_the_sender(fast_backoff):
    receiver = Receiver(hang=True)
    notifier = WebhookNotifier(receiver.url, max_tries=2, timeout=0.5, backoff=fast_backoff,
                               queue_size=5)
    notifier.start()
    try:
        started = time.monotonic()
        for _ in range(20):
            notifier.send(NOTICE)  # returns at once, full queue or not
        assert time.monotonic() - started < 0.1
        wait_for(lambda: notifier.stats.failed >= 14, timeout=10)
    finally:
        notifier.stop()
        receiver.close()
    assert "timed out" in (notifier.stats.last_error or "")


def test_retry_after_as_an_http_date():
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert retry_after_seconds("soon") is None
