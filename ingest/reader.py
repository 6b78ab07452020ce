"""`python -m ingest.reader`: the process that reads `ERROR_CHANNEL` into the spool, only that.

Redis cuts a pub/sub client whose output buffer passes its limit (32 MB by default), and a
thread that shares a GIL with normalisation and database writes gets too little of it in a
flood to keep the socket drained. So the reader is a process of its own, started and
supervised by `ingest/subscriber.py`. redis-py makes the connection (URL, password, db, unix
socket), does the handshake and sends SUBSCRIBE; from then on the socket is read here in large
chunks, the RESP frames parsed with hiredis, and each chunk's payloads journaled with one
write (spool_writer.py) before they count as received.

It reconnects by itself with capped exponential backoff and jitter, resubscribes, and treats
a link that stops answering its health-check PINGs as dead. Its state (subscribed, gaps,
errors, counters) is in the struct it shares with the main process (reader_state.py).

Its stdin is the control line from the main process: one JSON line of settings, then `stop`
(send UNSUBSCRIBE, journal everything that came before its answer, exit). End of file on
stdin means the main process is gone: the reader exits at once, whatever it has journaled
waits in the spool for the next start. SIGINT and SIGTERM are ignored, so a Ctrl-C or a
service manager's SIGTERM to the whole group leaves the main process to stop it in order.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import socket
import sys
import time
from dataclasses import dataclass

import hiredis
import redis
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.retry import Retry

from ingest.process_log import JsonFormatter, MaskingFormatter
from ingest.reader_state import STATE_FILE, ReaderState, map_state
from ingest.spool_writer import SpoolWriter
from live import redis_client
from live.redis_client import MESSAGE_KINDS, SUBSCRIBE_KINDS, UNSUBSCRIBE_KINDS

log = logging.getLogger("ingest.reader")

_READ_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)
_READ_BYTES = 512 * 1024
CLIENT_NAME = "tickstock-error-monitor"
_DRAIN_SECONDS = 10.0
_HEALTH_CHECK = "tickstock-health-check"


@dataclass(frozen=True)
class ReaderConfig:
    """The settings line the main process sends on stdin (not argv: it holds passwords)."""

    redis_url: str
    channel: str
    spool_folder: str
    spool_max_bytes: int
    spool_segment_bytes: int
    health_check_interval: int = 10
    log_format: str = "text"
    secrets: tuple[str, ...] = ()


class StopReading(Exception):
    """The main process asked to stop, or is gone."""


class ChannelReader:
    def __init__(self, config: ReaderConfig, state: ReaderState, journal: SpoolWriter,
                 control_fd: int, parent_pid: int) -> None:
        self.config = config
        self.state = state
        self.journal = journal
        self.control_fd = control_fd
        self.parent_pid = parent_pid
        self.backoff = ExponentialWithJitterBackoff(cap=2.0, base=0.1)
        self.dead_after = max(2.0 * config.health_check_interval, 5.0)
        self.stopping = False  # a stop was asked: drain, then exit
        self.orphaned = False  # the main process is gone: exit now
        self._attempt = 0
        self._control_buffer = b""
        self._last_parent_check = 0.0
        self._sharded = False

    def run(self) -> None:
        while not self.stopping and not self.orphaned:
            try:
                self._listen()
            except StopReading:
                break
            except _READ_ERRORS as exc:
                self._lost(exc)
                delay = self._next_delay()
                log.warning("not listening on %s (%s); retrying in %.1f s",
                            self.config.channel, self.state.error_text(), delay)
                self._pause(delay)
            except Exception as exc:  # the reader must never die silently
                self._lost(exc)
                log.exception("the reader failed unexpectedly; starting over")
                self._pause(self._next_delay())
        self.state.mark_stopped()

    def _next_delay(self) -> float:
        self._attempt += 1
        return self.backoff.compute(self._attempt)

    def _pause(self, delay: float) -> None:
        try:
            self._wait_for_control(delay)
        except StopReading:
            pass  # `run` sees the flags

    def _lost(self, exc: BaseException) -> None:
        self.state.mark_lost(f"{type(exc).__name__}: {exc}")

    # -- the link -----------------------------------------------------------------------
    def _listen(self) -> None:
        # In a Redis Cluster the channel is a shard channel: one connection to the node that
        # owns its slot, SSUBSCRIBE, and `smessage` frames (a slot that moves ends it).
        sharded = redis_client.is_cluster_url(self.config.redis_url)
        client = redis_client.connect_node(
            self.config.redis_url, self.config.channel,
            client_name=CLIENT_NAME,
            socket_connect_timeout=5,
            # For the handshake only: after it, the socket is polled, never waited on.
            socket_timeout=self.dead_after,
            socket_keepalive=True,
            health_check_interval=0,  # health checks are ours: redis-py would read replies
            retry=Retry(NoBackoff(), 0),  # retries are ours too, with backoff and a count
        )
        pubsub = client.pubsub()
        self._sharded = sharded
        try:
            # Connects, authenticates, selects the db and sends SUBSCRIBE (SSUBSCRIBE); reads
            # nothing after the handshake, so every byte that follows is ours to parse.
            redis_client.subscribe(pubsub, [self.config.channel], sharded)
            connection = pubsub.connection
            sock = connection._sock  # redis-py keeps the socket there; nothing else reads it
            if sock is None:
                raise redis.ConnectionError("no socket after subscribing")
            address = sock.getsockname()
            if isinstance(address, tuple):
                self.state.local_address = f"{address[0]}:{address[1]}".encode()[:63]
            self._read(connection, sock)
        finally:
            try:
                pubsub.close()
                client.close()
            except Exception:  # noqa: BLE001 - closing a broken link may fail too
                pass

    def _read(self, connection: redis.connection.AbstractConnection,
              sock: socket.socket) -> None:
        parser = hiredis.Reader()
        buffer = bytearray(_READ_BYTES)
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        poller.register(self.control_fd, select.POLLIN)
        journal, state, channel = self.journal, self.state, self.config.channel
        interval = self.config.health_check_interval
        last_data = time.monotonic()
        ping_sent = 0.0
        drain_until = 0.0
        while True:
            readable = False
            for fd, _ in poller.poll(250):
                if fd == self.control_fd:
                    self._read_control()
                else:
                    readable = True
            if self.orphaned:
                raise StopReading
            now = time.monotonic()
            if readable:
                count = sock.recv_into(buffer)
                if count == 0:
                    raise redis.ConnectionError("Redis closed the connection")
                parser.feed(buffer, 0, count)
                payloads: list[bytes] = []
                unsubscribed = False
                while (reply := parser.gets()) is not False:
                    if isinstance(reply, list) and len(reply) == 3:
                        kind = reply[0]
                        if kind in MESSAGE_KINDS:
                            payloads.append(reply[2])
                        elif kind in SUBSCRIBE_KINDS:
                            self._subscribed()
                        elif kind in UNSUBSCRIBE_KINDS:
                            unsubscribed = True
                    elif isinstance(reply, hiredis.ReplyError):
                        raise redis.ResponseError(str(reply))
                    # Anything else answers our health check; any data proves the link.
                if payloads:
                    received = time.time()
                    journal.append(payloads, received)
                    state.last_message = received
                if unsubscribed and self.stopping:
                    raise StopReading
                if unsubscribed:
                    # Not asked: a cluster moved the channel's slot to another node.
                    raise redis.ConnectionError("Redis ended the subscription (slot moved?)")
                last_data, ping_sent = now, 0.0
            if self.stopping and not drain_until:
                if not state.subscribed:
                    raise StopReading
                # Everything published before this reaches us before its answer.
                connection.send_command(redis_client.unsubscribe_command(self._sharded),
                                        channel, check_health=False)
                drain_until = now + _DRAIN_SECONDS
            elif drain_until and now > drain_until:
                log.warning("no answer to UNSUBSCRIBE within %.0f s; stopping anyway",
                            _DRAIN_SECONDS)
                raise StopReading
            if not readable:
                # A PING that gets no answer means a dead link that TCP has not noticed yet.
                if ping_sent and now - ping_sent > self.dead_after:
                    raise redis.ConnectionError(
                        f"no answer to a health check for {self.dead_after:.0f} s")
                if not ping_sent and now - last_data >= interval:
                    connection.send_command("PING", _HEALTH_CHECK, check_health=False)
                    ping_sent = now
                self._check_parent(now)

    def _subscribed(self) -> None:
        closed = self.state.mark_subscribed()
        self._attempt = 0
        if closed is not None:
            log.warning("listening again on %s after %.1f s", self.config.channel, closed)
        else:
            log.info("listening on %s", self.config.channel)

    # -- the main process ---------------------------------------------------------------
    def _wait_for_control(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            ready, _, _ = select.select([self.control_fd], [], [], min(left, 1.0))
            if ready:
                self._read_control()
            self._check_parent(time.monotonic())
            if self.stopping or self.orphaned:
                raise StopReading

    def _read_control(self) -> None:
        data = os.read(self.control_fd, 4096)
        if not data:
            self._orphan("the main process closed the control pipe")
            return
        self._control_buffer += data
        if b"stop" in self._control_buffer:
            self.stopping = True

    def _check_parent(self, now: float) -> None:
        # Belt and braces for the pipe: a forked child of the main process could hold it open.
        if now - self._last_parent_check >= 1.0:
            self._last_parent_check = now
            if os.getppid() != self.parent_pid:
                self._orphan("the main process is gone")

    def _orphan(self, why: str) -> None:
        if not self.orphaned:
            log.warning("%s: the reader exits", why)
        self.orphaned = True


def _read_config_line(fd: int) -> tuple[ReaderConfig, bytes]:
    """The first line on `fd`, unbuffered (what follows it is control input), and the rest."""
    data = b""
    while b"\n" not in data:
        chunk = os.read(fd, 65536)
        if not chunk:
            raise SystemExit("ingest.reader: no settings on stdin")
        data += chunk
    line, rest = data.split(b"\n", 1)
    fields = json.loads(line)
    fields["secrets"] = tuple(fields.get("secrets", ()))
    return ReaderConfig(**fields), rest


def _configure_logging(config: ReaderConfig) -> None:
    handler = logging.StreamHandler()
    secrets = config.secrets
    handler.setFormatter(JsonFormatter(secrets) if config.log_format == "json"
                         else MaskingFormatter(secrets))
    logging.basicConfig(level=logging.INFO, handlers=[handler])


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    parent = os.getppid()
    control_fd = sys.stdin.fileno()
    config, rest = _read_config_line(control_fd)
    _configure_logging(config)
    state = map_state(os.path.join(config.spool_folder, STATE_FILE))
    journal = SpoolWriter(config.spool_folder, state, config.spool_max_bytes,
                          config.spool_segment_bytes)
    reader = ChannelReader(config, state, journal, control_fd, parent)
    if b"stop" in rest:
        reader.stopping = True
    try:
        reader.run()
    finally:
        journal.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
