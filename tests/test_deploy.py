"""Production serving as docs/deploy.md describes it, in processes: `gunicorn app:server` with
two workers plus one `python -m ingest`, on PostgreSQL; several ingest processes sharing a
stream; the start-up refusals; JSON logs without secrets."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from dashboard import ids
from dashboard.pages import monitor
from live.feed import FeedNames
from live.follower import LiveFeedFollower
from queries.engine import make_engine
from queries.schema import alerts, error_logs
from tests.conftest import REDIS_URL, fresh_schema, wait_for
from tests.test_security import callback_payload

ROOT = Path(__file__).resolve().parent.parent
USER, PASSWORD = "admin", "deploy-test-password"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
WEBHOOK_SECRET = "webhook-secret-path-7f3a"
DB_PASSWORD = "pg-secret-9c1e"  # the test server trusts local users: any password works


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _http(url: str, body: object = None, headers: dict[str, str] | None = None,
          timeout: float = 10) -> tuple[int, bytes, dict[str, str]]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={
        **(headers or {}), **({"Content-Type": "application/json"} if data else {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, answer.read(), dict(answer.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def _json(url: str) -> dict:
    status, body, _ = _http(url, headers=AUTH)
    assert status == 200, (url, status, body[:300])
    return json.loads(body)


class Processes:
    """Processes a test starts; each is stopped (SIGTERM, then SIGKILL) by its own pid."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[tuple[subprocess.Popen, Path]] = []

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        log_path = self.tmp_path / f"{name}.log"
        with open(log_path, "w") as log:
            process = subprocess.Popen(args, cwd=self.tmp_path, env=env, stdout=log,
                                       stderr=subprocess.STDOUT)
        self.started.append((process, log_path))
        return process

    def log(self, process: subprocess.Popen) -> str:
        return next(path for p, path in self.started if p is process).read_text()

    def stop(self, process: subprocess.Popen, timeout: float = 30) -> int:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait(10)

    def stop_all(self) -> None:
        for process, _ in reversed(self.started):
            self.stop(process)


@pytest.fixture
def processes(tmp_path) -> Iterator[Processes]:
    started = Processes(tmp_path)
    yield started
    started.stop_all()


@pytest.fixture
def deploy_env(tmp_path, channel, pg_url, redis_client) -> Iterator[dict[str, str]]:
    engine = make_engine(pg_url)
    fresh_schema(engine)
    engine.dispose()
    secret_url = pg_url.replace("postgres@", f"postgres:{DB_PASSWORD}@", 1)
    assert DB_PASSWORD in secret_url
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DATABASE_", "REDIS_", "ADMIN_", "API_", "ALLOW_", "HOST",
                                "PORT", "INGEST_", "LOG_", "ALERT_"))}
    env.update({
        "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1",
        "REDIS_URL": REDIS_URL, "ERROR_CHANNEL": channel, "DATABASE_URL": secret_url,
        "SPOOL_DIR": str(tmp_path / "spool"), "HOST": "127.0.0.1", "PORT": str(_free_port()),
        "ADMIN_USERNAME": USER, "ADMIN_PASSWORD": PASSWORD, "LOG_FORMAT": "json",
        "ALERT_WEBHOOK_URL": f"http://127.0.0.1:9/hooks/{WEBHOOK_SECRET}",
        "ALERT_WEBHOOK_MAX_TRIES": "1",
    })
    yield env
    names = FeedNames.for_channel(channel)
    redis_client.delete(names.seq, names.recent, names.status)


def _gunicorn(env: dict[str, str], *extra: str) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"),
            "--no-control-socket", *extra, "app:server"]


def _stored(url: str) -> tuple[int, int]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(func.count()).select_from(error_logs)).scalar_one()
            ids_ = conn.execute(select(func.count(error_logs.c.error_id.distinct()))).scalar_one()
    finally:
        engine.dispose()
    return rows, ids_


