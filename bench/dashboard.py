"""The dashboard at 1M and 10M errors: every route and page, p50 and p95, in one table.

    python bench/dashboard.py [--rows 1000000,10000000] [--store postgres|sqlite]
        [--days 30] [--repeat 30] [--export-repeat 5] [--loads 7] [--live]
        [--keep] [--reuse] [--pg-admin-url postgresql://postgres@127.0.0.1:5432/postgres]
        [--redis-url redis://127.0.0.1:6379/0] [--chromium /usr/lib/chromium/chromium]

For each size in --rows, a fresh store is loaded with that many errors spread evenly over
the last --days:

  postgres  database `tsem_bench_dashboard_<rows>`, made by create_schema (daily partitions
            first) and loaded by read_counts.load: one INSERT ... SELECT over
            generate_series per day with the count tables dropped, then the count tables
            made from the rows by create_schema's backfill. The groups are then made
            from the rows with one aggregate INSERT (the batch writer's group hook would
            have made the same, one batch at a time).
  sqlite    file `<tmp>/tsem_bench_dashboard_<rows>.db`, loaded one day per transaction
            through the app's own write path (queries.store.ErrorStore.write_batch with the
            groups hook: the rows, the count tables counted per batch in Python, the
            groups). That path is too slow for a quick 1M: ~2,300 rows/s measured on the
            shared 2-core machine (most of it the executemany of the rows, the count
            batch and the time formatting), so 1M takes ~7 min and 10M over an hour; the
            load rate is printed, and an estimate before loading 1M or more.

The load time is printed; the budget (PostgreSQL) is 10 minutes for 10M, prorated for
other sizes. Then the real monitor (app.build, its ingest on a private channel
`bench:<uuid>:errors`, a temporary spool) runs on that store and is measured:

  routes     through Flask's test client on the app's server: statistics (24 h, 720 h),
             recent, health, trends (168 h, 720 h), search with key terms over 720 h and
             24 h, and the group list (GET /api/groups), --repeat calls after one warm-up;
  CSV        GET /api/errors/export.csv?limit=100000 over HTTP (the app served by
             waitress, read with requests, stream=True): time to the first byte of the
             body, --export-repeat full reads after one warm-up; beside it the whole read's
             time and the bench process's peak RSS growth during it (sampled every 5 ms;
             the server runs in this process, so a server that held the export would show);
  pages      warm loads in headless Chromium of /, /errors, /trends, /groups, /alerts and
             /monitor until their data shows (page_load's probes), --loads each after two
             warm-ups, taken in turns with the two minimal Dash pages (one html.Div; dbc +
             one dash-ag-grid of 100 rows) in the same browser; Trends shows its
             first-paint bars first, and the row `drawn: page /trends` (no budget) gives
             when plotly's charts had drawn in their place;
  live       (--live) PUBLISH -> the row is in the Overview's live list, over 40 errors;
  in turns   (two sizes or more) every size's monitor side by side, the routes called in
             turns, one call per size at a time: the routes' size ratio comes from this;
  references SELECT 1 round trip, a one-row INSERT + commit through the count path
             (read_counts.references), and the minimal pages.

The Overview's live list starts from the ring buffer, which is empty on a loaded store; it
is topped up from the store's last 24 hours (dashboard/pages/overview.py), so the loaded
rows fill it and nothing needs publishing.

Prints one table at the end: a row per route, page and reference; p50 and p95 per size (ms);
the p95 ratio largest/smallest size (routes: from the calls in turns); the ratio to its
reference at the largest size (routes and CSV: p95 over SELECT 1's p95; pages: p50 over the
grid page's p50; live: p95 over the one-row INSERT's p95); the budget and a verdict.
Budgets: statistics p95 <= 50 ms; recent and health <= 20 ms; trends, search and the group
list <= 100 ms; CSV first byte <= 200 ms with RSS growth <= 50 MB; pages p50 <= 500 ms and
<= 2x the grid page's p50; live p95 <= 1 s; for every row the largest size's p95 within 1.5x
of the smallest's. Exits 1 when a figure is over budget. The stores are dropped at the end
(also on Ctrl-C or an error) unless --keep; --reuse measures stores an earlier --keep run
left (no loading).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
import redis
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# After the project: this file's name is the project's `dashboard` package's too.
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.append(str(Path(__file__).resolve().parent))

import page_load
import read_counts

import app as app_module
from groups.hook import GroupsHook
from queries.engine import make_engine
from queries.records import ErrorEvent
from queries.schema import create_schema
from queries.store import ErrorStore
from settings import Settings

RATIO = 1.5
FLAT_MB = 50.0
EXPORT_ROWS = 100_000
LOAD_BUDGET_S_PER_10M = 600.0
PAGE_MS = 500.0
PAGE_RATIO = 2.0
LIVE_P95_MS = 1000.0

SELECT_1 = "ref: SELECT 1"
INSERT_1 = "ref: one-row INSERT + commit"
CSV = "CSV export 100k: first byte"
LIVE = "live: PUBLISH -> row in the list"
PAGES = ("/", "/errors", "/trends", "/groups", "/alerts", "/monitor")
SEARCHES = (
    ("search severity:critical category:database, 720 h",
     "severity:critical category:database", 720),
    ("search symbol:SYM42 severity:error, 24 h", "symbol:SYM42 severity:error", 24),
)
GROUPS = ("groups: list of 100", "/api/groups")


def route_budget(label: str) -> float:
    for prefix, budget in (("statistics", 50.0), ("recent", 20.0), ("health", 20.0),
                           ("trends", 100.0), ("search", 100.0), ("groups", 100.0),
                           ("CSV", 200.0)):
        if label.startswith(prefix):
            return budget
    raise KeyError(label)


@dataclass
class SizeResult:
    figures: dict[str, tuple[float, float]] = field(default_factory=dict)
    load_s: float | None = None
    csv_growth_mb: float = 0.0
    csv_note: str = ""


def size_label(rows: int) -> str:
    if rows >= 1_000_000:
        return f"{rows / 1e6:g}M"
    return f"{rows / 1e3:g}k" if rows >= 1000 else str(rows)


# -- the stores ---------------------------------------------------------------------------------
def pg_name(rows: int) -> str:
    return f"tsem_bench_dashboard_{rows}"


def sqlite_path(rows: int) -> Path:
    # A fixed name, not a temporary directory: --keep and --reuse need to find it again.
    return Path(tempfile.gettempdir()) / f"tsem_bench_dashboard_{rows}.db"


GROUPS_SQL = (
    """INSERT INTO error_groups (fingerprint, title, error_type, category, component,
           operation, first_seen, last_seen, event_count, worst_severity, symbol_count,
           state, state_changed_at)
       SELECT fingerprint, min(error_type) || ': ' || min(error_message), min(error_type),
              min(category), min(component), min(operation), min("timestamp"),
              max("timestamp"), count(*),
              (ARRAY['warning', 'error', 'critical'])[max(CASE severity WHEN 'critical'
                  THEN 3 WHEN 'error' THEN 2 ELSE 1 END)],
              count(DISTINCT symbol), 'unresolved', now()
       FROM error_logs WHERE fingerprint IS NOT NULL GROUP BY fingerprint""",
    """INSERT INTO error_group_symbols (fingerprint, symbol, event_count, last_seen)
       SELECT fingerprint, symbol, count(*), max("timestamp") FROM error_logs
       WHERE fingerprint IS NOT NULL AND symbol IS NOT NULL GROUP BY fingerprint, symbol""",
)


def load_postgres(admin_url: str, rows: int, days: int) -> tuple[str, float]:
    """(URL, seconds the row inserts took); the groups' aggregate is timed apart."""
    url, loaded = read_counts.load(admin_url, rows, days, name=pg_name(rows))
    engine = make_engine(url)
    began = time.perf_counter()
    with engine.begin() as conn:
        for statement in GROUPS_SQL:
            conn.exec_driver_sql(statement)
        conn.exec_driver_sql("ANALYZE error_groups, error_group_symbols")
        groups = conn.exec_driver_sql("SELECT count(*) FROM error_groups").scalar_one()
    engine.dispose()
    print(f"  {groups} groups made from the rows in {time.perf_counter() - began:.1f} s")
    return url, loaded


