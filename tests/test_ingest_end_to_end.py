"""From a PUBLISH on the channel to a row in the store, through the real ingest threads."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from ingest.service import IngestService
from queries.schema import error_logs, rejected_messages
from tests.conftest import wait_for
from tests.factories import payload


def _count(engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def _fifty_stored_one_rejected(engine, ingest) -> None:
    """50 distinct errors, one copy and one malformed message: each where it belongs."""
    assert _count(engine, error_logs) == 50
    assert _count(engine, rejected_messages) == 1
    counters = ingest.counters()
    assert counters["received"] == 52
    assert counters["rejected"] == 1
    assert len(ingest.ring.since(0)) == 50


def test_published_errors_are_stored_and_malformed_ones_dead_lettered(
        engine, db_url, make_settings, redis_client, channel):
    ingest = IngestService(make_settings(database_url=db_url), engine)
    ingest.start()
    try:
        wait_for(lambda: ingest.subscriber.subscribed, message="subscription")
        for i in range(50):
            redis_client.publish(channel, payload(error_id=f"e2e-{i}"))
        redis_client.publish(channel, b"{not json")
        redis_client.publish(channel, payload(error_id="e2e-0"))  # a re-sent copy
        wait_for(lambda: ingest.counters()["stored"] == 50
                 and ingest.counters()["duplicate"] == 1, message="50 stored, 1 duplicate")
    finally:
        ingest.stop()
    _fifty_stored_one_rejected(engine, ingest)


def test_a_second_pubsub_ingest_on_the_same_channel_is_refused(
        engine, db_url, make_settings, tmp_path, redis_client):
    """Issue 16: two pub/sub ingests on one channel would store and alert everything twice."""
    from ingest.pubsub_lease import ChannelTaken

    first = IngestService(make_settings(database_url=db_url, spool_dir=str(tmp_path / "a")),
                          engine)
    second_settings = make_settings(database_url=db_url, spool_dir=str(tmp_path / "b"))
    first.start()
    try:
        assert first.status()["pubsubLease"] == "held"
        second = IngestService(second_settings, engine)
        with pytest.raises(ChannelTaken, match=r"another pub/sub ingest .* already listens on"):
            second.start()
    finally:
        first.stop()
    # Once the first is gone the channel is free again.
    again = IngestService(second_settings, engine)
    again.start()
    try:
        assert again.status()["pubsubLease"] == "held"
    finally:
        again.stop()
    assert redis_client.exists(f"{second_settings.error_channel}:monitor:pubsub-lease") == 0


def test_on_a_redis_cluster_spublished_errors_reach_the_store_and_the_ring(
        engine, db_url, cluster_settings, redis_cluster, channel):
    """Issue 16: REDIS_CLUSTER=true reads the hash-tagged channel with SSUBSCRIBE on the node
    that owns its slot; what TickStockPL SPUBLISHes there is stored once and shown live."""
    settings = cluster_settings(database_url=db_url)
    assert settings.error_channel == "{" + channel + "}"
    ingest = IngestService(settings, engine)
    ingest.start()
    cluster = redis_cluster.client()
    try:
        wait_for(lambda: ingest.subscriber.subscribed, message="subscription")
        assert ingest.status()["pubsubLease"] == "held"
        for i in range(50):
            assert cluster.spublish(settings.error_channel, payload(error_id=f"rc-{i}")) == 1
        cluster.spublish(settings.error_channel, b"{not json")
        cluster.spublish(settings.error_channel, payload(error_id="rc-0"))  # a re-sent copy
        # A plain PUBLISH of the same name is not the shard channel: nobody hears it.
        cluster.publish(settings.error_channel, payload(error_id="rc-plain"))
        wait_for(lambda: ingest.counters()["stored"] == 50
                 and ingest.counters()["duplicate"] == 1, message="50 stored, 1 duplicate")
    finally:
        ingest.stop()
        cluster.close()
    _fifty_stored_one_rejected(engine, ingest)
