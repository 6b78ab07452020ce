"""One alert state for several `python -m ingest` processes sharing a stream (issue 16):
real processes, one PostgreSQL, a real webhook receiver (docs/deploy.md, alerts/shared.py).

Each test starts three ingest processes on one stream and consumer group, with their own
consumer names and spool folders, as tests/test_deploy.py does; the alert leader is the one
the `alert_feed` table names."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select

from alerts.catalog import EVENT_RULES
from alerts.leader import LEADER_LOCK, FileLeadership, PostgresLeadership
from dashboard.pages import monitor
from live.follower import LiveFeedFollower
from queries.engine import make_engine
from queries.schema import alert_feed, alert_outbox, alerts
from tests import test_deploy
from tests.conftest import REDIS_URL, wait_for
from tests.redis_server import free_port
from tests.test_deploy import AUTH, _all_reporting, _gunicorn, _http, _probe, _stream_ingests
from tests.test_webhook import Receiver

# tests/test_deploy.py's fixtures, by name: its environment and its process keeper.
deploy_env = test_deploy.deploy_env
processes = test_deploy.processes

GROUP = "tickstock-error-monitor"


def _rows(url: str, table, *where) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(table).where(*where)))
    finally:
        engine.dispose()


def _leader(url: str) -> str | None:
    rows = _rows(url, alert_feed)
    return rows[0].leader if rows else None


def _alerts(url: str, rule: str) -> list:
    return _rows(url, alerts, alerts.c.rule == rule)


def _notices(receiver: Receiver, rule: str, kind: str = "firing") -> list[dict]:
    return [b for b in receiver.bodies if b["rule"] == rule and b["kind"] == kind]


@pytest.fixture
def stream_env(deploy_env, receiver):
    stream = f"test:{uuid.uuid4().hex}:stream"
    env = {**deploy_env, "INGEST_SOURCE": "stream", "ERROR_STREAM": stream,
           "ALERT_WEBHOOK_URL": receiver.url, "ALERT_WEBHOOK_MAX_TRIES": "5",
           "STREAM_CLAIM_IDLE_MS": "2000", "STREAM_RECLAIM_INTERVAL_MS": "500",
           # Conditions stay quiet: no job channel is listened for, no process goes down.
           "LISTENER_CHANNELS": "", "INGEST_DOWN_SECONDS": "600"}
    yield env
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.delete(stream, f"{env['ERROR_CHANNEL']}:alerts:events")
    client.close()


def _start_three(processes, env, tmp_path, pg_url) -> tuple[list, LiveFeedFollower]:
    ingests = _stream_ingests(processes, env, tmp_path, 3)
    follower = LiveFeedFollower(REDIS_URL, env["ERROR_CHANNEL"], 100)
    follower.start()
    _all_reporting(processes, follower, ingests)
    wait_for(lambda: _leader(pg_url), timeout=15, message="an alert leader")
    return ingests, follower


def _add(redis_client, stream: str, **fields) -> None:
    redis_client.xadd(stream, {"data": json.dumps(fields)})


def _received(follower: LiveFeedFollower) -> list[int]:
    return [p["received"] for p in follower.status()["ingestProcesses"]]


def test_twelve_errors_over_three_processes_fire_error_rate_once(
        stream_env, processes, redis_client, pg_url, tmp_path, receiver):
    env = stream_env
    ingests, follower = _start_three(processes, env, tmp_path, pg_url)
    try:
        categories = ("network", "validation", "performance")  # 4 each: no category burst
        for i in range(12):
            _add(redis_client, env["ERROR_STREAM"], error_id=f"rate-{i}", severity="error",
                 category=categories[i % 3], error_type=f"Failure{i}", message=f"failure {i}")
            time.sleep(0.08)
        wait_for(lambda: sum(_received(follower)) == 12, timeout=15, message="all received")
        shares = _received(follower)
        assert sum(1 for share in shares if share > 0) >= 2, shares  # really spread
        wait_for(lambda: _notices(receiver, "error_rate"), timeout=10,
                 message="the error_rate webhook")
        time.sleep(3)  # a second one would have come by now
        assert len(_notices(receiver, "error_rate")) == 1
        assert len(receiver.bodies) == 1, [b["rule"] for b in receiver.bodies]
        (alert,) = _alerts(pg_url, "error_rate")
        assert alert.state == "firing" and alert.notices == 1 and alert.event_count >= 11
        # The Monitor page of a web worker says which process evaluates the alerts.
        rows = dict(monitor.monitor_view(follower.status())["webhook"]["rows"])
        assert rows["Alert leader"] == _leader(pg_url)
        assert rows["Alerts firing"].startswith("1 ")
    finally:
        follower.stop()
        for process in ingests:
            assert processes.stop(process) == 0


def test_five_criticals_of_one_group_over_three_processes_give_one_webhook(
        stream_env, processes, redis_client, pg_url, tmp_path, receiver):
    env = stream_env
    ingests, follower = _start_three(processes, env, tmp_path, pg_url)
    try:
        for i in range(5):
            _add(redis_client, env["ERROR_STREAM"], error_id=f"crit-{i}", severity="critical",
                 category="network", error_type="PolygonAPIError",
                 message="Polygon feed down", component="DataFeed")
            time.sleep(0.15)
        wait_for(lambda: sum(_received(follower)) == 5, timeout=15, message="all received")
        assert sum(1 for share in _received(follower) if share > 0) >= 2
        wait_for(lambda: [a.event_count for a in _alerts(pg_url, "critical_error")] == [5],
                 timeout=10, message="one critical_error alert counting 5 events")
        time.sleep(3)
        assert len(receiver.bodies) == 1, [b["rule"] for b in receiver.bodies]
        (body,) = receiver.bodies
        assert body["rule"] == "critical_error" and "Polygon feed down" in body["text"]
    finally:
        follower.stop()
        for process in ingests:
            assert processes.stop(process) == 0


def _pending_of(redis_client, stream: str, consumer: str) -> int:
    for row in redis_client.xpending(stream, GROUP).get("consumers") or []:
        name = row["name"].decode() if isinstance(row["name"], bytes) else row["name"]
        if name == consumer:
            return int(row["pending"])
    return 0


def test_the_leader_killed_while_alerts_fire_the_next_leader_neither_repeats_nor_drops(
        stream_env, processes, redis_client, pg_url, tmp_path, receiver):
    env = stream_env
    stream = env["ERROR_STREAM"]
    ingests, follower = _start_three(processes, env, tmp_path, pg_url)
    try:
        old = _leader(pg_url)
        leader = ingests[int(old.rsplit("-", 1)[1]) - 1]
        # Before: a critical that fires, and 5 errors toward error_rate (threshold 10).
        _add(redis_client, stream, error_id="a-0", severity="critical", category="network",
             error_type="FeedDown", message="feed A down")
        for i in range(5):
            _add(redis_client, stream, error_id=f"before-{i}", severity="error",
                 category=("validation", "performance")[i % 2], message=f"before {i}")
            time.sleep(0.05)
        wait_for(lambda: _notices(receiver, "critical_error"), timeout=10,
                 message="critical A notified by the first leader")
        wait_for(lambda: sum(_received(follower)) == 6, timeout=10, message="all received")
        time.sleep(0.5)  # the leader evaluated and saved the 6
        # The leader freezes, then dies; meanwhile three criticals of new groups go out. The
        # first is delivered to the leader's own consumer in the transaction that adds it
        # (what Redis does for a reader blocked on the stream, made certain here): received
        # by the dying process, never processed by it.
        os.kill(leader.pid, signal.SIGSTOP)

        def outage(i: int) -> dict[str, str]:
            return {"data": json.dumps({
                "error_id": f"b-{i}", "severity": "critical",
                "category": ("websocket", "redis", "security")[i],
                "error_type": f"Outage{i}", "message": f"outage {i}"})}

        pipe = redis_client.pipeline(transaction=True)
        pipe.xadd(stream, outage(0))
        pipe.xreadgroup(GROUP, old, {stream: ">"}, count=1)
        assert pipe.execute()[1], "the first critical delivered to the frozen leader"
        for i in (1, 2):
            time.sleep(0.1)
            redis_client.xadd(stream, outage(i))
        landed = 3
        assert _pending_of(redis_client, stream, old) >= 1
        os.kill(leader.pid, signal.SIGKILL)
        leader.wait(10)
        killed_at = time.monotonic()
        expected = {f"Outage{i}" for i in range(landed)}

        def outages_notified() -> bool:
            return {b["sample"]["type"] for b in _notices(receiver, "critical_error")
                    if b["sample"]["type"].startswith("Outage")} == expected

        wait_for(outages_notified, timeout=10, interval=0.05,
                 message="every critical of the hand-over notified")
        handover = time.monotonic() - killed_at
        assert handover < 10
        wait_for(lambda: _leader(pg_url) not in (None, old), timeout=10,
                 message="a new leader")
        # After: A again (still firing: no new notice) and 4 errors. The new leader alone
        # saw fewer than 11 errors; with the windows it took over, error_rate fires once.
        _add(redis_client, stream, error_id="a-1", severity="critical", category="network",
             error_type="FeedDown", message="feed A down")
        for i in range(4):
            _add(redis_client, stream, error_id=f"after-{i}", severity="error",
                 category="configuration", message=f"after {i}")
        wait_for(lambda: _notices(receiver, "error_rate"), timeout=10,
                 message="error_rate over the hand-over")
        wait_for(lambda: [a.event_count for a in _alerts(pg_url, "critical_error")
                          if a.summary.find("feed A down") >= 0] == [2], timeout=10,
                 message="A counted on by the new leader")
        time.sleep(3)
        # The counted rules only: conditions such as `stream_lost` are not this test's subject.
        kinds = Counter((b["rule"], b["sample"]["type"] if b["rule"] == "critical_error"
                         else "all") for b in receiver.bodies if b["rule"] in EVENT_RULES)
        assert all(n == 1 for n in kinds.values()), kinds  # none twice
        assert kinds[("critical_error", "FeedDown")] == 1
        assert kinds[("error_rate", "all")] == 1
        assert sum(kinds.values()) == 1 + landed + 1  # none lost
        assert len(set(receiver.delivered_keys)) == len(receiver.delivered_keys)
        assert all(n == 1 for n in Counter((b["rule"], b["key"]) for b in receiver.bodies
                                           if b["kind"] == "firing").values())
        print(f"hand-over: {landed} criticals meanwhile, all notified {handover:.2f} s "
              "after the kill")
    finally:
        follower.stop()
        for process in ingests:
            if process is not leader:
                assert processes.stop(process) == 0


def test_reminder_and_resolve_are_sent_once_by_the_leader_after_a_hand_over(
        stream_env, processes, redis_client, pg_url, tmp_path, receiver):
    env = {**stream_env, "ALERT_REPEAT_MINUTES": "1", "ALERT_RESOLVE_MINUTES": "1"}
    ingests, follower = _start_three(processes, env, tmp_path, pg_url)
    old = _leader(pg_url)
    leader = ingests[int(old.rsplit("-", 1)[1]) - 1]
    try:
        _add(redis_client, env["ERROR_STREAM"], error_id="r-0", severity="critical",
             category="network", error_type="FeedDown", message="feed down")
        wait_for(lambda: _notices(receiver, "critical_error"), timeout=10,
                 message="the critical notified")
        # The leader that sent it dies; the next one owes the reminder and the resolve.
        os.kill(leader.pid, signal.SIGKILL)
        leader.wait(10)
        wait_for(lambda: _leader(pg_url) not in (None, old), timeout=15,
                 message="a new leader")
        wait_for(lambda: _notices(receiver, "critical_error", "reminder"), timeout=90,
                 message="the reminder a minute after the firing")
        wait_for(lambda: _notices(receiver, "critical_error", "resolved"), timeout=200,
                 interval=0.5, message="the resolve once the window stayed empty")
        time.sleep(3)
        (alert,) = _alerts(pg_url, "critical_error")
        assert alert.state == "resolved"
        kinds = Counter(b["kind"] for b in receiver.bodies if b["rule"] == "critical_error")
        assert kinds["firing"] == 1 and kinds["resolved"] == 1, kinds
        assert kinds["reminder"] >= 1, kinds
        # Every notice the alert records was delivered once, under a key of its own.
        assert sum(kinds.values()) == alert.notices, (kinds, alert.notices)
        assert len(set(receiver.delivered_keys)) == len(receiver.delivered_keys)
    finally:
        follower.stop()
        for process in ingests:
            if process is not leader:
                assert processes.stop(process) == 0


def test_a_silence_made_through_one_web_process_holds_every_process(
        stream_env, processes, redis_client, pg_url, tmp_path, receiver):
    env = stream_env
    base = f"http://127.0.0.1:{env['PORT']}"
    ingests, follower = _start_three(processes, env, tmp_path, pg_url)
    web = processes.start("gunicorn", _gunicorn(env, "--workers", "1"), env)
    try:
        wait_for(lambda: web.poll() is not None or _probe(f"{base}/healthz"), timeout=60,
                 message="gunicorn to listen")
        status, body, _ = _http(f"{base}/api/alerts/silences", {
            "rule": "critical_error", "minutes": 60, "reason": "maintenance"}, AUTH)
        assert status == 201, body
        time.sleep(4)  # every keeper reloads silences within 3 s
        for i in range(5):
            _add(redis_client, env["ERROR_STREAM"], error_id=f"quiet-{i}",
                 severity="critical", category="network", error_type="QuietOutage",
                 message="held back")
            time.sleep(0.1)
        wait_for(lambda: [a.event_count for a in _alerts(pg_url, "critical_error")] == [5],
                 timeout=10, message="the silenced alert recorded")
        (alert,) = _alerts(pg_url, "critical_error")
        assert alert.suppressed.startswith("silenced:") and alert.notices == 0
        # Another process leads now: the silence holds there too.
        old = _leader(pg_url)
        assert processes.stop(ingests[int(old.rsplit("-", 1)[1]) - 1]) == 0
        wait_for(lambda: _leader(pg_url) not in (None, old), timeout=10,
                 message="another leader")
        _add(redis_client, env["ERROR_STREAM"], error_id="quiet-next", severity="critical",
             category="integration", error_type="OtherOutage", message="held back too")
        wait_for(lambda: len(_alerts(pg_url, "critical_error")) == 2, timeout=10,
                 message="the second silenced alert")
        time.sleep(2)
        assert receiver.bodies == []
        # The web process shows the leader's state.
        status, body, _ = _http(f"{base}/api/alerts", headers=AUTH)
        shown = json.loads(body)
        assert status == 200 and len(shown) == 2
        assert all(a["suppressed"].startswith("silenced:") for a in shown)
    finally:
        follower.stop()
        for process in ingests:
            processes.stop(process)


def test_a_receiver_down_then_up_gets_each_notice_once_with_one_key(
        stream_env, processes, redis_client, pg_url, tmp_path):
    port = free_port()
    env = {**stream_env, "ALERT_WEBHOOK_URL": f"http://127.0.0.1:{port}/hook",
           "ALERT_WEBHOOK_MAX_TRIES": "10"}
    ingests, follower = _start_three(processes, env, tmp_path, pg_url)
    receiver: Receiver | None = None
    try:
        for i in range(2):  # two groups: two notices
            _add(redis_client, env["ERROR_STREAM"], error_id=f"down-{i}",
                 severity="critical", category="network", error_type=f"Down{i}",
                 message=f"down {i}")
        wait_for(lambda: len(_rows(pg_url, alert_outbox)) == 2, timeout=10,
                 message="two notices in the outbox")
        wait_for(lambda: all(r.attempts >= 2 for r in _rows(pg_url, alert_outbox)),
                 timeout=15, message="retries while the receiver is down")
        keys = {r.id for r in _rows(pg_url, alert_outbox)}
        receiver = Receiver(port=port)
        wait_for(lambda: len(receiver.bodies) == 2, timeout=30, message="both delivered")
        wait_for(lambda: {r.state for r in _rows(pg_url, alert_outbox)} == {"sent"},
                 timeout=10, message="both marked sent")
        time.sleep(2)
        assert len(receiver.bodies) == 2
        assert sorted(receiver.delivered_keys) == sorted(keys)
        assert {b["sample"]["type"] for b in receiver.bodies} == {"Down0", "Down1"}
    finally:
        follower.stop()
        for process in ingests:
            processes.stop(process)
        if receiver is not None:
            receiver.close()


def test_a_crash_between_post_and_record_repeats_once_with_the_same_key(
        stream_env, processes, redis_client, pg_url, tmp_path):
    receiver = Receiver(hang=True)  # answers after 3 s
    env = {**stream_env, "ALERT_WEBHOOK_URL": receiver.url}
    ingest = processes.start("ingest-1", [sys.executable, "-m", "ingest"],
                             {**env, "STREAM_CONSUMER": "consumer-1",
                              "SPOOL_DIR": str(tmp_path / "spool-1")})
    try:
        wait_for(lambda: _leader(pg_url), timeout=30, message="the alert leader")
        _add(redis_client, env["ERROR_STREAM"], error_id="crash-0", severity="critical",
             category="network", error_type="Crash", message="crash")
        wait_for(lambda: receiver.keys, timeout=10, message="the POST")
        os.kill(ingest.pid, signal.SIGKILL)  # before the answer: not marked sent
        ingest.wait(10)
        receiver.hang = False
        again = processes.start("ingest-1-again", [sys.executable, "-m", "ingest"],
                                {**env, "STREAM_CONSUMER": "consumer-1",
                                 "SPOOL_DIR": str(tmp_path / "spool-1")})
        wait_for(lambda: [r.state for r in _rows(pg_url, alert_outbox)] == ["sent"],
                 timeout=30, message="the notice marked sent by the restarted process")
        (row,) = _rows(pg_url, alert_outbox)
        # The receiver saw the notice twice, both times under the same key: it keeps one.
        wait_for(lambda: len(receiver.delivered_keys) == 2, timeout=5,
                 message="the hanging first answer done")
        assert receiver.delivered_keys == [row.id, row.id]
        assert len({json.dumps(b, sort_keys=True) for b in receiver.bodies}) == 1
        assert processes.stop(again) == 0
    finally:
        receiver.close()


def test_one_holder_of_the_alert_lead_at_a_time_on_postgresql(pg_url):
    engine = make_engine(pg_url)
    first, second = (PostgresLeadership(engine, "deployment-a") for _ in range(2))
    other = PostgresLeadership(engine, "deployment-b")
    try:
        assert first.try_acquire() and not second.try_acquire()
        assert other.try_acquire()  # another deployment's lock is another lock
        # The holder's session dies (a killed process, a network cut): the lock goes with it.
        with engine.connect() as conn:
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                f"AND classid = {LEADER_LOCK} AND objid::bigint = {first.key & 0xFFFFFFFF}")
            conn.commit()
        assert not first.still_held()
        assert wait_for(second.try_acquire, timeout=5, message="the lock free again")
        assert not first.try_acquire()
    finally:
        for lead in (first, second, other):
            lead.release()
        engine.dispose()


def test_one_holder_of_the_alert_lead_at_a_time_on_sqlite(tmp_path):
    first, second = (FileLeadership(tmp_path / "errors.db.alert-leader") for _ in range(2))
    assert first.try_acquire() and not second.try_acquire()
    first.release()
    assert second.try_acquire() and not first.try_acquire()
    second.release()


def test_sent_outbox_rows_past_retention_go_but_pending_ones_stay(engine):
    from retention.policy import RetentionPolicy
    from retention.run import Retention

    now = datetime(2024, 11, 30, 3, 0, tzinfo=UTC)
    old = now - timedelta(days=40)
    with engine.begin() as conn:
        for key, state, created in (("old-sent", "sent", old), ("old-failed", "failed", old),
                                    ("old-pending", "pending", old),
                                    ("new-sent", "sent", now)):
            conn.execute(insert(alert_outbox).values(
                id=key, alert_id="a", kind="firing", payload="{}", state=state,
                created_at=created, next_try_at=created))
    report = Retention(engine, RetentionPolicy(days=30), lambda: now).run()
    assert report.ok, report.error
    assert {r.id for r in _all(engine, alert_outbox)} == {"old-pending", "new-sent"}


def _all(engine, table) -> list:
    with engine.connect() as conn:
        return list(conn.execute(select(table)))
