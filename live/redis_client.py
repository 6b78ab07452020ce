"""The monitor's Redis clients, single Redis or Redis Cluster, made in one place.

A `redis+cluster://` (or `rediss+cluster://`) URL means a Redis Cluster; settings.py turns
REDIS_CLUSTER=true with a `redis://` URL into one, so the URL alone carries the mode to every
process and thread (the reader process gets only the URL). What differs in a cluster, and is
decided here only:

- the client: `redis.cluster.RedisCluster` (routes each command by its key's slot) instead of
  `redis.Redis`;
- pub/sub: sharded (`SPUBLISH`/`SSUBSCRIBE`, Redis 7+). A plain PUBLISH in a cluster is
  broadcast to every node; a shard channel lives on the node owning its slot only;
- a subscriber of one channel talks to that channel's node directly (`node_url`), with a
  plain client: the follower and the reader keep their single connection, and a slot that
  moves away ends the subscription (Redis sends SUNSUBSCRIBE), which they take for a lost link
  and reconnect to the new owner.

The names (one hash tag per deployment, so the live feed's script finds its keys and its
channel in one slot) are made by settings.py (`cluster_name`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException

Client = redis.Redis | RedisCluster

_CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
# Subscription replies and messages of either kind, as the raw reader sees them.
MESSAGE_KINDS = (b"message", b"smessage")
SUBSCRIBE_KINDS = (b"subscribe", b"ssubscribe")
UNSUBSCRIBE_KINDS = (b"unsubscribe", b"sunsubscribe")


class RedisModeMismatch(redis.ConnectionError):
    """REDIS_CLUSTER says cluster and the server is a single Redis, or the other way round."""


def is_cluster_url(url: str) -> bool:
    return urlsplit(url).scheme.lower() in _CLUSTER_SCHEMES


def plain_url(url: str) -> str:
    """The URL redis-py understands: `redis+cluster://h:p` -> `redis://h:p`."""
    parts = urlsplit(url)
    scheme = _CLUSTER_SCHEMES.get(parts.scheme.lower())
    return urlunsplit(parts._replace(scheme=scheme)) if scheme else url


def connect(url: str, **options: Any) -> Client:
    """A client for `url`: a RedisCluster for a cluster URL, else a Redis.

    A RedisCluster connects at once (it reads the slot map), so this raises
    `redis.ConnectionError` when no node answers, and `RedisModeMismatch` when the node is
    not part of a cluster; a single Redis connects on its first command.
    """
    if not is_cluster_url(url):
        return redis.Redis.from_url(url, **options)
    try:
        return RedisCluster.from_url(plain_url(url), **options)
    except RedisClusterException as exc:
        if "Cluster mode is not enabled" in str(exc):
            raise RedisModeMismatch(
                f"REDIS_CLUSTER=true (or a redis+cluster:// URL) but {_where(url)} is not a "
                "Redis Cluster node: set REDIS_CLUSTER=false and a redis:// URL") from None
        raise redis.ConnectionError(f"Redis Cluster at {_where(url)}: {exc}") from None


def check_server(url: str) -> None:
    """Raise RedisModeMismatch when the server is not what the URL says (a cluster node for
    a single-Redis URL, or the reverse); say nothing when Redis cannot be reached (the
    threads retry until it can)."""
    try:
        client = connect(url, socket_connect_timeout=3, socket_timeout=3)
    except RedisModeMismatch:
        raise
    except redis.RedisError:
        return
    try:
        if isinstance(client, redis.Redis) and client.info("cluster").get("cluster_enabled"):
            raise RedisModeMismatch(
                f"{_where(url)} is a Redis Cluster node: set REDIS_CLUSTER=true (or use a "
                "redis+cluster:// URL) so the monitor follows the cluster's slots")
    except RedisModeMismatch:
        raise
    except redis.RedisError:
        return
    finally:
        client.close()


def node_url(url: str, key: str, **options: Any) -> str:
    """The URL of the node that serves `key`'s slot (the URL itself on a single Redis):
    credentials, TLS and options of `url`, that node's host and port."""
    if not is_cluster_url(url):
        return url
    cluster = connect(url, **options)
    try:
        node = cluster.get_node_from_key(key)
    finally:
        cluster.close()
    parts = urlsplit(plain_url(url))
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{node.host}:{node.port}" if credentials else \
        f"{node.host}:{node.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def connect_node(url: str, key: str, **options: Any) -> redis.Redis:
    """A plain client on the node that serves `key`'s slot (on a single Redis: a client for
    `url`): for one subscriber that reads one shard channel and its keys on one link."""
    return redis.Redis.from_url(
        node_url(url, key, socket_connect_timeout=5, socket_timeout=5), **options)


def is_cluster(client: Client) -> bool:
    return isinstance(client, RedisCluster)


def publish(client: Client, channel: str, message: bytes | str) -> int:
    """PUBLISH on a single Redis, SPUBLISH on a cluster; how many subscribers it reached."""
    if is_cluster(client):
        return int(client.spublish(channel, message))
    return int(client.publish(channel, message))


def publish_command(sharded: bool) -> str:
    """The command a Lua script publishes with."""
    return "SPUBLISH" if sharded else "PUBLISH"


def unsubscribe_command(sharded: bool) -> str:
    return "SUNSUBSCRIBE" if sharded else "UNSUBSCRIBE"


def subscribe(pubsub: redis.client.PubSub, channels: Sequence[str], sharded: bool) -> None:
    """SUBSCRIBE, or SSUBSCRIBE for a cluster's shard channels."""
    if sharded:
        pubsub.ssubscribe(*channels)
    else:
        pubsub.subscribe(*channels)


def subscriber_counts(client: Client, channels: Sequence[str]) -> dict[str, int]:
    """How many listen on each channel: PUBSUB NUMSUB, or in a cluster PUBSUB SHARDNUMSUB
    asked of the node that owns the channel (a shard channel's subscribers are there)."""
    if not is_cluster(client):
        return {text(c): int(n) for c, n in client.pubsub_numsub(*channels)}
    counts: dict[str, int] = {}
    for channel in channels:
        node = client.get_redis_connection(client.get_node_from_key(channel))
        counts.update({text(c): int(n) for c, n in node.pubsub_shardnumsub(channel)})
    return counts


def get_message(pubsub: redis.client.PubSub, timeout: float) -> dict[str, Any] | None:
    """The next message or subscription reply, sharded ones named as plain ones
    (`smessage` -> `message`, `ssubscribe` -> `subscribe`), so callers handle one kind.

    A ClusterPubSub (channels on several nodes) is read with its sharded reader."""
    if isinstance(pubsub, redis.cluster.ClusterPubSub):
        message = pubsub.get_sharded_message(timeout=timeout)
    else:
        message = pubsub.get_message(timeout=timeout)
    if message is not None:
        kind = message["type"]
        kind = text(kind)
        if kind.startswith("s") and kind[1:] in ("message", "subscribe", "unsubscribe"):
            message = {**message, "type": kind[1:]}
    return message


def text(value: bytes | str) -> str:
    """A name or id as Redis returned it (bytes unless the client decodes), as text."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _where(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc.rpartition("@")[2] or url