def day_events(day: int, per_day: int, start: datetime, end: datetime) -> list[ErrorEvent]:
    """The rows read_counts.LOAD_DAY_SQL makes for one day, as the ingest hands them over."""
    events = []
    for g in range(1, per_day + 1):
        moment = start + timedelta(days=g / per_day)
        if moment >= end:
            break
        category, component, operation, error_type, message = \
            read_counts.SCENARIOS[g * 7 % 12]
        x = g * 7919 % 100
        symbol = f"SYM{g % 500}"
        events.append(ErrorEvent(
            error_id=f"bench_{day}_{g}", error_type=error_type,
            error_message=f"{message} for {symbol}",
            error_traceback=None, severity="critical" if x < 1 else "error" if x < 40
            else "warning", category=category, source="TickStockPL", component=component,
            operation=operation, symbol=symbol, context={}, timestamp=moment,
            received_at=moment,
            fingerprint=hashlib.md5(f"{error_type}{g % 40}".encode()).hexdigest()))
    return events


def load_sqlite(rows: int, days: int) -> tuple[str, float]:
    drop_store("sqlite", "", rows)
    path = sqlite_path(rows)
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    create_schema(engine)
    store = ErrorStore(engine, hooks=[GroupsHook()])
    end = datetime.now(UTC) - timedelta(minutes=1)
    first = end - timedelta(days=days)
    per_day = rows // days
    began = time.perf_counter()
    stored = 0
    try:
        for day in range(days):
            result = store.write_batch(day_events(day, per_day, first + timedelta(days=day),
                                                  end))
            stored += result.inserted
            if (day + 1) % 10 == 0:
                print(f"  loading: day {day + 1}/{days} ({time.perf_counter() - began:.0f} s)",
                      flush=True)
        loaded = time.perf_counter() - began
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
            counted = conn.exec_driver_sql(
                "SELECT sum(n) FROM error_counts WHERE grain = 86400").scalar_one()
    finally:
        store.close()
        engine.dispose()
    print(f"  {stored:,} rows over {days} days loaded in {loaded:.1f} s "
          f"({stored / max(loaded, 1e-9):,.0f} rows/s, one transaction a day through "
          f"ErrorStore.write_batch); count tables hold {counted:,}")
    if counted != stored:
        raise SystemExit(f"the count tables hold {counted}, error_logs {stored}")
    return url, loaded


