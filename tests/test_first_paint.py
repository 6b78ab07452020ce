"""The first paint has data: each page arrives with what it shows, not a timer tick later;
no callback runs twice on load; the answers are compressed when the browser asks.

The browser test sets every page's refresh interval to an hour, so whatever shows can only
have come with the page itself. Run with
`DASH_TEST_CHROMEPATH=/usr/lib/chromium/chromium python -m pytest --headless ...`.
"""

from __future__ import annotations

import gzip
import re
import threading
import time
import uuid
from collections import Counter
from typing import Any

import pytest

from alerts import page as alerts_page
from alerts.store import count_firing
from dashboard import ids, navbar
from dashboard.pages import monitor as monitor_page
from dashboard.pages import overview, trends
from groups import page as groups_page
from jobs import page as jobs_page
from live.ring_buffer import RingBuffer
from queries.reads import recent_errors
from queries.store import ErrorStore
from tests.conftest import wait_for
from tests.factories import event, payload

HOUR_MS = 3_600_000


# -- compression (the Flask test client) -----------------------------------------------------
@pytest.fixture
def web(make_settings, sqlite_url):
    import app as app_module

    monitor = app_module.build(make_settings(database_url=sqlite_url))
    yield monitor
    monitor.stop()


def test_bundles_and_json_are_gzipped_when_the_browser_asks(web) -> None:
    client = web.dash_app.server.test_client()
    index = client.get("/", headers={"Accept-Encoding": "gzip"})
    assert index.headers.get("Content-Encoding") == "gzip"
    page = gzip.decompress(index.data).decode()
    grid = next(src for src in re.findall(r'src="([^"]+)"', page) if "dash_ag_grid" in src)

    raw = client.get(grid)
    assert raw.status_code == 200 and "Content-Encoding" not in raw.headers  # asked for none
    packed = client.get(grid, headers={"Accept-Encoding": "gzip"})
    assert packed.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(packed.data) == raw.data
    assert len(packed.data) < 0.35 * len(raw.data), (len(packed.data), len(raw.data))
    assert "Accept-Encoding" in packed.headers["Vary"]
    # Compressed once and kept: the second answer is the same bytes.
    assert client.get(grid, headers={"Accept-Encoding": "gzip"}).data == packed.data
    # The grid's lazily loaded chunk too, and it still answers a revalidation with a 304.
    chunk = client.get("/_dash-component-suites/dash_ag_grid/async-community.js",
                       headers={"Accept-Encoding": "gzip"})
    assert chunk.headers["Content-Encoding"] == "gzip"
    again = client.get("/_dash-component-suites/dash_ag_grid/async-community.js",
                       headers={"Accept-Encoding": "gzip", "If-None-Match": chunk.headers["ETag"]})
    assert again.status_code == 304
    # Kept by the browser and revalidated, not fetched whole on every load.
    assert chunk.headers["Cache-Control"] == "no-cache"


def test_our_assets_are_kept_under_their_fingerprinted_names(web) -> None:
    client = web.dash_app.server.test_client()
    page = client.get("/").data.decode()
    assets = re.findall(r'(?:src|href)="(/assets/[^"]+\?m=[^"]+)"', page)
    assert {a.split("?")[0].rsplit(".", 1)[1] for a in assets} == {"css", "js"}, assets
    for url in assets:
        answer = client.get(url)
        assert answer.status_code == 200
        # The name changes with the file, so the browser need not ask again on each load.
        assert answer.headers["Cache-Control"] == "max-age=31536000, immutable", url
    # Asked for without the file's time, it may have changed since: not kept for good.
    bare = client.get(assets[0].split("?")[0])
    assert bare.status_code == 200 and "immutable" not in bare.headers["Cache-Control"]


