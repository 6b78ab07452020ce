"""The dashboard under a month of errors: page load, live latency, callbacks, search, trends.

    python bench/dashboard.py [--rows 1000000] [--days 30] [--keep] [--reuse]
        [--trigram] [--pg-admin-url postgresql://postgres@127.0.0.1:5432/postgres]
        [--redis-url redis://127.0.0.1:6379/0] [--chromium /usr/lib/chromium/chromium]

Loads --rows errors spread evenly over the last --days into a fresh PostgreSQL database
(`tsem_bench_dashboard`; one INSERT ... SELECT over generate_series, daily partitions made
first when the schema is partitioned), runs the real monitor on it (app.build: ingest on a
private channel, the app served by waitress), and measures:

  page load      warm load of / in headless Chromium, navigation start -> the live list
                 has rows and the counts show (median of 7 loads after a first one);
  live latency   PUBLISH -> the row is in the page's live list (a MutationObserver stamps
                 each new row), p50/p95/max over 60 errors published over ~20 s;
  callbacks      each Overview callback's server time, as POSTs to _dash-update-component
                 through the test client (Dash's own overhead included), median and p95;
  search         queries.search over the whole month and over shorter ranges;
  trends         build_trend for 1 h, 24 h, 7 d and 30 d, cold (new rollup) and warm.

Targets: page load <= 500 ms, live p95 <= 1 s, each Overview callback <= 50 ms,
search and trends <= 200 ms. --trigram measures search again with the optional pg_trgm
indexes (queries.search.create_trigram_indexes). The database is dropped at the end unless
--keep; --reuse keeps an already loaded one.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg2
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import app as app_module
from dashboard import ids
from queries.engine import make_engine
from queries.schema import create_schema
from queries.search import create_trigram_indexes, parse_query, search_errors
from queries.trends import HourlyRollup, build_trend
from settings import Settings

DB_NAME = "tsem_bench_dashboard"
TARGETS = {"page": 500.0, "live_p95": 1000.0, "callback": 50.0, "query": 200.0}

# One INSERT ... SELECT: twelve scenarios (as ingest.simulate), 500 symbols, 1% critical,
# 39% error, 60% warning, timestamps evenly over the range, newest a minute ago.
LOAD_SQL = """
INSERT INTO error_logs (error_id, error_type, error_message, error_traceback, severity,
                        category, source, component, operation, symbol, context, timestamp)
SELECT 'bench_' || g,
       t.error_type,
       t.message || ' for ' || s.sym || ' (attempt ' || (1 + g %% 5) || ', batch '
         || (g %% 9973) || ')',
       'Traceback (most recent call last):' || chr(10) || '  File "' || lower(t.component)
         || '.py", line ' || (20 + g %% 380) || ', in ' || t.operation || chr(10)
         || t.error_type || ': ' || t.message,
       CASE WHEN r.x < 0.01 THEN 'critical' WHEN r.x < 0.40 THEN 'error' ELSE 'warning' END,
       t.category, 'TickStockPL', t.component, t.operation, s.sym,
       jsonb_build_object('symbol', s.sym, 'timeframe', 'daily', 'attempt', 1 + g %% 5),
       %(end)s - (g::float8 / %(rows)s) * %(span)s * interval '1 second'
FROM generate_series(1, %(rows)s) AS g
CROSS JOIN LATERAL (SELECT random() + 0 * g AS x, random() + 0 * g AS y) AS r
JOIN (VALUES
  (0, 'pattern', 'PatternDetector', 'detect_doji', 'PatternDetectionError',
   'Pattern detection failed for Doji: Insufficient data'),
  (1, 'indicator', 'IndicatorCalculator', 'calculate_rsi', 'IndicatorCalculationError',
   'RSI needs 14 periods, got 9'),
  (2, 'database', 'DatabaseWriter', 'write_ohlcv', 'OperationalError',
   'connection to server failed: timeout'),
  (3, 'network', 'HistoricalLoader', 'load_minute_bars', 'PolygonAPIError',
   '429 Too Many Requests from Polygon.io'),
  (4, 'validation', 'BarValidator', 'validate', 'DataValidationError',
   'high < low for bar at 09:31'),
  (5, 'performance', 'BatchRunner', 'run', 'SlowOperationWarning',
   'daily import took 412 s, budget 300 s'),
  (6, 'configuration', 'ConfigLoader', 'load', 'ConfigurationError',
   'POLYGON_API_KEY is not set'),
  (7, 'security', 'ApiGateway', 'authenticate', 'AuthenticationError',
   'invalid API token presented'),
  (8, 'integration', 'TickStockAppBridge', 'forward', 'IntegrationError',
   'TickStockApp did not acknowledge event'),
  (9, 'websocket', 'StreamClient', 'receive', 'WebSocketError', 'stream closed by peer: 1006'),
  (10, 'redis', 'EventPublisher', 'publish', 'RedisError',
   'Redis publish failed: connection reset'),
  (11, 'unknown', 'Worker', 'run', 'RuntimeError', 'unexpected failure')
) AS t(k, category, component, operation, error_type, message)
  ON t.k = (g * 7 + (r.y * 3)::int) %% 12