def drop_store(store: str, admin_url: str, rows: int) -> None:
    if store == "postgres":
        read_counts.drop(admin_url, pg_name(rows))
    else:  # the file, its WAL and the lock files the app keeps beside it
        path = sqlite_path(rows)
        for found in path.parent.glob(f"{path.name}*"):
            found.unlink(missing_ok=True)


# -- the measurements ---------------------------------------------------------------------------
def routes(now: datetime) -> list[tuple[str, str]]:
    out = list(read_counts.ROUTES)
    for label, q, hours in SEARCHES:
        since = (now - timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")
        out.append((label, "/api/errors/search?" + urlencode({"q": q, "from": since})))
    out.append(GROUPS)
    return out


def measure_routes(client: Any, repeat: int) -> dict[str, tuple[float, float]]:
    return read_counts.time_routes(client, routes(datetime.now(UTC)), repeat)


def monitor_settings(url: str, args: argparse.Namespace, workdir: Path) -> Settings:
    """The real monitor's settings for a store: a private channel and spool, and
    retention_days past the loaded days (a start-up retention run must not cut the month)."""
    return Settings(redis_url=args.redis_url, error_channel=f"bench:{uuid.uuid4().hex}:errors",
                    database_url=url, spool_dir=str(workdir / f"spool-{uuid.uuid4().hex[:8]}"),
                    log_file_path=str(workdir / "errors.log"), retention_days=args.days + 30)


def routes_in_turns(urls: dict[int, str], args: argparse.Namespace,
                    workdir: Path) -> dict[int, dict[str, tuple[float, float]]]:
    """Every size's routes called in turns, one call each at a time, a monitor per store
    running side by side: a slow minute of the machine then falls on every size alike, so
    the ratio between sizes is the rows' and not the machine's. (Each size's own phase,
    minutes apart, moved the same route by up to 1.9x between runs of the same code.)"""
    monitors: dict[int, Any] = {}
    try:
        for rows, url in urls.items():
            monitors[rows] = app_module.build(monitor_settings(url, args, workdir))
            monitors[rows].start()
        deadline = time.monotonic() + 10
        while (not all(m.ingest.subscriber.subscribed for m in monitors.values())
               and time.monotonic() < deadline):
            time.sleep(0.05)
        clients = {rows: m.dash_app.server.test_client() for rows, m in monitors.items()}
        plan = routes(datetime.now(UTC))
        times: dict[int, dict[str, list[float]]] = {rows: {label: [] for label, _ in plan}
                                                    for rows in urls}
        for turn in range(args.repeat + 1):  # the first turn warms plans and pools
            for label, path in plan:
                for rows, client in clients.items():
                    began = time.perf_counter()
                    read_counts.get_ok(client, path)
                    spent = (time.perf_counter() - began) * 1000
                    if turn:
                        times[rows][label].append(spent)
        return {rows: {label: (statistics.median(v), read_counts.percentile(v, 0.95))
                       for label, v in by_label.items()} for rows, by_label in times.items()}
    finally:
        for monitor in monitors.values():
            with contextlib.suppress(Exception):
                monitor.stop()
                monitor.engine.dispose()


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def read_export(url: str) -> tuple[float, float, int, float]:
    """One export read whole: (ms to the first body byte, ms to the end, bytes received,
    peak RSS growth in MB while it was read)."""
    start_mb = rss_mb()
    peak = [start_mb]
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.005):
            peak[0] = max(peak[0], rss_mb())

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        began = time.perf_counter()
        with requests.get(url, stream=True, timeout=120) as response:
            response.raise_for_status()
            first = response.raw.read(1)
            first_ms = (time.perf_counter() - began) * 1000
            size = len(first)
            while chunk := response.raw.read(1 << 16):
                size += len(chunk)
        total_ms = (time.perf_counter() - began) * 1000
    finally:
        done.set()
        watcher.join()
    return first_ms, total_ms, size, max(peak[0], rss_mb()) - start_mb