def test_charts_load_the_small_plotly_and_it_revalidates(web) -> None:
    client = web.dash_app.server.test_client()
    plotly = client.get("/_dash-component-suites/plotly/package_data/plotly.min.js")
    assert plotly.status_code == 200
    assert b"plotly.js (basic - minified) v4.1.1" in plotly.data[:200]
    assert len(plotly.data) < 1_500_000  # the full build is 4.8 MB
    assert plotly.headers["Cache-Control"] == "no-cache"
    again = client.get("/_dash-component-suites/plotly/package_data/plotly.min.js",
                       headers={"If-None-Match": plotly.headers["ETag"]})
    assert again.status_code == 304

    store = ErrorStore(web.engine)
    store.write_batch([event(error_id=f"z{i}") for i in range(30)])
    store.close()
    recent = client.get("/api/errors/recent?limit=30", headers={"Accept-Encoding": "gzip"})
    assert recent.headers["Content-Encoding"] == "gzip"
    assert b'"z0"' in gzip.decompress(recent.data)
    # The CSV export streams as it is: its first byte is not held back by a compressor.
    export = client.get("/api/errors/export.csv", headers={"Accept-Encoding": "gzip"})
    assert export.status_code == 200 and "Content-Encoding" not in export.headers
    assert b"z0" in export.data


# -- the live list: a tick never brings back rows the filter excludes --------------------------
def test_a_tick_after_a_filter_change_reloads_when_its_own_request_was_dropped() -> None:
    # The browser drops a callback's request in flight when the same callback fires again:
    # a tick right after a filter change arrives with the new filter and the old cursor,
    # and only the interval listed as its trigger.
    ring = RingBuffer(100)
    ring.extend([event(error_id="db", category="database"),
                 event(error_id="net", category="network")])
    unfiltered = overview.full_list(ring, None, None).cursor
    update = overview.next_rows(ring, unfiltered, ["database"], None)
    assert [r["id"] for r in update.row_data] == ["db"]
    # The new cursor remembers its filter: the next tick is a plain one again.
    ring.extend([event(error_id="net2", category="network"),
                 event(error_id="db2", category="database")])
    follow = overview.next_rows(ring, update.cursor, ["database"], None)
    assert follow.row_data is None and [r["id"] for r in follow.transaction["add"]] == ["db2"]
    # Clearing the filter reloads the whole list, even on a tick.
    cleared = overview.next_rows(ring, follow.cursor, [], None)
    assert [r["id"] for r in cleared.row_data] == ["db2", "net2", "net", "db"]


def test_the_first_tick_adds_only_what_came_after_the_page() -> None:
    ring = RingBuffer(100)
    ring.extend([event(error_id=f"e{i}") for i in range(3)])
    first = overview.full_list(ring, None, None)
    assert not overview.next_rows(ring, first.cursor, None, None).changed
    ring.extend([event(error_id="e3")])
    tick = overview.next_rows(ring, first.cursor, None, None)
    assert [r["id"] for r in tick.transaction["add"]] == ["e3"]


# -- every page in the browser, with its timers an hour apart ---------------------------------
class CallbackLog:
    """What the server was asked: the output of every `_dash-update-component` request."""

    def __init__(self, server: Any) -> None:
        self.entries: list[tuple[float, str, tuple[str, ...]]] = []
        self._lock = threading.Lock()
        from flask import request

        @server.before_request
        def record() -> None:
            if request.path.endswith("_dash-update-component"):
                body = request.get_json(silent=True) or {}
                with self._lock:
                    self.entries.append((time.monotonic(), str(body.get("output")),
                                         tuple(body.get("changedPropIds") or ())))

    def since(self, moment: float) -> list[str]:
        with self._lock:
            return [output for at, output, _ in self.entries if at >= moment]


@pytest.fixture
def slow_timers(monkeypatch) -> None:
    """Every refresh an hour apart: only the page itself can bring its data."""
    for module, name in ((overview, "LIVE_TICK_MS"), (overview, "STATS_TICK_MS"),
                         (navbar, "NAV_TICK_MS"), (monitor_page, "TICK_MS"),
                         (jobs_page, "REFRESH_MS"), (groups_page, "REFRESH_MS"),
                         (alerts_page, "REFRESH_MS"), (trends, "REFRESH_MS")):
        monkeypatch.setattr(module, name, HOUR_MS)


