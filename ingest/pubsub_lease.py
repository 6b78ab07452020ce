"""One pub/sub ingest per channel, on any host: a lease in Redis beside the channel.

Pub/sub hands every message to every subscriber, so a second `python -m ingest` on the same
channel (another host, another SPOOL_DIR) would store, count and alert everything twice. The
first ingest holds `<ERROR_CHANNEL>:monitor:pubsub-lease` (SET NX with a TTL, renewed every
few seconds); another one finds it held and refuses to start. The holder is named by host and
spool folder, not by process: a restarted ingest of the same slot takes its lease back at once
instead of waiting for the TTL (SPOOL_DIR's writer lock already keeps two live processes off
one folder). Several ingests that share the load use INGEST_SOURCE=stream instead.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

import redis

from ingest.spool_format import SpoolBusy
from live import redis_client

log = logging.getLogger(__name__)

LEASE_MS = 15_000
RENEW_SECONDS = 5.0

# Take the lease when free or already ours; say who holds it otherwise.
_TAKE = """
local held = redis.call('GET', KEYS[1])
if held == false or held == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return false
end
return held
"""
# Give it back only if it is still ours.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class ChannelTaken(SpoolBusy):
    """Another pub/sub ingest listens on this channel."""


def holder_name(spool_dir: str) -> str:
    return f"{socket.gethostname()}:{os.path.realpath(spool_dir)}"


class PubSubLease(threading.Thread):
    """Holds the channel's lease while the ingest runs; `acquire()` raises ChannelTaken."""

    def __init__(self, redis_url: str, channel: str, holder: str,
                 lease_ms: int = LEASE_MS, renew_seconds: float = RENEW_SECONDS) -> None:
        super().__init__(name="pubsub-lease", daemon=True)
        self.redis_url = redis_url
        self._client: redis_client.Client | None = None
        self._scripts: tuple[Any, Any] | None = None
        self.channel = channel
        self.key = f"{channel}:monitor:pubsub-lease"
        self.holder = holder
        self.lease_ms = lease_ms
        self.renew_seconds = renew_seconds
        self._stop_event = threading.Event()
        # Read by the status: "held", "unconfirmed" (Redis away) or who took it from us.
        self.state = "unconfirmed"

    def _take(self, keys: list[str], args: list[Any]) -> Any:
        return self._script(0)(keys=keys, args=args)

    def _release(self, keys: list[str], args: list[Any]) -> Any:
        return self._script(1)(keys=keys, args=args)

    def _script(self, which: int) -> Any:
        # Made on first use: a cluster client connects when made, and Redis may be away.
        if self._scripts is None:
            self._client = redis_client.connect(self.redis_url, socket_connect_timeout=3,
                                                socket_timeout=3)
            self._scripts = (self._client.register_script(_TAKE),
                             self._client.register_script(_RELEASE))
        return self._scripts[which]

    def acquire(self) -> None:
        """Take the lease, or raise ChannelTaken naming its holder. With Redis away the
        ingest starts anyway (it cannot listen either) and the lease is taken once Redis is
        back."""
        try:
            other = self._take(keys=[self.key], args=[self.holder, self.lease_ms])
        except redis.RedisError as exc:
            log.warning("cannot take the pub/sub lease of %s yet: %s", self.channel, exc)
            return
        if other:
            raise ChannelTaken(
                f"another pub/sub ingest ({other.decode(errors='replace')}) already listens on "
                f"{self.channel}: a second one would store and alert every error twice. Stop "
                "it, or run several ingests with INGEST_SOURCE=stream and one STREAM_GROUP.")
        self.state = "held"

    def stop(self, timeout: float = 5.0) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout)
        try:
            self._release(keys=[self.key], args=[self.holder])
        except redis.RedisError:
            pass  # it expires by itself
        if self._client is not None:
            self._client.close()

    def run(self) -> None:
        while not self._stop_event.wait(self.renew_seconds):
            try:
                other = self._take(keys=[self.key], args=[self.holder, self.lease_ms])
            except redis.RedisError as exc:
                self.state = "unconfirmed"
                log.warning("cannot renew the pub/sub lease of %s: %s", self.channel, exc)
                continue
            if other:
                # Someone took the channel while Redis was away from us: say it loudly; the
                # operator must stop one of the two.
                self.state = f"taken by {other.decode(errors='replace')}"
                log.error("the pub/sub lease of %s is held by %s: two ingests listen on it",
                          self.channel, other.decode(errors="replace"))
            else:
                self.state = "held"