def measure_export(port: int, repeat: int, result: SizeResult) -> None:
    url = f"http://127.0.0.1:{port}/api/errors/export.csv?limit={EXPORT_ROWS}"
    read_export(url)  # warm-up: the plan, the pool, the allocator's arenas
    reads = [read_export(url) for _ in range(repeat)]
    firsts = [r[0] for r in reads]
    result.figures[CSV] = (statistics.median(firsts), read_counts.percentile(firsts, 0.95))
    result.csv_growth_mb = max(r[3] for r in reads)
    whole = statistics.median(r[1] for r in reads)
    result.csv_note = (f"{reads[0][2] / 1e6:.1f} MB received, whole read {whole:.0f} ms "
                       f"(p50), peak RSS growth {result.csv_growth_mb:.1f} MB")


def measure_pages(driver: Any, ports: dict[str, int], loads: int) -> dict[str, list[float]]:
    urls = {page_load.MINIMAL_NAME: f"http://127.0.0.1:{ports['div']}/",
            page_load.MINIMAL_GRID_NAME: f"http://127.0.0.1:{ports['grid']}/"}
    urls.update({f"page {path}": f"http://127.0.0.1:{ports['monitor']}{path}" for path in PAGES})
    for url in urls.values():  # two warm-ups fill the browser's cache and the server's
        page_load.load(driver, url)
        page_load.load(driver, url)
    drawn = tuple(f"page {path}" for path in PAGES if path in page_load.DRAWN)
    return page_load.round_robin(driver, urls, loads, drawn)