def _text(dash_duo, selector: str) -> str:
    found = dash_duo.driver.find_elements("css selector", selector)
    return found[0].text if found else ""


@pytest.mark.browser
def test_fp001_every_page_shows_its_data_at_first_paint_and_runs_each_callback_once(
        dash_duo, start_monitor, pg_url, pg_engine, redis_client, channel,
        slow_timers) -> None:
    monitor = start_monitor(database_url=pg_url)
    tag = uuid.uuid4().hex[:6]
    redis_client.publish(channel, payload(error_message=f"db down {tag}", category="database",
                                          severity="critical", error_type="DatabaseError"))
    for i in range(3):
        redis_client.publish(channel, payload(error_message=f"slow batch {tag} {i}",
                                              severity="warning", category="performance",
                                              error_type="SlowOperationWarning"))
    wait_for(lambda: len(recent_errors(monitor.engine, 10)) >= 4, message="4 stored")
    wait_for(lambda: count_firing(monitor.engine) >= 1, message="an alert firing")
    log = CallbackLog(monitor.dash_app.server)
    dash_duo.start_server(monitor.dash_app)

    def visit(path: str, selector: str, shows: str) -> None:
        began = time.monotonic()
        dash_duo.driver.get(f"{dash_duo.server_url}{path}")
        dash_duo.wait_for_contains_text(selector, shows, timeout=15)
        time.sleep(1.0)  # let anything the load sets off run
        ran = Counter(log.since(began))
        twice = [output for output, n in ran.items() if n > 1]
        assert not twice, f"{path}: ran more than once on load: {twice}"
        # Stricter still: the layout carried everything, so the load asked the server
        # nothing at all (grids' mount-time clicks and empty stores included).
        assert not ran, f"{path}: callbacks ran on load: {list(ran)}"

    visit("/", f"#{ids.ERROR_LIST}", f"db down {tag}")
    assert f"slow batch {tag} 2" in _text(dash_duo, f"#{ids.ERROR_LIST}")
    assert _text(dash_duo, f"#{ids.STAT_TOTAL}") == "4"
    assert _text(dash_duo, f"#{ids.STAT_CRITICAL}") == "1"
    assert _text(dash_duo, f"#{ids.STAT_WARNING}") == "3"

    visit("/errors?q=category%3Adatabase", f"#{ids.SEARCH_RESULTS}", f"db down {tag}")
    assert "of 1" in _text(dash_duo, f"#{ids.SEARCH_SUMMARY}")
    assert f"slow batch {tag}" not in _text(dash_duo, f"#{ids.SEARCH_RESULTS}")

    visit("/trends", f"#{ids.TRENDS_SUMMARY}", "4 errors")
    dash_duo.wait_for_element("#trend-severity .main-svg", timeout=15)

    visit("/groups", f"#{ids.GROUPS_GRID}", "DatabaseError")
    assert "SlowOperationWarning" in _text(dash_duo, f"#{ids.GROUPS_GRID}")
    fingerprint = dash_duo.find_element(f"#{ids.GROUPS_GRID} .ag-row[row-id]") \
        .get_attribute("row-id")
    visit(f"/groups/{fingerprint}", f"#{ids.GROUP_PAGE}", "Events per hour")
    dash_duo.wait_for_element(f"#{ids.GROUP_CHART} .main-svg .bars", timeout=15)

    visit("/alerts", f"#{ids.ALERTS_FIRING}", "critical")
    firing = count_firing(monitor.engine)
    assert f"{firing} firing" in _text(dash_duo, f"#{ids.ALERTS_STATUS}")

    visit("/jobs", f"#{jobs_page.JOBS_BODY}", "Processing runs")
    visit("/monitor", f"#{ids.MONITOR_UPDATED}", "updated")
    assert _text(dash_duo, f"#{ids.MONITOR_LISTENING}")

    # And no timer ticked during the test: what showed came with the pages.
    assert all(not any(p.endswith(".n_intervals") for p in changed)
               for _, _, changed in log.entries), "a timer ticked during the test"
    assert dash_duo.get_logs() == [], "the browser console reported errors"


