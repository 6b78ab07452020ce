"""Warm page loads of every page, beside a minimal Dash page served the same way.

    python bench/page_load.py [--rows 5000] [--store sqlite|postgres] [--loads 15]
        [--pg-admin-url postgresql://postgres@127.0.0.1:5432/postgres]
        [--redis-url redis://127.0.0.1:6379/0] [--chromium /usr/lib/chromium/chromium]
        [--pages /,/trends]

Runs the real monitor (app.build: ingest on a private channel, the app served by waitress
with 8 threads) on a fresh store (a SQLite file, or a `tsem_bench_page_load_<pid>`
PostgreSQL database dropped at the end), fills it by publishing --rows errors spread over the
last 7 days through Redis (so the ring buffer, the groups and the counts are the real ones),
and loads each page in headless Chromium: navigation start -> the page's data shows (the
Overview: live-list rows and a number in the counts; Errors: result rows and the summary;
Trends: its first-paint bars, or plotly's chart where the range is too long for them;
Groups: group rows; Alerts, Jobs, Monitor: their filled sections). For Trends, the row
`drawn: /trends` gives when plotly's charts, which replace the first-paint bars once they are
on screen, had drawn (no budget: the counts were showing already).

Beside them, in the same run and the same browser, two minimal Dash apps on the same Dash,
served the same way (waitress, 8 threads, the same compression): one `html.Div` (the
floor: Dash's own bundles and its layout request), and Dash + dash-bootstrap-components with
one dash-ag-grid of 100 rows (the issue's yardstick). Machines differ 3x in speed, so the
ratio to them is the figure that travels.

Each page gets 2 warm-up loads (the browser cache and the server's caches fill), then
--loads measured loads, taken round-robin over the pages; p50 and p95 are printed with the
ratio of each p50 to the minimal pages' p50. Also printed per page: how many
`_dash-update-component` requests ran before the data showed, any callback that ran twice
on load (a duplicate), and the bytes the browser received for a cold load against their
uncompressed size.

Targets: every page's warm p50 <= 500 ms and <= 2x the minimal grid page's.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from read_counts import percentile  # bench/, beside this script

import app as app_module
from dashboard import ids
from settings import Settings

TARGET_MS = 500.0
TARGET_RATIO = 2.0

# The Trends page's plotly chart, drawn.
PLOTLY_TRENDS = "#trend-severity .main-svg .bars, #trend-severity .main-svg .trace"
# The Groups page's grid, mounted with its rows.
GROUP_ROWS = f"#{ids.GROUPS_GRID} .ag-row[row-id]"
# When each page's data shows, as a JS expression that is true from then on.
PAGES: dict[str, str] = {
    "/": f"document.querySelector('#{ids.ERROR_LIST} .ag-row[row-id]') && "
         f"/[0-9]/.test((document.getElementById('{ids.STAT_TOTAL}') || {{}}).textContent)",
    "/errors": f"document.querySelector('#{ids.SEARCH_RESULTS} .ag-row[row-id]') && "
               f"/ of /.test((document.getElementById('{ids.SEARCH_SUMMARY}') || "
               "{}).textContent)",
    # The first-paint bars (dashboard/quick_chart.py), or plotly's chart where the range
    # is too long for them.
    "/trends": f"document.querySelector('#trend-severity-quick .qc-seg, {PLOTLY_TRENDS}')",
    # The first-paint table (dashboard/quick_list.py), or the grid's rows.
    "/groups": "document.querySelector('.quick-list tbody tr, "
               f"{GROUP_ROWS}')",
    "/alerts": f"/firing/.test((document.getElementById('{ids.ALERTS_STATUS}') || "
               f"{{}}).textContent) && (document.getElementById('{ids.ALERTS_FIRING}') || "
               "{}).textContent",
    "/jobs": "document.getElementById('jobs-runs') || document.getElementById('jobs-body') "
             "&& document.getElementById('jobs-body').textContent",
    "/monitor": f"/updated/.test((document.getElementById('{ids.MONITOR_UPDATED}') || "
                f"{{}}).textContent) && (document.getElementById('{ids.MONITOR_LISTENING}')"
                " || {}).textContent",
}
# Pages whose first paint a richer drawing replaces once the page is up: when that is in.
# Printed beside the page ("drawn: ..."), with no budget of its own.
DRAWN: dict[str, str] = {
    "/trends": f"document.querySelector('{PLOTLY_TRENDS}')",
    "/groups": f"document.querySelector('{GROUP_ROWS}')",
}
MINIMAL = "document.getElementById('minimal-ready')"
MINIMAL_GRID = "document.querySelector('#minimal-grid .ag-row[row-id]')"
MINIMAL_NAME = "minimal page (one html.Div)"
MINIMAL_GRID_NAME = "minimal page (dbc + ag-grid, 100 rows)"

OBSERVER_JS = """
window.__shownAt = null;
window.__drawnAt = null;
(function () {
  var probes = PROBES;
  var probe = probes[location.port + location.pathname];
  var drawn = DRAWN_PROBES[location.port + location.pathname];
  if (!probe) { return; }
  function check() {
    if (window.__shownAt === null && probe()) {
      window.__shownAt = performance.now();
    }
    if (drawn && window.__drawnAt === null && drawn()) {
      window.__drawnAt = performance.now();
    }
    if (window.__shownAt !== null && (!drawn || window.__drawnAt !== null)) {
      observer.disconnect();
    }
  }
  var observer = new MutationObserver(check);
  observer.observe(document, {childList: true, subtree: true, characterData: true});
})();
"""


# -- the apps ---------------------------------------------------------------------------------
def minimal_app(with_grid: bool) -> Any:
    """The yardstick: the same Dash, nothing of ours; served the same way as the monitor."""
    import dash
    from dash import html

    from dashboard.factory import compression_settings

    app = dash.Dash(__name__, compress=True, update_title=None)
    app.server.config.update(compression_settings())
    if not with_grid:
        app.layout = html.Div("ready", id="minimal-ready")
        return app
    import dash_ag_grid as dag
    import dash_bootstrap_components as dbc

    rows = [{"id": str(i), "n": i, "text": f"row {i}"} for i in range(100)]
    app.layout = dbc.Container(dag.AgGrid(
        id="minimal-grid", rowData=rows, getRowId="params.data.id",
        columnDefs=[{"field": "n"}, {"field": "text", "flex": 1}]))
    return app


def serve(wsgi: Any) -> Any:
    from waitress.server import create_server

    server = create_server(wsgi, host="127.0.0.1", port=0, threads=8)
    threading.Thread(target=server.run, name="bench-waitress", daemon=True).start()
    return server


class CallbackLog:
    """The outputs of every `_dash-update-component` request the monitor answers."""

    def __init__(self, flask_app: Any) -> None:
        self.entries: list[tuple[float, str, tuple[str, ...]]] = []
        self._lock = threading.Lock()
        from flask import request

        @flask_app.before_request
        def record() -> None:
            if request.path.endswith("_dash-update-component"):
                body = request.get_json(silent=True) or {}
                changed = tuple(body.get("changedPropIds") or ())
                with self._lock:
                    self.entries.append((time.monotonic(), str(body.get("output")), changed))

    def since(self, moment: float) -> list[tuple[float, str, tuple[str, ...]]]:
        with self._lock:
            return [e for e in self.entries if e[0] >= moment]


# -- the store ---------------------------------------------------------------------------------
def make_store(kind: str, admin_url: str, workdir: Path) -> tuple[str, Any]:
    """(database URL, a function dropping it)."""
    if kind == "sqlite":
        return f"sqlite:///{workdir / 'errors.db'}", lambda: None
    import psycopg2

    name = f"tsem_bench_page_load_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(admin_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    admin.close()

    def drop() -> None:
        conn = psycopg2.connect(admin_url)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()

    return f"{admin_url.rsplit('/', 1)[0]}/{name}", drop


SCENARIOS = (
    ("pattern", "PatternDetector", "PatternDetectionError", "Pattern detection failed for Doji"),
    ("database", "DatabaseWriter", "OperationalError", "could not connect to server"),
    ("network", "PolygonClient", "PolygonAPIError", "429 Too Many Requests from Polygon.io"),
    ("data_quality", "DataValidator", "DataQualityWarning", "gap in daily bars"),
    ("performance", "BatchRunner", "SlowOperationWarning", "batch took 41 s"),
)


def fill(redis_url: str, channel: str, rows: int, engine: Any) -> float:
    """Publish `rows` errors over the last 7 days, newest last; seconds until all stored."""
    rng = random.Random(12)
    now = datetime.now(UTC)
    client = redis.Redis.from_url(redis_url)
    began = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    for i in range(rows):
        category, component, error_type, message = SCENARIOS[i % len(SCENARIOS)]
        x = rng.random()
        severity = "critical" if x < 0.01 else "error" if x < 0.4 else "warning"
        moment = now - timedelta(seconds=7 * 86400 * (rows - i) / rows)
        pipe.publish(channel, orjson.dumps({
            "error_id": f"page_{i}_{uuid.uuid4().hex[:6]}", "error_type": error_type,
            "error_message": f"{message} (SYM{i % 97}, batch {i % 31})",
            "severity": severity, "category": category, "timestamp": moment.isoformat(),
            "context": {"component": component, "symbol": f"SYM{i % 97}"}}))
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()
    client.close()
    from sqlalchemy import text

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT count(*) FROM error_logs")).scalar_one()
        if stored >= rows:
            break
        time.sleep(0.2)
    return time.perf_counter() - began


# -- the browser -------------------------------------------------------------------------------
def _probe_table(probes: dict[str, str]) -> str:
    return "{" + ",".join(f"{orjson.dumps(key).decode()}: function () {{ return !!({js}); }}"
                          for key, js in probes.items()) + "}"


def drawn_label(name: str) -> str:
    return f"drawn: {name}"


def browser(chromium: str, probes: dict[str, str],
            drawn: dict[str, str] | None = None) -> Any:
    """Headless Chromium that notes when each page's data shows (`probes`, by port and
    path) and, for `drawn`, when the drawing that replaces its first paint is in."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options

    options = Options()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1400,1000", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"):
        options.add_argument(flag)
    options.binary_location = chromium
    driver = webdriver.Chrome(options=options)
    source = OBSERVER_JS.replace("DRAWN_PROBES", _probe_table(drawn or {})) \
        .replace("PROBES", _probe_table(probes))
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": source})
    driver.execute_cdp_cmd("Network.enable", {})
    return driver