SEEN_JS = """
window.__seen = {};
new MutationObserver(function () {
  var rows = document.querySelectorAll('#error-list .ag-row[row-id]');
  var now = Date.now();
  for (var i = 0; i < rows.length; i++) {
    var id = rows[i].getAttribute('row-id');
    if (!(id in window.__seen)) { window.__seen[id] = now; }
  }
}).observe(document, {childList: true, subtree: true});
"""


def measure_live(driver: Any, port: int, redis_url: str, channel: str,
                 count: int = 40) -> tuple[float, float]:
    page_load.load(driver, f"http://127.0.0.1:{port}/")
    driver.execute_script(SEEN_JS)
    client = redis.Redis.from_url(redis_url)
    published: dict[str, float] = {}
    try:
        for i in range(count):
            error_id = f"live_{uuid.uuid4().hex}"
            published[error_id] = time.time() * 1000
            client.publish(channel, orjson.dumps({
                "error_id": error_id, "error_type": "BenchError", "severity": "error",
                "error_message": f"live latency probe {i}", "category": "performance",
                "context": {"component": "Bench", "symbol": "SPY"}}))
            time.sleep(0.2 + (i % 5) * 0.05)  # off the 1 s tick, so delays spread over it
        time.sleep(2)
    finally:
        client.close()
    seen = driver.execute_script("return window.__seen")
    delays = [seen[k] - t for k, t in published.items() if k in seen]
    if len(delays) < count:
        print(f"  live: {count - len(delays)} of {count} never showed")
    if not delays:
        return float("inf"), float("inf")
    return statistics.median(delays), read_counts.percentile(delays, 0.95)


def measure_size(url: str, args: argparse.Namespace, workdir: Path, ports: dict[str, int],
                 result: SizeResult, on_monitor: Callable[[Any], None]) -> None:
    settings = monitor_settings(url, args, workdir)
    channel = settings.error_channel
    monitor = app_module.build(settings)
    on_monitor(monitor)
    monitor.start()
    deadline = time.monotonic() + 10
    while not monitor.ingest.subscriber.subscribed and time.monotonic() < deadline:
        time.sleep(0.05)
    server = page_load.serve(monitor.dash_app.server)
    on_monitor(server)
    result.figures.update(measure_routes(monitor.dash_app.server.test_client(), args.repeat))
    measure_export(server.effective_port, args.export_repeat, result)
    result.figures.update(read_counts.references(monitor.engine, args.repeat))
    ports = {**ports, "monitor": server.effective_port}
    probes = {f"{ports['div']}/": page_load.MINIMAL, f"{ports['grid']}/": page_load.MINIMAL_GRID}
    probes.update({f"{ports['monitor']}{path}": page_load.PAGES[path] for path in PAGES})
    # A browser per size: its probes are keyed by port, and the monitor's port is new.
    driver = page_load.browser(args.chromium, probes, {
        f"{ports['monitor']}{path}": js for path, js in page_load.DRAWN.items() if path in PAGES})
    on_monitor(driver)
    for name, values in measure_pages(driver, ports, args.loads).items():
        result.figures[name] = (statistics.median(values), read_counts.percentile(values, 0.95))
    if args.live:
        result.figures[LIVE] = measure_live(driver, ports["monitor"], args.redis_url, channel)


# -- the table ----------------------------------------------------------------------------------
def size_ratio(label: str, results: dict[int, SizeResult],
               turns: dict[int, dict[str, tuple[float, float]]] | None) -> float:
    """p95 at the largest size over p95 at the smallest: from the routes called in turns
    where there are such figures, else from each size's own phase."""
    sizes = list(results)
    figures = (turns if turns and label in turns[sizes[0]]
               else {n: r.figures for n, r in results.items()})
    return figures[sizes[-1]][label][1] / max(figures[sizes[0]][label][1], 1e-9)