def test_gunicorn_two_workers_and_one_ingest_process(deploy_env, processes, redis_client,
                                                     pg_url, tmp_path):
    env = deploy_env
    base = f"http://127.0.0.1:{env['PORT']}"
    figures: dict[str, float] = {}
    started = time.monotonic()
    ingest = processes.start("ingest", [sys.executable, "-m", "ingest"], env)
    names = FeedNames.for_channel(env["ERROR_CHANNEL"])
    wait_for(lambda: redis_client.hlen(names.status) == 1 or ingest.poll() is not None,
             timeout=30, message="the ingest's heartbeat")
    assert ingest.poll() is None, processes.log(ingest)
    figures["ingest up (s)"] = time.monotonic() - started
    access_log = tmp_path / "access.log"
    started = time.monotonic()
    web = processes.start("gunicorn", _gunicorn(
        env, "--workers", "2", "--access-logfile", str(access_log),
        "--access-logformat", "%(p)s %(m)s %(U)s %(q)s %(s)s"), env)

    def web_ready() -> bool:
        assert web.poll() is None, processes.log(web)
        try:
            return _http(f"{base}/healthz", timeout=2)[0] == 200
        except OSError:
            return False

    wait_for(web_ready, timeout=60, interval=0.1, message="gunicorn to listen")
    figures["gunicorn up (s)"] = time.monotonic() - started
    wait_for(lambda: _json(f"{base}/api/monitor/status").get("ingest") == "ok", timeout=20,
             message="a worker to see the ingest's heartbeat")

    # Auth holds under gunicorn too.
    assert _http(f"{base}/")[0] == 401
    assert _http(f"{base}/", headers=AUTH)[0] == 200

    total, resent = 300, 50
    started = time.monotonic()
    for i in range(total):
        redis_client.publish(env["ERROR_CHANNEL"], json.dumps({
            "error_id": f"deploy-{i}", "severity": "critical" if i % 100 == 0 else "error",
            "category": "network", "message": f"failure {i}", "symbol": "AAPL"}))
    for i in range(resent):  # the producer re-sends some: still stored once
        redis_client.publish(env["ERROR_CHANNEL"], json.dumps({
            "error_id": f"deploy-{i}", "severity": "error", "message": f"failure {i}"}))
    wait_for(lambda: _stored(pg_url)[0] >= total, timeout=30, message="every message stored")
    figures["300 messages stored (s)"] = time.monotonic() - started
    time.sleep(0.5)  # anything extra would have arrived by now
    assert _stored(pg_url) == (total, total)

    # Each worker follows the feed: poll concurrently until two workers answered, each
    # holding all the rows under the same sequence numbers.
    started = time.monotonic()
    seen: dict[str, dict] = {}

    def poll_status() -> None:
        follower = _json(f"{base}/api/monitor/status")["follower"]
        seen[follower["worker"]] = follower["ringBuffer"]

    def both_workers_full() -> bool:
        threads = [threading.Thread(target=poll_status) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return len(seen) == 2 and all(ring["size"] == total for ring in seen.values())

    wait_for(both_workers_full, timeout=30, interval=0.1, message="both workers' rings")
    last_seqs = {ring["lastSeq"] for ring in seen.values()}
    assert len(last_seqs) == 1, seen
    last_seq = last_seqs.pop()
    figures["both workers' rings full (s)"] = time.monotonic() - started

    # The live list itself, through Dash's callback, on either worker: a browser's cursor
    # five rows back gets the same five rows whichever worker answers.
    dependencies = json.loads(_http(f"{base}/_dash-dependencies", headers=AUTH)[1])
    body = callback_payload(dependencies, f"{ids.ERROR_LIST}.rowData", {
        f"{ids.LIVE_INTERVAL}.n_intervals": 7,
        f"{ids.LIVE_CURSOR}.data": {"seq": last_seq - 5, "shown": 100}})
    answers: dict[int, tuple[list[str], dict]] = {}
    probe = iter(range(10**6))

    def ask() -> None:
        n = next(probe)
        status, raw, _ = _http(f"{base}/_dash-update-component?probe={n}", body, AUTH)
        assert status == 200, raw[:300]
        response = json.loads(raw)["response"]
        rows = [r["id"] for r in response[ids.ERROR_LIST]["rowTransaction"]["add"]]
        answers[n] = (rows, response[ids.LIVE_CURSOR]["data"])

    def pids_answering() -> set[str]:
        threads = [threading.Thread(target=ask) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        pids = set()
        for line in access_log.read_text().splitlines():
            pid, _method, path, query, _status = json.loads(line)["message"].split(" ")
            if path == "/_dash-update-component" and query.startswith("probe="):
                pids.add(pid)
        return pids

    wait_for(lambda: len(pids_answering()) == 2, timeout=30, interval=0.1,
             message="the live list answered by both workers")
    expected = [f"deploy-{i}" for i in range(total - 1, total - 6, -1)]
    for rows, cursor in answers.values():
        assert rows == expected
        assert cursor["seq"] == last_seq

    # A clean stop: everything stored, the heartbeat gone, workers see health `unknown`.
    assert processes.stop(ingest) == 0
    wait_for(lambda: _json(f"{base}/api/errors/health")["status"] == "unknown", timeout=15,
             message="health unknown once the ingest is gone")
    assert redis_client.hlen(names.status) == 0
    ingest_log = processes.log(ingest)
    assert processes.stop(web) == 0

    lines = [json.loads(line) for line in ingest_log.splitlines() if line.strip()]
    assert any("ingest stopped" in line["message"] for line in lines)
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    web_log = processes.log(web)
    for line in web_log.splitlines():
        if line.strip():
            json.loads(line)  # gunicorn's own lines are JSON too
    for text in (ingest_log, web_log, access_log.read_text()):
        assert DB_PASSWORD not in text and WEBHOOK_SECRET not in text and PASSWORD not in text
    print("figures:", {k: round(v, 2) for k, v in figures.items()})


def test_several_ingest_processes_share_a_stream_without_double_storage(
        deploy_env, processes, redis_client, pg_url, tmp_path):
    stream = f"test:{uuid.uuid4().hex}:stream"
    env = {**deploy_env, "INGEST_SOURCE": "stream", "ERROR_STREAM": stream}
    ingests = [processes.start(f"ingest-{n}", [sys.executable, "-m", "ingest"],
                               {**env, "STREAM_CONSUMER": f"consumer-{n}",
                                "SPOOL_DIR": str(tmp_path / f"spool-{n}")})
               for n in (1, 2)]
    follower = LiveFeedFollower(REDIS_URL, env["ERROR_CHANNEL"], 20_000)
    try:
        follower.start()
        wait_for(lambda: len(follower.status().get("ingestProcesses") or []) == 2
                 and follower.status()["subscribed"], timeout=30,
                 message="both ingest processes reporting")
        total = 5000
        started = time.monotonic()
        for start in range(0, total, 250):
            pipe = redis_client.pipeline(transaction=False)
            for i in range(start, start + 250):
                pipe.xadd(stream, {"data": json.dumps({
                    "error_id": f"shared-{i}", "severity": "error", "message": f"m {i}"})})
            pipe.execute()
        wait_for(lambda: _stored(pg_url)[0] >= total, timeout=60, message="all stored")
        seconds = time.monotonic() - started
        wait_for(lambda: follower.status()["counters"]["stored"] == total, timeout=15,
                 message="the summed counters")
        status = follower.status()
        shares = [p["received"] for p in status["ingestProcesses"]]
        assert sum(shares) == total and all(share > 0 for share in shares), shares
        assert status["counters"]["duplicate"] == 0
        assert _stored(pg_url) == (total, total)
        # One live feed for both: every entry once, numbered without gaps.
        wait_for(lambda: len(follower.ring) == total, timeout=15, message="the live feed")
        seqs = [e.seq for e in follower.ring.since(0)]
        assert seqs == list(range(seqs[0], seqs[0] + total))
        assert redis_client.xpending(stream, "tickstock-error-monitor")["pending"] == 0
        print(f"2 ingest processes stored {total} stream entries in {seconds:.2f} s, "
              f"shares {shares}")
    finally:
        follower.stop()
        for process in ingests:
            assert processes.stop(process) == 0
        redis_client.delete(stream)


def test_gunicorn_refuses_an_anonymous_public_bind(deploy_env, processes):
    env = {k: v for k, v in deploy_env.items() if not k.startswith("ADMIN_")}
    web = processes.start("gunicorn", _gunicorn(env, "--bind", f"0.0.0.0:{env['PORT']}"), env)
    assert web.wait(60) == 2
    output = processes.log(web)
    assert "refusing to serve tracebacks anonymously on bind 0.0.0.0:" in output
    assert "Traceback" not in output
    # Allowed explicitly, it starts.
    allowed = processes.start("gunicorn-allowed", _gunicorn(
        {**env, "ALLOW_ANONYMOUS": "true"}, "--bind", f"0.0.0.0:{env['PORT']}"),
        {**env, "ALLOW_ANONYMOUS": "true"})
    wait_for(lambda: "Listening at" in processes.log(allowed) or allowed.poll() is not None,
             timeout=30, message="gunicorn to listen")
    assert allowed.poll() is None, processes.log(allowed)


def test_ingest_process_exit_codes_say_why(deploy_env, tmp_path):
    bad = subprocess.run([sys.executable, "-m", "ingest"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60, env={**deploy_env, "BATCH_MAX_ROWS": "lots"})
    assert bad.returncode == 2 and "BATCH_MAX_ROWS must be a whole number" in bad.stderr
    away = subprocess.run([sys.executable, "-m", "ingest"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env={
                              **deploy_env, "LOG_FORMAT": "text",
                              "DATABASE_URL": f"postgresql://tsem:{DB_PASSWORD}@127.0.0.1:1/x"})
    assert away.returncode == 1
    assert "cannot open the error store at postgresql://tsem:***@127.0.0.1:1/x" in away.stderr
    for done in (bad, away):
        assert "Traceback" not in done.stderr and DB_PASSWORD not in done.stderr


def test_the_web_side_without_an_ingest_shows_unknown(deploy_env, processes):
    env = deploy_env
    base = f"http://127.0.0.1:{env['PORT']}"
    web = processes.start("gunicorn", _gunicorn(env, "--workers", "1"), env)
    wait_for(lambda: web.poll() is not None or _probe(f"{base}/healthz"), timeout=60,
             message="gunicorn to listen")
    health = _json(f"{base}/api/errors/health")
    assert (health["status"], health["health"]) == ("unknown", "gray")
    assert health["monitor"]["ingest"] == "no heartbeat"
    assert "no heartbeat from the ingest process" in health["reason"]
    assert _http(f"{base}/metrics", headers=AUTH)[0] == 200


def _probe(url: str) -> bool:
    try:
        return _http(url, timeout=2)[0] == 200
    except OSError:
        return False



def _firing(url: str) -> set[tuple[str, str]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {(row.rule, row.alert_key) for row in conn.execute(
                select(alerts.c.rule, alerts.c.alert_key).where(alerts.c.state == "firing"))}
    finally:
        engine.dispose()


def _empty_database(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()


def _stream_ingests(processes, env, tmp_path, count: int, **extra: str) -> list:
    return [processes.start(f"ingest-{n}", [sys.executable, "-m", "ingest"],
                            {**env, "STREAM_CONSUMER": f"consumer-{n}",
                             "SPOOL_DIR": str(tmp_path / f"spool-{n}"), **extra})
            for n in range(1, count + 1)]


def _all_reporting(processes, follower: LiveFeedFollower, ingests: list) -> None:
    """Every ingest of `ingests` heard from through the live feed, none of them exited."""
    wait_for(lambda: len(follower.status().get("ingestProcesses") or []) == len(ingests)
             or any(p.poll() is not None for p in ingests), timeout=60,
             message=f"{len(ingests)} ingest processes reporting")
    for process in ingests:
        assert process.poll() is None, processes.log(process)


def test_three_ingest_processes_started_at_once_on_a_fresh_database_all_come_up(
        deploy_env, processes, pg_url, tmp_path):
    _empty_database(pg_url)
    stream = f"test:{uuid.uuid4().hex}:stream"
    env = {**deploy_env, "INGEST_SOURCE": "stream", "ERROR_STREAM": stream}
    ingests = _stream_ingests(processes, env, tmp_path, 3)
    follower = LiveFeedFollower(REDIS_URL, env["ERROR_CHANNEL"], 100)
    try:
        follower.start()
        _all_reporting(processes, follower, ingests)
        assert _stored(pg_url) == (0, 0)  # the schema is there, whole, and empty
    finally:
        follower.stop()
        for process in ingests:
            assert processes.stop(process) == 0


def test_three_ingests_one_killed_mid_stream_store_every_entry_once(
        deploy_env, processes, redis_client, pg_url, tmp_path):
    stream = f"test:{uuid.uuid4().hex}:stream"
    env = {**deploy_env, "INGEST_SOURCE": "stream", "ERROR_STREAM": stream,
           "STREAM_CLAIM_IDLE_MS": "2000", "STREAM_RECLAIM_INTERVAL_MS": "500",
           "INGEST_DOWN_SECONDS": "3"}
    ingests = _stream_ingests(processes, env, tmp_path, 3)
    follower = LiveFeedFollower(REDIS_URL, env["ERROR_CHANNEL"], 100)
    total = 20_000
    try:
        follower.start()
        wait_for(lambda: len(follower.status().get("ingestProcesses") or []) == 3, timeout=60,
                 message="three ingest processes reporting")
        for start in range(0, total, 500):
            pipe = redis_client.pipeline(transaction=False)
            for i in range(start, start + 500):
                pipe.xadd(stream, {"data": json.dumps({
                    "error_id": f"k-{i}", "severity": "error", "message": f"m {i}"})})
            pipe.execute()
            if start == total // 4:
                os.kill(ingests[0].pid, signal.SIGKILL)
        wait_for(lambda: _stored(pg_url)[0] >= total, timeout=90, message="all stored")
        wait_for(lambda: redis_client.xpending(stream, "tickstock-error-monitor")["pending"] == 0,
                 timeout=30, message="nothing pending")
        assert _stored(pg_url) == (total, total)
        wait_for(lambda: len(follower.status().get("ingestProcesses") or []) == 2, timeout=30,
                 message="the dead process gone from the deployment's sums")
        states = {p["consumer"]: p["state"] for p in follower.status()["processes"]}
        assert states == {"consumer-1": "down", "consumer-2": "up", "consumer-3": "up"}, states
        page = monitor.monitor_view(follower.status())["listening"]["rows"]
        assert any(text.startswith("DOWN; consumer consumer-1") for _, text in page), page
        wait_for(lambda: ("ingest_down", "consumer-1") in _firing(pg_url), timeout=15,
                 message="the monitor's own alert for the dead process")
        wait_for(lambda: follower.status()["conservation"]["holds"], timeout=15,
                 message="the survivors' accounting whole")
        # What the dead consumer read was reclaimed, not trimmed: no false alarm of loss.
        time.sleep(1.5)
        assert not any(rule == "stream_lost" for rule, _ in _firing(pg_url))
    finally:
        follower.stop()
        for process in ingests[1:]:
            assert processes.stop(process) == 0
        redis_client.delete(stream)