@pytest.mark.browser
def test_fp002_a_dark_theme_draws_the_charts_dark_at_first_paint(
        dash_duo, start_monitor, pg_url, pg_engine, redis_client, channel,
        slow_timers) -> None:
    monitor = start_monitor(database_url=pg_url)
    redis_client.publish(channel, payload(severity="error"))
    wait_for(lambda: recent_errors(monitor.engine, 1), message="one stored")
    log = CallbackLog(monitor.dash_app.server)
    dash_duo.start_server(monitor.dash_app)
    dash_duo.wait_for_element(f"#{ids.ERROR_LIST} .ag-root", timeout=10)
    # The theme switch is remembered by the browser; the page is drawn from that.
    dash_duo.find_element(f"#{ids.SETTINGS_BUTTON}").click()
    dash_duo.find_element(f"#{ids.THEME_SWITCH}").click()
    wait_for(lambda: dash_duo.driver.execute_script(
        "return document.documentElement.getAttribute('data-bs-theme')") == "dark",
        message="the dark theme")
    began = time.monotonic()
    dash_duo.driver.get(f"{dash_duo.server_url}/trends")
    dash_duo.wait_for_element("#trend-severity .main-svg", timeout=15)
    time.sleep(1.0)
    # plotly_dark's font colour, drawn by the page's own chart: no redraw was asked for.
    colour = dash_duo.driver.execute_script(
        "var t = document.querySelector('#trend-severity .main-svg .gtitle');"
        "return t && getComputedStyle(t).fill;")
    assert colour and colour != "rgb(42, 63, 95)", colour  # plotly_white's is #2a3f5f
    assert not any(ids.TRENDS_CHARTS in output for output in log.since(began))


@pytest.mark.browser
def test_fp003_a_layout_made_for_another_tabs_page_is_put_right(
        dash_duo, start_monitor, pg_url, pg_engine, redis_client, channel) -> None:
    # Two tabs loading at the same instant can swap the cookie that tells the layout which
    # page it is for: this tab then gets the other one's page first, and its own right after.
    from urllib.parse import quote

    from dashboard.factory import PAGE_COOKIE

    monitor = start_monitor(database_url=pg_url)
    redis_client.publish(channel, payload(error_message="db down", category="database"))
    wait_for(lambda: recent_errors(monitor.engine, 1), message="one stored")
    server = monitor.dash_app.server

    def other_tabs_page(response: Any) -> Any:
        if response.mimetype == "text/html":
            response.headers.remove("Set-Cookie")
            response.set_cookie(PAGE_COOKIE, quote("/jobs"), path="/_dash-layout")
        return response

    server.after_request_funcs.setdefault(None, []).insert(0, other_tabs_page)  # runs last
    dash_duo.start_server(monitor.dash_app)
    dash_duo.driver.get(f"{dash_duo.server_url}/errors?q=category%3Adatabase")
    dash_duo.wait_for_contains_text(f"#{ids.SEARCH_SUMMARY}", "of 1", timeout=15)
    assert "db down" in _text(dash_duo, f"#{ids.SEARCH_RESULTS}")
    assert not dash_duo.driver.find_elements("css selector", f"#{jobs_page.JOBS_PAGE}")

    # And moving between pages still goes through the router.
    server.after_request_funcs[None].remove(other_tabs_page)
    dash_duo.driver.find_element("link text", "Trends").click()
    dash_duo.wait_for_contains_text(f"#{ids.TRENDS_SUMMARY}", "1 errors", timeout=15)
    dash_duo.driver.find_element("link text", "Overview").click()
    dash_duo.wait_for_contains_text(f"#{ids.ERROR_LIST}", "db down", timeout=15)