def verdict(label: str, results: dict[int, SizeResult],
            turns: dict[int, dict[str, tuple[float, float]]] | None = None
            ) -> tuple[str, str | None]:
    """(budget text, "ok"/"OVER ..." or None for a reference)."""
    sizes = list(results)
    within_ratio = size_ratio(label, results, turns) <= RATIO
    if label.startswith(("ref:", "minimal", "drawn:")):
        return "", None
    problems = []
    if label.startswith("page "):
        grid = {n: r.figures[page_load.MINIMAL_GRID_NAME][0] for n, r in results.items()}
        budget = f"p50<={PAGE_MS:.0f}, <={PAGE_RATIO:g}x grid"
        if any(r.figures[label][0] > PAGE_MS for r in results.values()):
            problems.append("p50")
        if any(r.figures[label][0] > PAGE_RATIO * grid[n] for n, r in results.items()):
            problems.append("x grid")
    else:
        limit = LIVE_P95_MS if label == LIVE else route_budget(label)
        budget = f"p95<={limit:.0f}"
        if any(r.figures[label][1] > limit for r in results.values()):
            problems.append("p95")
        if label == CSV:
            budget += f", RSS<={FLAT_MB:.0f}MB"
            if any(r.csv_growth_mb > FLAT_MB for r in results.values()):
                problems.append("memory")
    if len(sizes) > 1 and not within_ratio:
        problems.append("ratio")
    return budget, "ok" if not problems else "OVER " + ",".join(problems)


def reference_ratio(label: str, figures: dict[str, tuple[float, float]]) -> float | None:
    if label.startswith(("page ", "drawn: ")) or label == page_load.MINIMAL_NAME:
        return figures[label][0] / figures[page_load.MINIMAL_GRID_NAME][0]
    if label == LIVE:
        return figures[label][1] / figures[INSERT_1][1]
    if label.startswith("ref:") or label.startswith("minimal"):
        return None
    return figures[label][1] / figures[SELECT_1][1]


def print_table(results: dict[int, SizeResult], store: str,
                turns: dict[int, dict[str, tuple[float, float]]] | None = None) -> int:
    sizes = list(results)
    first = results[sizes[0]].figures
    labels = [k for k in first if not (k.startswith("ref:") or k.startswith("minimal"))]
    labels += [k for k in first if k.startswith("minimal")] + [SELECT_1, INSERT_1]
    width = max(len(k) for k in labels) + 2
    head = f"{'route / page':<{width}}" + "".join(
        f"{size_label(n) + ' p50':>11}{size_label(n) + ' p95':>11}" for n in sizes)
    head += f"{'p95 ratio':>10}{'x ref':>10}  {'budget':<28}verdict"
    print(f"\n{store}, ms; p95 ratio = {size_label(sizes[-1])}/{size_label(sizes[0])} "
          f"({'routes: called in turns, below; the rest: ' if turns else ''}each size's own "
          f"phase); x ref at {size_label(sizes[-1])}")
    print(head)
    print("-" * len(head))
    failed = 0
    for label in labels:
        line = f"{label:<{width}}"
        for n in sizes:
            p50, p95 = results[n].figures[label]
            line += f"{p50:11.1f}{p95:11.1f}"
        ratio = size_ratio(label, results, turns)
        ref = reference_ratio(label, results[sizes[-1]].figures)
        budget, outcome = verdict(label, results, turns)
        failed += bool(outcome and outcome != "ok")
        line += f"{ratio:9.2f}x" + (f"{ref:9.1f}x" if ref is not None else " " * 10)
        print(line + f"  {budget:<28}{outcome or ''}")
    print("\nx ref: routes and CSV p95 / SELECT 1 p95; pages p50 / the grid page's p50; "
          "live p95 / the one-row INSERT's p95")
    if turns:
        print("\nroutes called in turns, every size side by side (ms, p50/p95):")
        for label in turns[sizes[0]]:
            cells = "  ".join(
                f"{size_label(n)} {turns[n][label][0]:6.1f}/{turns[n][label][1]:6.1f}"
                for n in sizes)
            print(f"  {label:<{width}}{cells}  ratio {size_ratio(label, results, turns):.2f}x")
    for n, result in results.items():
        print(f"CSV export at {size_label(n)}: {result.csv_note}")
    for n, result in results.items():
        if result.load_s is None:
            continue
        budget = LOAD_BUDGET_S_PER_10M * n / 10_000_000
        rate = f"{n / max(result.load_s, 1e-9):,.0f} rows/s"
        if store == "postgres":
            ok = result.load_s <= budget
            failed += not ok
            print(f"load at {size_label(n)}: {result.load_s:.1f} s, {rate} (budget "
                  f"{budget:.1f} s: 10 min for 10M, prorated) {'ok' if ok else 'OVER'}")
        else:
            print(f"load at {size_label(n)}: {result.load_s:.1f} s, {rate} (SQLite through "
                  f"the app's write path; 10M would take ~{1e7 / (n / result.load_s) / 60:.0f}"
                  " min; no budget)")
    print(f"\n{failed} row(s) over budget" if failed else "\nevery figure within budget")
    return failed