def _moment(driver: Any, name: str, what: str, timeout: float) -> float:
    """The page's `window[name]` (ms from the navigation's start) once the observer set it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        moment = driver.execute_script(f"return window.{name}")
        if moment is not None:
            return float(moment)
        time.sleep(0.005)
    raise TimeoutError(f"{driver.current_url}: {what} within {timeout} s")


def load(driver: Any, url: str, timeout: float = 15.0) -> float:
    """One navigation; ms from its start until the page's data shows."""
    driver.get("about:blank")
    driver.get(url)
    return _moment(driver, "__shownAt", "its data did not show", timeout)


def drawn_at(driver: Any, timeout: float = 15.0) -> float:
    """ms from the navigation's start until the page's later drawing was in."""
    return _moment(driver, "__drawnAt", "its drawing was not in", timeout)


def round_robin(driver: Any, urls: dict[str, str], loads: int,
                drawn: tuple[str, ...] = ()) -> dict[str, list[float]]:
    """`loads` timed loads of each named URL, taken in turns so that a slow spell of the
    machine falls on every page alike rather than on one; for the names in `drawn`, also
    when their later drawing was in (under drawn_label(name))."""
    times: dict[str, list[float]] = {name: [] for name in urls}
    times.update({drawn_label(name): [] for name in drawn})
    for _ in range(loads):
        for name, url in urls.items():
            times[name].append(load(driver, url))
            if name in drawn:
                times[drawn_label(name)].append(drawn_at(driver))
    return times


