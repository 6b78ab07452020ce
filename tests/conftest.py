"""Shared fixtures: a private PostgreSQL database per run, private channels per test.

The tests talk to the real servers the machine runs (PostgreSQL on 127.0.0.1:5432, Redis on
127.0.0.1:6379), overridable with TEST_PG_ADMIN_URL and TEST_REDIS_URL.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import redis
from sqlalchemy import text
from sqlalchemy.engine import Engine

from queries.engine import make_engine
from queries.schema import create_schema, metadata
from settings import Settings

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def pytest_setup_options():
    """Chromium flags for dash[testing]'s browser fixtures on a closed, headless machine."""
    from selenium.webdriver.chrome.options import Options

    options = Options()
    for flag in ("--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--window-size=1400,1000"):
        options.add_argument(flag)
    return options


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A PostgreSQL database made for this test run, dropped at its end."""
    name = f"tsem_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(PG_ADMIN_URL)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with admin.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
    admin.close()


def fresh_schema(engine: Engine) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        else:
            metadata.drop_all(conn)
    create_schema(engine)


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    """An engine on the run's PostgreSQL database with empty tables."""
    engine = make_engine(pg_url)
    fresh_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/errors.db"


@pytest.fixture(params=["postgresql", "sqlite"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test using it runs once on PostgreSQL and once on SQLite, on empty tables."""
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_url")
        engine = make_engine(url)
        fresh_schema(engine)
        engine.dispose()
        yield url
    else:
        yield f"sqlite:///{tmp_path}/errors.db"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    create_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def channel() -> str:
    """A channel name no other test (or run) uses."""
    return f"test:{uuid.uuid4().hex}:errors"


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A private 3-master Redis Cluster for the run (tests/redis_cluster.py), started by the
    first test that asks for it and stopped at the end."""
    from tests.redis_cluster import PrivateCluster

    cluster = PrivateCluster(tmp_path_factory.mktemp("redis-cluster")).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def cluster_settings(make_settings: Callable[..., Settings], redis_cluster: Any,
                     channel: str) -> Callable[..., Settings]:
    """`make_settings` on the private Redis Cluster: REDIS_CLUSTER=true, so the test's
    channel becomes `{<channel>}` and the stream `{<channel>}:stream`; the processing
    channels listed (sharded pub/sub has no patterns)."""
    prefix = jobs_names(channel)["prefix"]

    def build(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "redis_url": redis_cluster.plain_url, "redis_cluster": True,
            "error_stream": f"{channel}:stream",
            "processing_channels": f"{prefix}:processing:status,{prefix}:import:started"}
        return make_settings(**{**values, **overrides})

    return build


@pytest.fixture
def make_settings(tmp_path: Path, channel: str) -> Callable[..., Settings]:
    """Settings for a test: its own channel, SQLite file, log file and spool folder."""

    # The jobs package's channels and keys, private to the test too (see `jobs_names`).
    names = jobs_names(channel)

    def build(**overrides: object) -> Settings:
        base = Settings(
            redis_url=REDIS_URL,
            error_channel=channel,
            processing_channels=",".join(names["processing"]),
            listener_channels=names["listener"],
            job_status_keys=names["status_keys"],
            database_url=f"sqlite:///{tmp_path}/errors.db",
            log_file_path=str(tmp_path / "logs" / "errors.log"),
            spool_dir=str(tmp_path / "spool"),
            redis_health_check_interval=2,
        )
        return replace(base, **overrides)

    return build


def jobs_names(channel: str) -> dict[str, Any]:
    """The processing channels, the data loader's channel and the job status keys of a test,
    made from its error channel, so tests never read each other's (or a real system's)."""
    prefix = channel.rsplit(":", 1)[0]
    return {"prefix": prefix,
            "processing": [f"{prefix}:processing:status", f"{prefix}:import:*",
                           f"{prefix}:cache:*", f"{prefix}:indicators:*",
                           f"{prefix}:patterns:*", f"{prefix}:monitoring"],
            "listener": f"{prefix}.jobs.data_load",
            "status_keys": f"{prefix}.jobs.status:*"}


@pytest.fixture
def start_monitor(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., Any]]:
    """`start_monitor(**settings)`: the whole app (app.build) started and subscribed to the
    test's channel; stopped when the test ends."""
    import app as app_module  # the Dash stack, only for the tests that want it

    started: list[Any] = []

    def start(**overrides: object) -> Any:
        monitor = app_module.build(make_settings(**overrides))
        started.append(monitor)
        monitor.start()
        wait_for(lambda: monitor.ingest.subscriber.subscribed, message="subscription")
        return monitor

    yield start
    for monitor in reversed(started):
        monitor.stop()


def wait_for(predicate: Callable[[], object], timeout: float = 10.0,
             interval: float = 0.05, message: str = "condition") -> object:
    """Poll `predicate` until it returns something truthy; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


def click_settled(dash_duo: Any, selector: str, timeout: float = 8.0) -> None:
    """Click `selector`, again if a refresh redrew the element between finding and clicking
    it (a grid's tick redraws its cells; a person's click lands on what is there)."""
    from selenium.common.exceptions import StaleElementReferenceException

    def attempt() -> bool:
        try:
            dash_duo.find_element(selector).click()
        except StaleElementReferenceException:
            return False
        return True

    wait_for(attempt, timeout=timeout, message=f"a click on {selector}")


def record_arrivals(driver: Any, selectors: dict[str, str]) -> None:
    """From the next page's first moment, note when each selector first matches (the
    page's own performance.now(), by a MutationObserver); read them with `arrivals`."""
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": """
        window.__arrivals = {};
        var selectors = SELECTORS;
        new MutationObserver(function () {
          var now = performance.now();
          Object.keys(selectors).forEach(function (name) {
            if (!(name in window.__arrivals) && document.querySelector(selectors[name]))
              { window.__arrivals[name] = now; }
          });
        }).observe(document, {childList: true, subtree: true});""".replace(
        "SELECTORS", json.dumps(selectors))})


def arrivals(driver: Any) -> dict[str, float]:
    """What `record_arrivals` noted on the current page: name -> ms since navigation."""
    return driver.execute_script("return window.__arrivals || {};")


@pytest.fixture
def receiver() -> Iterator[Any]:
    """A real local webhook receiver (tests/test_webhook.py), closed when the test ends."""
    from tests.test_webhook import Receiver

    found = Receiver()
    yield found
    found.close()
