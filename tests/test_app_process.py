"""`python app.py` and `python -m ingest.simulate` as a newcomer runs them, in processes."""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REDIS_URL, wait_for

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.loads(answer.read())


@pytest.fixture
def app_env(tmp_path, channel, db_url):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))}
    env.update({
        "REDIS_URL": REDIS_URL, "ERROR_CHANNEL": channel, "DATABASE_URL": db_url,
        "PORT": str(_free_port()), "HOST": "127.0.0.1", "PYTHONUNBUFFERED": "1",
    })
    return env


def _start(env, tmp_path):
    log = open(tmp_path / "app.log", "w+")  # closed by the caller
    process = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=tmp_path, env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{env['PORT']}"

    def ready() -> bool:
        try:
            return _get(f"{base}/api/errors/health")["monitor"]["subscribed"]
        except OSError:
            return False

    wait_for(ready, timeout=30, interval=0.2, message="the app to listen")
    return process, log, base


def test_simulate_reaches_the_app_end_to_end(app_env, tmp_path):
    process, log, base = _start(app_env, tmp_path)
    try:
        sim = subprocess.run([sys.executable, "-m", "ingest.simulate"], cwd=ROOT, env=app_env,
                             capture_output=True, text=True, timeout=60)
        assert sim.returncode == 0, sim.stderr
        lines = [line for line in sim.stdout.splitlines() if "subscriber(s)" in line]
        assert len(lines) == 5 + 12  # one of each severity, then one of each category
        assert all(line.endswith("-> 1 subscriber(s)") for line in lines)
        # debug and info are log-only: 3 severities + 12 categories are stored.
        wait_for(lambda: len(_get(f"{base}/api/errors/recent?limit=100")) == 15, timeout=10)
        stats = _get(f"{base}/api/errors/statistics?hours=1")
        assert stats["total"] == 15
        assert stats["byCategory"]["pattern"] == 4  # three severities + its category turn
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        log.close()


def test_sigterm_flushes_everything_received(app_env, tmp_path, redis_client):
    # A long batch wait keeps rows pending, so only the clean stop can write them.
    app_env["BATCH_MAX_WAIT_MS"] = "60000"
    app_env["BATCH_MAX_ROWS"] = "100000"
    process, log, _ = _start(app_env, tmp_path)
    for i in range(3000):
        redis_client.publish(app_env["ERROR_CHANNEL"],
                             json.dumps({"error_id": f"flush-{i}", "message": "m",
                                         "severity": "error"}))
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0
    log.seek(0)
    output = log.read()
    log.close()
    match = re.search(r"ingest stopped: (\{.*\})", output)
    assert match, output
    counters = ast.literal_eval(match.group(1))
    assert counters["received"] == 3000
    assert counters["stored"] == 3000 and counters["pending_write"] == 0

    from sqlalchemy import func, select

    from queries.engine import make_engine
    from queries.schema import error_logs

    engine = make_engine(app_env["DATABASE_URL"])
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(error_logs)).scalar_one() == 3000
    engine.dispose()


def test_a_bad_setting_stops_the_app_with_a_clear_message(app_env, tmp_path):
    app_env["PORT"] = "eighty"
    done = subprocess.run([sys.executable, str(ROOT / "app.py")], cwd=tmp_path, env=app_env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "PORT must be a whole number, got 'eighty'" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_second_app_on_the_same_spool_refuses_to_start_and_says_why(app_env, tmp_path):
    first, log, base = _start(app_env, tmp_path)
    try:
        second_env = {**app_env, "PORT": str(_free_port())}
        done = subprocess.run([sys.executable, str(ROOT / "app.py")], cwd=tmp_path,
                              env=second_env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 1
        assert "is in use by another ingest process" in done.stderr
        assert "Traceback" not in done.stderr
        # The first one never noticed.
        assert _get(f"{base}/api/errors/health")["monitor"]["subscribed"] is True
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(60) == 0
        log.close()