# -- main ---------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="1000000,10000000")
    parser.add_argument("--store", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=30, help="calls per route")
    parser.add_argument("--export-repeat", type=int, default=5,
                        help=f"full reads of the {EXPORT_ROWS:,}-row CSV export")
    parser.add_argument("--loads", type=int, default=7, help="warm loads per page")
    parser.add_argument("--live", action="store_true",
                        help="also measure PUBLISH -> row in the Overview's live list")
    parser.add_argument("--keep", action="store_true", help="keep the stores at the end")
    parser.add_argument("--reuse", action="store_true",
                        help="measure stores an earlier --keep run left (no loading)")
    parser.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--chromium", default="/usr/lib/chromium/chromium")
    args = parser.parse_args()
    sizes = [int(x) for x in args.rows.split(",")]
    logging.basicConfig(level=logging.WARNING)

    workdir = tempfile.TemporaryDirectory(prefix="bench-dashboard-")
    results: dict[int, SizeResult] = {}
    loaded: list[int] = []
    urls: dict[int, str] = {}
    minimal = [page_load.serve(page_load.minimal_app(False).server),
               page_load.serve(page_load.minimal_app(True).server)]
    ports = {"div": minimal[0].effective_port, "grid": minimal[1].effective_port}
    try:
        for rows in sizes:
            print(f"{size_label(rows)} rows ({args.store}):", flush=True)
            result = results[rows] = SizeResult()
            if args.reuse:
                url = (read_counts.db_url(args.pg_admin_url, pg_name(rows))
                       if args.store == "postgres" else f"sqlite:///{sqlite_path(rows)}")
            else:
                loaded.append(rows)  # before the load: a half-loaded store is dropped too
                if args.store == "sqlite" and rows >= 1_000_000:
                    print(f"  SQLite loads through the app's write path at ~2,300 rows/s "
                          f"here: expect ~{rows / 2300 / 60:.0f} min", flush=True)
                url, result.load_s = (load_postgres(args.pg_admin_url, rows, args.days)
                                      if args.store == "postgres"
                                      else load_sqlite(rows, args.days))
            urls[rows] = url
            opened: list[Any] = []
            try:
                measure_size(url, args, Path(workdir.name), ports, result, opened.append)
            finally:
                for thing in reversed(opened):  # browser, then server, then the monitor
                    with contextlib.suppress(Exception):
                        (thing.quit if hasattr(thing, "quit") else
                         thing.close if hasattr(thing, "close") else thing.stop)()
            for label, (p50, p95) in result.figures.items():  # now: a later size may fail
                print(f"    {label:<52} p50 {p50:8.1f} ms   p95 {p95:8.1f} ms", flush=True)
            print(f"    {result.csv_note}", flush=True)
        turns = None
        if len(sizes) > 1:
            print("routes of every size, called in turns:", flush=True)
            turns = routes_in_turns(urls, args, Path(workdir.name))
        return 1 if print_table(results, args.store, turns) else 0
    finally:
        for server in minimal:
            server.close()
        if not args.keep:
            for rows in loaded:
                with contextlib.suppress(Exception):
                    drop_store(args.store, args.pg_admin_url, rows)
        workdir.cleanup()


if __name__ == "__main__":
    sys.exit(main())