def transfer(driver: Any) -> tuple[int, int]:
    """(bytes received, bytes decoded) for the resources of the page just loaded."""
    sizes = driver.execute_script(
        "return performance.getEntriesByType('navigation').concat("
        "performance.getEntriesByType('resource')).map(function (e) {"
        "  return [e.transferSize || 0, e.decodedBodySize || 0]; })")
    return sum(s[0] for s in sizes), sum(s[1] for s in sizes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--loads", type=int, default=15)
    parser.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--chromium", default="/usr/lib/chromium/chromium")
    parser.add_argument("--pages", default=",".join(PAGES),
                        help="the monitor's pages to load, comma-separated (default: all)")
    args = parser.parse_args()
    pages = {path: PAGES[path] for path in args.pages.split(",") if path}
    if unknown := set(args.pages.split(",")) - set(PAGES) - {""}:
        parser.error(f"--pages: unknown page(s) {', '.join(sorted(unknown))}; "
                     f"known: {', '.join(PAGES)}")
    logging.basicConfig(level=logging.WARNING)

    workdir = tempfile.TemporaryDirectory(prefix="bench-page-load-")
    url, drop = make_store(args.store, args.pg_admin_url, Path(workdir.name))
    channel = f"bench:{uuid.uuid4().hex}:errors"
    settings = Settings(redis_url=args.redis_url, error_channel=channel, database_url=url,
                        spool_dir=str(Path(workdir.name) / "spool"),
                        log_file_path=str(Path(workdir.name) / "errors.log"))
    monitor = app_module.build(settings)
    log = CallbackLog(monitor.dash_app.server)
    monitor.start()
    servers: list[Any] = []
    driver = None
    try:
        deadline = time.monotonic() + 10
        while not monitor.ingest.subscriber.subscribed and time.monotonic() < deadline:
            time.sleep(0.05)
        seconds = fill(args.redis_url, channel, args.rows, monitor.engine)
        print(f"{args.store}: {args.rows:,} errors over 7 days published and stored in "
              f"{seconds:.1f} s")
        servers = [serve(monitor.dash_app.server), serve(minimal_app(False).server),
                   serve(minimal_app(True).server)]
        ports = [s.effective_port for s in servers]
        targets = {MINIMAL_NAME: (ports[1], "/", MINIMAL),
                   MINIMAL_GRID_NAME: (ports[2], "/", MINIMAL_GRID)}
        targets.update({path: (ports[0], path, js) for path, js in pages.items()})
        driver = browser(args.chromium,
                         {f"{port}{path}": js for port, path, js in targets.values()},
                         {f"{ports[0]}{path}": js for path, js in DRAWN.items() if path in pages})

        cold: dict[str, tuple[int, int]] = {}
        calls: dict[str, tuple[int, list[str]]] = {}
        for name, (port, path, _) in targets.items():
            driver.execute_cdp_cmd("Network.clearBrowserCache", {})
            load(driver, f"http://127.0.0.1:{port}{path}")
            cold[name] = transfer(driver)
            load(driver, f"http://127.0.0.1:{port}{path}")  # warm-up
            began = time.monotonic()
            shown_ms = load(driver, f"http://127.0.0.1:{port}{path}")
            if port == ports[0]:
                # What ran before the data showed, and anything that ran twice on load
                # (interval ticks excluded: they are meant to repeat).
                shown_at = began + shown_ms / 1000 + 0.05
                time.sleep(0.4)
                ran = [e for e in log.since(began)
                       if not all(p.endswith(".n_intervals") for p in e[2])]
                before = [e for e in ran if e[0] <= shown_at]
                twice = [out for out, n in Counter(e[1] for e in ran).items() if n > 1]
                calls[name] = (len(before), twice)

        times = round_robin(driver, {name: f"http://127.0.0.1:{port}{path}"
                                     for name, (port, path, _) in targets.items()}, args.loads,
                            tuple(path for path in DRAWN if path in pages))

        floor = statistics.median(times[MINIMAL_NAME])
        yardstick = statistics.median(times[MINIMAL_GRID_NAME])
        print(f"\nwarm load until the data shows, {args.loads} loads each "
              f"({args.store}, {args.rows:,} rows)")
        head = (f"{'page':<40} {'p50 ms':>7} {'p95 ms':>7} {'x div':>6} {'x grid':>7} "
                f"{'requests':>9} {'cold KB recv/raw':>18}  verdict")
        print(head)
        print("-" * len(head))
        failed = 0
        for name, values in times.items():
            p50 = statistics.median(values)
            received, raw = cold.get(name, (0, 0))
            before, twice = calls.get(name, (None, []))
            verdict = ""
            if name in PAGES:
                ok = p50 <= TARGET_MS and p50 <= TARGET_RATIO * yardstick and not twice
                failed += not ok
                verdict = "ok" if ok else "OVER"
                if twice:
                    verdict += f" ran twice: {', '.join(twice)}"
            print(f"{name:<40} {p50:7.0f} {percentile(values, 0.95):7.0f} {p50 / floor:6.2f} "
                  f"{p50 / yardstick:7.2f} {'' if before is None else before:>9} "
                  f"{received / 1024:8.0f}/{raw / 1024:<9.0f}  {verdict}")
        print("\nrequests: _dash-update-component requests answered before the data showed")
        print(f"\n{failed} page(s) over target" if failed else
              f"\nevery page within {TARGET_MS:.0f} ms and {TARGET_RATIO:.0f}x the grid page")
        return 1 if failed else 0
    finally:
        if driver is not None:
            driver.quit()
        for server in servers:
            server.close()
        monitor.stop()
        monitor.engine.dispose()
        with contextlib.suppress(Exception):
            drop()
        workdir.cleanup()


if __name__ == "__main__":
    sys.exit(main())
