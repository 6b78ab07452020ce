"""REDIS_CLUSTER=true against a private 3-master cluster: the names, the clear refusal of a
server of the other kind, the live feed and `python -m ingest.simulate` on shard channels.
(The ingest, stream, jobs and browser cases are beside their single-Redis twins.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from live import redis_client
from live.feed import FeedNames
from live.follower import LiveFeedFollower
from live.publisher import LiveFeedPublisher
from live.redis_client import RedisModeMismatch, check_server
from live.ring_buffer import Entry
from settings import Settings, SettingsError, cluster_name, load_settings
from tests.conftest import REDIS_URL, wait_for
from tests.factories import event, payload

ROOT = Path(__file__).resolve().parent.parent


def test_cluster_mode_tags_the_deployments_names_and_leaves_single_redis_names_alone():
    single = Settings()
    assert (single.redis_cluster, single.error_channel, single.error_stream) == (
        False, "tickstock:errors", "tickstock:errors:stream")
    cluster = load_settings({"REDIS_CLUSTER": "true", "PROCESSING_CHANNELS": ""}, None)
    assert cluster.redis_url == "redis+cluster://127.0.0.1:6379/0"
    assert cluster.error_channel == "{tickstock:errors}"
    assert cluster.error_stream == "{tickstock:errors}:stream"
    assert FeedNames.for_channel(cluster.error_channel).recent == "{tickstock:errors}:live:recent"
    # A redis+cluster:// URL says it as well; a name with its own hash tag is kept.
    own = load_settings({"REDIS_URL": "rediss+cluster://:pw@h:7000/0",
                         "ERROR_CHANNEL": "{tickstock}:errors", "PROCESSING_CHANNELS": ""}, None)
    assert own.redis_cluster and own.error_channel == "{tickstock}:errors"
    assert own.error_stream == "{tickstock:errors:stream}"
    assert cluster_name("other:stream", "tickstock:errors") == "{other:stream}"


def test_cluster_mode_refuses_patterns_and_unix_sockets_with_a_clear_message():
    with pytest.raises(SettingsError, match=r"PROCESSING_CHANNELS: tickstock:import:\*, .*"
                                            r"sharded pub/sub .* has none"):
        load_settings({"REDIS_CLUSTER": "true"}, None)
    with pytest.raises(SettingsError, match="REDIS_CLUSTER=true needs a redis:// or rediss://"):
        load_settings({"REDIS_CLUSTER": "true", "REDIS_URL": "unix:///tmp/redis.sock",
                       "PROCESSING_CHANNELS": ""}, None)


def test_a_server_of_the_other_kind_is_refused_at_start(redis_cluster):
    with pytest.raises(RedisModeMismatch, match="is not a Redis Cluster node"):
        check_server("redis+cluster://127.0.0.1:6379/0")
    with pytest.raises(RedisModeMismatch, match="is a Redis Cluster node: set REDIS_CLUSTER"):
        check_server(redis_cluster.plain_url)
    check_server(REDIS_URL)
    check_server(redis_cluster.url)
    check_server("redis://127.0.0.1:1/0")  # nobody there: the threads will retry


@pytest.mark.parametrize("command", [
    ["-m", "ingest"],
    ["-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "--no-control-socket",
     "app:server"]], ids=["ingest", "gunicorn"])
def test_the_processes_say_why_they_cannot_start_on_the_wrong_kind_of_redis(
        tmp_path, command):
    env = {**os.environ, "REDIS_URL": "redis://127.0.0.1:6379/0", "REDIS_CLUSTER": "true",
           "PROCESSING_CHANNELS": "", "DATABASE_URL": f"sqlite:///{tmp_path}/e.db",
           "SPOOL_DIR": str(tmp_path / "spool"), "HOST": "127.0.0.1", "PORT": "1",
           "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, *command], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "127.0.0.1:6379 is not a Redis Cluster node" in done.stderr


def test_the_live_feed_on_a_cluster_numbers_backfills_and_follows(redis_cluster, channel):
    tagged = cluster_name(channel)
    publisher = LiveFeedPublisher(redis_cluster.url, tagged, lambda: {"subscribed": True},
                                  capacity=100)
    early = LiveFeedFollower(redis_cluster.url, tagged, 100)
    late = LiveFeedFollower(redis_cluster.url, tagged, 100)
    publisher.start()
    early.start()
    try:
        wait_for(lambda: early.connected, message="the first follower")
        publisher.publish([Entry(n, event(error_id=f"c{n}")) for n in range(1, 4)])
        wait_for(lambda: len(early.ring) == 3, message="three entries followed")
        late.start()  # back-fills from the capped list on the feed's node
        wait_for(lambda: len(late.ring) == 3, message="three entries back-filled")
        held = [[(e.seq, e.event.error_id) for e in f.ring.since(0)] for f in (early, late)]
        assert held[0] == held[1] and [i for _, i in held[0]] == ["c1", "c2", "c3"]
        wait_for(lambda: early.status()["ingest"] == "ok", message="the heartbeat")
    finally:
        for thing in (late, early, publisher):
            thing.stop()
        cluster = redis_cluster.client()
        names = FeedNames.for_channel(tagged)
        cluster.delete(names.seq, names.recent, names.status)
        cluster.close()


def test_python_m_ingest_simulate_spublishes_on_a_cluster(redis_cluster, channel):
    settings = load_settings({"REDIS_URL": redis_cluster.url, "ERROR_CHANNEL": channel,
                              "PROCESSING_CHANNELS": ""}, None)
    node = redis_client.node_url(settings.redis_url, settings.error_channel)
    import redis

    listener = redis.Redis.from_url(node).pubsub()
    listener.ssubscribe(settings.error_channel)
    assert listener.get_message(timeout=2)["type"] == "ssubscribe"
    env = {**os.environ, "REDIS_URL": redis_cluster.url, "ERROR_CHANNEL": channel,
           "PROCESSING_CHANNELS": "", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "ingest.simulate", "--count", "3", "--rate",
                           "0", "--quiet"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"published 3 message(s) to {{{channel}}}" in done.stdout
    assert "0 reached no subscriber" in done.stdout
    got = [listener.get_message(timeout=2) for _ in range(3)]
    assert [m["type"] for m in got] == ["smessage"] * 3
    listener.close()


def test_a_channel_whose_slot_moves_is_followed_to_its_new_node(
        engine, db_url, cluster_settings, redis_cluster, channel):
    """Resharding moves the deployment's slot: Redis ends the shard subscriptions there, the
    reader and the live feed follower reconnect to the new owner, and what is SPUBLISHed
    after the move is stored and followed."""
    from ingest.service import IngestService

    settings = cluster_settings(database_url=db_url)
    ingest = IngestService(settings, engine)
    publisher = LiveFeedPublisher(settings.redis_url, settings.error_channel, ingest.status,
                                  settings.ring_buffer_size)
    ingest.pipeline.add_listener(publisher.publish)
    follower = LiveFeedFollower(settings.redis_url, settings.error_channel, 100)
    cluster = redis_cluster.client()
    ingest.start()
    publisher.start()
    follower.start()
    try:
        wait_for(lambda: ingest.subscriber.subscribed and follower.connected)
        assert cluster.spublish(settings.error_channel, payload(error_id="before-move")) == 1
        wait_for(lambda: len(follower.ring) == 1, message="the first error followed")
        redis_cluster.move_slot_of(settings.error_channel)
        cluster.close()
        cluster = redis_cluster.client()  # a fresh slot map
        # Both subscribers come back, now on the new owner.
        wait_for(lambda: cluster.spublish(settings.error_channel,
                                          payload(error_id="probe")) == 1, timeout=20,
                 message="the reader subscribed on the new node")
        feed = FeedNames.for_channel(settings.error_channel).channel
        wait_for(lambda: cluster.pubsub_shardnumsub(feed, target_nodes=cluster.get_node_from_key(
            feed)) == [(feed.encode(), 1)], timeout=20,
                 message="the follower subscribed on the new node")
        assert cluster.spublish(settings.error_channel, payload(error_id="after-move")) == 1
        wait_for(lambda: "after-move" in [e.event.error_id for e in follower.ring.since(0)],
                 timeout=15, message="the error after the move followed")
        wait_for(lambda: ingest.counters()["stored"] >= 3, timeout=15,
                 message="before, probe and after stored")
        assert ingest.subscriber.state.reconnects >= 1  # the move was a lost link, counted
    finally:
        for thing in (follower, publisher):
            thing.stop()
        ingest.stop()
        cluster.close()
