"""The live feed between `python -m ingest` and the web workers that show it.

The ring buffer lives in the process that ingests. When the web side runs elsewhere (gunicorn
workers, `INGEST_ENABLED=false`), each worker follows a copy:

- `LiveFeedPublisher` (live/publisher.py, in the ingest process) takes each chunk of new ring
  entries and, in one Lua script, numbers them from a shared counter
  (`<ERROR_CHANNEL>:live:seq`), publishes them on `<ERROR_CHANNEL>:live` and appends them to a
  capped list (`<ERROR_CHANNEL>:live:recent`, `RING_BUFFER_SIZE` long). Every second it writes
  its status (`IngestService.status()`) to a hash (`<ERROR_CHANNEL>:live:status`, one field
  per ingest process) that expires 5 s after the last write.
- `LiveFeedFollower` (live/follower.py, in each web worker) subscribes, back-fills from the
  list, and fills its own `RingBuffer` with `extend_entries`, so every worker holds the same
  sequence numbers and a browser sees one cursor whichever worker answers. It is the
  `LiveView` the dashboard needs: `listening_state()`, `monitor_summary()` and `status()` come
  from the heartbeat; without a fresh one the health is `unknown`.

Why a script: numbering, publishing and appending happen atomically in Redis, so the order of
the numbers is the order of publication even with several ingest processes (a consumer group,
INGEST_SOURCE=stream), and a restarted ingest continues the numbering instead of restarting at
1 (which every follower would ignore as old). When the counter is missing (first run, or a
Redis that lost its data) it starts from the current time in microseconds, above any number
handed out before (that would take a million messages a second).

Wire format: a published message is `<first seq>|[event, event, ...]`, a list item
`<seq>|event`, each event an `ErrorEvent` as JSON. The feed is best effort: a message lost
while a follower reconnects is recovered from the list when it resubscribes.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import orjson
import redis

from live.redis_client import publish_command
from live.ring_buffer import Entry
from queries.records import ErrorEvent

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 1.0
HEARTBEAT_TTL_MS = 5000
STALE_AFTER = 5.0  # seconds without a new heartbeat before a process is taken for gone
# A field older than this (a crashed process, listed as down until then) is removed by a
# live one.
PRUNE_AFTER = 3600.0
RECENT_TTL_MS = 7 * 24 * 3600 * 1000
MAX_EVENTS_PER_CALL = 1000
READ_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)

# KEYS: seq counter, recent list. ARGV: channel, counter start, list length, events (JSON).
PUBLISH_SCRIPT = """
local n = #ARGV - 3
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SET', KEYS[1], ARGV[2]) end
local first = redis.call('INCRBY', KEYS[1], n) - n + 1
local items = {}
for i = 1, n do
  items[#items + 1] = string.format('%d', first + i - 1) .. '|' .. ARGV[i + 3]
  if #items == 500 or i == n then
    redis.call('RPUSH', KEYS[2], unpack(items))
    items = {}
  end
end
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[3]), -1)
redis.call('PEXPIRE', KEYS[2], RECENT_TTL_MS)
local body = '[' .. table.concat(ARGV, ',', 4) .. ']'
redis.call('PUBLISH_COMMAND', ARGV[1], string.format('%d', first) .. '|' .. body)
return first
""".replace("RECENT_TTL_MS", str(RECENT_TTL_MS))


def publish_script(sharded: bool) -> str:
    """The script for a single Redis (PUBLISH) or a cluster (SPUBLISH: its shard channel is
    in the slot of its keys, as Redis wants of a script, because they share a hash tag)."""
    return PUBLISH_SCRIPT.replace("PUBLISH_COMMAND", publish_command(sharded))


@dataclass(frozen=True)
class FeedNames:
    """The Redis names of one monitor's live feed, all derived from ERROR_CHANNEL (so its hash
    tag in a cluster, `{tickstock:errors}`, keeps them in one slot)."""

    channel: str
    seq: str
    recent: str
    status: str

    @classmethod
    def for_channel(cls, error_channel: str) -> FeedNames:
        base = f"{error_channel}:live"
        return cls(base, f"{base}:seq", f"{base}:recent", f"{base}:status")


_EVENT_FIELDS = tuple(f.name for f in fields(ErrorEvent))


def encode_event(event: ErrorEvent) -> bytes:
    return orjson.dumps(event, default=str, option=orjson.OPT_NON_STR_KEYS)


def decode_event(data: dict[str, Any]) -> ErrorEvent:
    values = {name: data.get(name) for name in _EVENT_FIELDS}
    for name in ("timestamp", "received_at"):
        values[name] = datetime.fromisoformat(values[name])
    values["context"] = values["context"] or {}
    values["is_test"] = bool(values["is_test"])  # absent from an older ingest's feed
    return ErrorEvent(**values)


def parse_published(message: bytes) -> list[Entry]:
    """`<first>|[events]` -> entries numbered from `first`."""
    head, _, body = message.partition(b"|")
    first = int(head)
    return [Entry(first + i, decode_event(item)) for i, item in enumerate(orjson.loads(body))]


def parse_recent(items: Iterable[bytes]) -> list[Entry]:
    entries = []
    for item in items:
        head, _, body = item.partition(b"|")
        entries.append(Entry(int(head), decode_event(orjson.loads(body))))
    entries.sort(key=lambda e: e.seq)
    return entries


def process_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"