JOIN (SELECT i - 1 AS k, 'SYM' || i AS sym FROM generate_series(1, 500) AS i) AS s
  ON s.k = (g * 31) %% 500
"""

# Stamp each new live-list row with the time it first appeared, and the moment the page
# first shows data (rows in the list and a count in the cards).
OBSERVER_JS = """
window.__seen = {};
window.__visibleAt = null;
function __scan() {
  var rows = document.querySelectorAll('#error-list .ag-row[row-id]');
  var now = Date.now();
  for (var i = 0; i < rows.length; i++) {
    var id = rows[i].getAttribute('row-id');
    if (!(id in window.__seen)) { window.__seen[id] = now; }
  }
  if (window.__visibleAt === null && rows.length > 0) {
    var total = document.getElementById('stat-total');
    if (total && /[0-9]/.test(total.textContent)) { window.__visibleAt = performance.now(); }
  }
}
new MutationObserver(__scan).observe(document, {childList: true, subtree: true});
"""


# -- helpers ------------------------------------------------------------------------------
def timed(action: Callable[[], Any], repeat: int = 5) -> tuple[float, float, Any]:
    """(median ms, max ms, last result) of `repeat` runs."""
    times = []
    result = None
    for _ in range(repeat):
        began = time.perf_counter()
        result = action()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times), max(times), result


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


class Report:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, str, str]] = []
        self.failed = 0

    def add(self, name: str, figure: float, target: float | None, detail: str = "") -> None:
        verdict = "" if target is None else ("ok" if figure <= target else "OVER")
        if verdict == "OVER":
            self.failed += 1
        target_text = "" if target is None else f"<= {target:.0f} ms"
        self.lines.append((name, f"{figure:9.1f} ms", target_text, f"{verdict} {detail}".strip()))
        print(f"  {name:<52} {figure:9.1f} ms  {target_text:<11} {verdict} {detail}",
              flush=True)


# -- the database -----------------------------------------------------------------------------
def prepare_database(admin_url: str, rows: int, days: int, reuse: bool) -> str:
    base = admin_url.rsplit("/", 1)[0]
    url = f"{base}/{DB_NAME}"
    admin = psycopg2.connect(admin_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,))
        exists = cur.fetchone() is not None
        if exists and reuse:
            admin.close()
            print(f"reusing database {DB_NAME}")
            # The baseline is the schema as create_schema makes it: no optional indexes.
            conn = psycopg2.connect(url)
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("DROP INDEX IF EXISTS idx_error_logs_message_trgm, "
                            "idx_error_logs_error_type_trgm")
            conn.close()
            return url
        if exists:
            cur.execute(f'DROP DATABASE "{DB_NAME}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{DB_NAME}"')
    admin.close()
    engine = make_engine(url)
    create_schema(engine)
    engine.dispose()
    end = datetime.now(UTC) - timedelta(minutes=1)
    conn = psycopg2.connect(url)
    try:
        try:  # a partitioned error_logs gets its daily partitions, as the retention job makes
            from retention.partitions import ensure_days

            first = (end - timedelta(days=days)).date()
            made = ensure_days(conn, [first + timedelta(days=i) for i in range(days + 2)])
            print(f"made {len(made)} daily partitions")
        except ImportError:
            pass
        began = time.perf_counter()
        with conn.cursor() as cur:
            cur.execute(LOAD_SQL, {"rows": rows, "end": end, "span": days * 86400})
        conn.commit()
        loaded = time.perf_counter() - began
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("VACUUM ANALYZE")
        print(f"loaded {rows:,} rows over {days} days in {loaded:.1f} s "
              f"(+ VACUUM ANALYZE {time.perf_counter() - began - loaded:.1f} s)")
    finally:
        conn.close()
    return url


def drop_database(admin_url: str) -> None:
    admin = psycopg2.connect(admin_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    admin.close()


# -- the Overview's callbacks, as the browser calls them ---------------------------------------
def _body(output: str, outputs: Any, inputs: list[dict[str, Any]],
          state: list[dict[str, Any]], changed: list[str]) -> dict[str, Any]:
    return {"output": output, "outputs": outputs, "inputs": inputs, "state": state,
            "changedPropIds": changed}


def _prop(id_: str, prop: str, value: Any = None) -> dict[str, Any]:
    return {"id": id_, "property": prop, "value": value}


def callback_bodies(monitor: Any) -> dict[str, dict[str, Any]]:
    ring = monitor.ingest.ring
    cursor = {"seq": ring.last_seq, "shown": 500}
    feed_out = [_prop(ids.ERROR_LIST, "rowTransaction"), _prop(ids.ERROR_LIST, "rowData"),
                _prop(ids.LIVE_CURSOR, "data")]
    feed_key = (f"..{ids.ERROR_LIST}.rowTransaction...{ids.ERROR_LIST}.rowData..."
                f"{ids.LIVE_CURSOR}.data..")
    stat_ids = (ids.STAT_TOTAL, ids.STAT_CRITICAL, ids.STAT_ERROR, ids.STAT_WARNING)
    stats_out = ([_prop(s, "children") for s in stat_ids]
                 + [_prop(f"{s}-link", "href") for s in stat_ids])
    stats_key = ".." + "...".join([f"{s}.children" for s in stat_ids]
                                  + [f"{s}-link.href" for s in stat_ids]) + ".."
    health_out = [_prop(ids.HEALTH_STATUS, "children"), _prop(ids.HEALTH_STATUS, "className"),
                  _prop(ids.HEALTH_STATUS, "title"), _prop(ids.MONITOR_LINE, "children")]
    health_key = (f"..{ids.HEALTH_STATUS}.children...{ids.HEALTH_STATUS}.className..."
                  f"{ids.HEALTH_STATUS}.title...{ids.MONITOR_LINE}.children..")
    notice_out = [_prop(ids.NOTIFICATIONS, "children"), _prop(ids.CRITICAL_DIALOG, "is_open"),
                  _prop(ids.CRITICAL_LIST, "children"), _prop(ids.CRITICAL_MORE, "children"),
                  _prop(ids.CRITICAL_TITLE, "children"), _prop(ids.CRITICAL_SIGNAL, "data"),
                  _prop(ids.NOTICE_STATE, "data")]
    notice_key = ".." + "...".join(f"{o['id']}.{o['property']}" for o in notice_out) + ".."
    tick = [_prop(ids.LIVE_INTERVAL, "n_intervals", 7)]
    filters = [_prop(ids.CATEGORY_FILTER, "value"), _prop(ids.SEVERITY_FILTER, "value")]

    def stats(window: str) -> dict[str, Any]:
        return _body(stats_key, stats_out, [*tick, _prop(ids.STATS_WINDOW, "value", window)],
                     [], [f"{ids.LIVE_INTERVAL}.n_intervals"])

    return {
        "feed: tick, nothing new": _body(
            feed_key, feed_out, [*tick, *filters],
            [_prop(ids.LIVE_CURSOR, "data", cursor)], [f"{ids.LIVE_INTERVAL}.n_intervals"]),
        "feed: filter change (full reload + store top-up)": _body(
            feed_key, feed_out,
            [*tick, _prop(ids.CATEGORY_FILTER, "value", ["database"]),
             _prop(ids.SEVERITY_FILTER, "value", ["critical"])],
            [_prop(ids.LIVE_CURSOR, "data", cursor)], [f"{ids.CATEGORY_FILTER}.value"]),
        "counts: 1 h window": stats("1h"),
        "counts: 24 h window": stats("24h"),
        "counts: 7 d window": stats("7d"),
        "counts: 30 d window": stats("30d"),
        "navbar health": _body(health_key, health_out,
                               [_prop(ids.NAV_INTERVAL, "n_intervals", 7)], [],
                               [f"{ids.NAV_INTERVAL}.n_intervals"]),
        "notices: tick": _body(
            notice_key, notice_out,
            [_prop(ids.NAV_INTERVAL, "n_intervals", 7), _prop(ids.CRITICAL_DISMISS, "n_clicks")],
            [_prop(ids.NOTICE_STATE, "data", {"seq": ring.last_seq}),
             _prop(ids.CRITICAL_DIALOG, "is_open", False)],
            [f"{ids.NAV_INTERVAL}.n_intervals"]),
    }


def bench_callbacks(monitor: Any, report: Report) -> None:
    client = monitor.dash_app.server.test_client()
    # The live list as it is after a burst: a full ring buffer.
    print("\nOverview callbacks (server time per POST /_dash-update-component):")
    for name, body in callback_bodies(monitor).items():
        cold = None
        times = []
        for i in range(41):
            began = time.perf_counter()
            response = client.post("/_dash-update-component", json=body)
            elapsed = (time.perf_counter() - began) * 1000
            if response.status_code not in (200, 204):
                raise RuntimeError(f"{name}: {response.status_code} {response.data[:300]!r}")
            if i == 0:
                cold = elapsed
            else:
                times.append(elapsed)
        report.add(f"{name} (median)", statistics.median(times), None)
        report.add(f"{name} (p95)", p95(times), TARGETS["callback"],
                   f"first call {cold:.0f} ms")


# -- search and trends ------------------------------------------------------------------------
SEARCHES = (
    ("", None), ("severity:critical", None), ("severity:critical category:network", None),
    ("symbol:SYM42", None), ("component:ApiGateway", None), ("timeout", None),
    ("timeout", 24), ("batch 9000)", 24), ("batch 9000)", 24 * 7), ("batch 9000)", None),
    ("SYM42 severity:error", None),
)


def bench_search(engine: Any, report: Report, label: str = "") -> None:
    print(f"\nSearch, first page of 50 with its capped count{label}:")
    now = datetime.now(UTC)
    for text, hours in SEARCHES:
        query = parse_query(text).between(now - timedelta(hours=hours) if hours else None, None)
        median, worst, page = timed(lambda q=query: search_errors(engine, q), repeat=5)
        span = "all 30 d" if hours is None else f"last {hours} h"
        report.add(f"search {text or '(everything)'!r}, {span}", median, TARGETS["query"],
                   f"max {worst:.0f} ms, {page.total_text()} rows")
    first = search_errors(engine, parse_query(""))
    cursor = first.next_cursor
    for _ in range(200):  # walk 200 pages deep, then time the next page
        cursor = search_errors(engine, parse_query(""), cursor=cursor, with_total=False
                               ).next_cursor
    median, worst, _ = timed(lambda: search_errors(engine, parse_query(""), cursor=cursor,
                                                   with_total=False))
    report.add("search: a page 10,000 rows deep (cursor)", median, TARGETS["query"],
               f"max {worst:.0f} ms")


def bench_trends(engine: Any, report: Report) -> None:
    print("\nTrends (build_trend; cold = a new rollup that has read nothing yet):")
    for hours in (1, 24, 24 * 7, 24 * 30):
        rollup = HourlyRollup(engine)
        now = datetime.now(UTC)
        began = time.perf_counter()
        trend = build_trend(rollup, now - timedelta(hours=hours), now)
        cold = (time.perf_counter() - began) * 1000
        median, worst, trend = timed(lambda r=rollup, h=hours: build_trend(
            r, datetime.now(UTC) - timedelta(hours=h), datetime.now(UTC)), repeat=5)
        report.add(f"trends {hours} h, warm ({trend.bucket} buckets)", median, TARGETS["query"],
                   f"max {worst:.0f} ms, {trend.total:,} errors")
        report.add(f"trends {hours} h, cold", cold, None)


# -- the browser ------------------------------------------------------------------------------
def browser(chromium: str) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options

    options = Options()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1400,1000", "--disable-background-networking"):
        options.add_argument(flag)
    options.binary_location = chromium
    driver = webdriver.Chrome(options=options)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": OBSERVER_JS})
    return driver


def wait_js(driver: Any, script: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value is not None:
            return value
        time.sleep(0.01)
    raise TimeoutError(f"no answer from {script!r} within {timeout} s")


def bench_page(driver: Any, url: str, report: Report) -> None:
    print("\nPage load (navigation start -> live list rows and counts visible):")
    loads = []
    for i in range(8):
        driver.get(url)
        visible = wait_js(driver, "return window.__visibleAt")
        if i > 0:  # the first load fills the browser cache and the server's rollup
            loads.append(float(visible))
    report.add("warm page load of / (median of 7)", statistics.median(loads), TARGETS["page"],
               f"max {max(loads):.0f} ms")


def bench_live(driver: Any, url: str, redis_url: str, channel: str, report: Report,
               count: int = 60) -> None:
    print("\nLive latency (PUBLISH -> row in the page's live list):")
    driver.get(url)
    wait_js(driver, "return window.__visibleAt")
    client = redis.Redis.from_url(redis_url)
    published: dict[str, float] = {}
    for i in range(count):
        error_id = f"live_{uuid.uuid4().hex}"
        message = {"error_id": error_id, "error_type": "BenchError", "severity": "error",
                   "error_message": f"live latency probe {i}", "category": "performance",
                   "context": {"component": "Bench", "symbol": "SPY"}}
        published[error_id] = time.time() * 1000
        client.publish(channel, orjson.dumps(message))
        time.sleep(0.2 + (i % 5) * 0.05)
    time.sleep(2)
    seen = driver.execute_script("return window.__seen")
    client.close()
    delays = [seen[k] - t for k, t in published.items() if k in seen]
    missing = count - len(delays)
    report.add("publish -> visible, p50", statistics.median(delays), None)
    report.add("publish -> visible, p95", p95(delays), TARGETS["live_p95"],
               f"max {max(delays):.0f} ms, {missing} not seen")


# -- main -------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--keep", action="store_true", help="keep the database at the end")
    parser.add_argument("--reuse", action="store_true", help="use an already loaded database")
    parser.add_argument("--trigram", action="store_true",
                        help="also measure search with the optional pg_trgm indexes")
    parser.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--chromium", default="/usr/lib/chromium/chromium")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    url = prepare_database(args.pg_admin_url, args.rows, args.days, args.reuse)
    report = Report()
    workdir = tempfile.TemporaryDirectory(prefix="bench-dashboard-")
    channel = f"bench:{uuid.uuid4().hex}:errors"
    settings = Settings(redis_url=args.redis_url, error_channel=channel, database_url=url,
                        spool_dir=str(Path(workdir.name) / "spool"),
                        log_file_path=str(Path(workdir.name) / "errors.log"))
    monitor = app_module.build(settings)
    monitor.start()
    server = None
    driver = None
    try:
        deadline = time.monotonic() + 10
        while not monitor.ingest.subscriber.subscribed and time.monotonic() < deadline:
            time.sleep(0.05)
        from waitress.server import create_server

        server = create_server(monitor.dash_app.server, host="127.0.0.1", port=0, threads=8)
        threading.Thread(target=server.run, name="bench-waitress", daemon=True).start()
        page_url = f"http://127.0.0.1:{server.effective_port}/"
        # Fill the ring buffer as a busy day would, so every tick has a full ring to look at.
        client = redis.Redis.from_url(args.redis_url)
        pipe = client.pipeline(transaction=False)
        for i in range(2000):
            pipe.publish(channel, orjson.dumps({
                "error_id": f"ring_{i}_{uuid.uuid4().hex[:8]}", "severity": "warning",
                "error_type": "WarmupWarning", "category": "performance",
                "error_message": f"warm-up {i}", "context": {"component": "Bench"}}))
        pipe.execute()
        client.close()
        time.sleep(2)

        driver = browser(args.chromium)
        bench_page(driver, page_url, report)
        bench_live(driver, page_url, args.redis_url, channel, report)
        bench_callbacks(monitor, report)
        engine = make_engine(url)
        bench_search(engine, report)
        bench_trends(engine, report)
        if args.trigram:
            began = time.perf_counter()
            made = create_trigram_indexes(engine)
            print(f"\ntrigram indexes: {'made' if made else 'not available'} in "
                  f"{time.perf_counter() - began:.1f} s")
            if made:
                with engine.connect() as conn:
                    conn.exec_driver_sql("ANALYZE error_logs")
                bench_search(engine, report, " (with the optional trigram indexes)")
        engine.dispose()
    finally:
        if driver is not None:
            driver.quit()
        if server is not None:
            server.close()
        monitor.stop()
        workdir.cleanup()
        if not args.keep and not args.reuse:
            with contextlib.suppress(psycopg2.Error):
                drop_database(args.pg_admin_url)
    print(f"\n{report.failed} figure(s) over target" if report.failed else
          "\nevery figure within its target")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
