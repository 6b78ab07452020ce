"""The logic behind the dashboard's callbacks, as plain functions, plus the pages as Dash
serves them (through the test client, no browser)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import app as app_module
from dashboard import ids
from dashboard.detail import render_detail
from dashboard.notices import COOLDOWN, MAX_PER_SECOND, plan_notices
from dashboard.pages import overview
from dashboard.pages.errors import search_step
from dashboard.pages.trends import plot_text, trends_view
from dashboard.routes import resolve
from live.ring_buffer import RingBuffer
from queries.store import ErrorStore
from queries.trends import HourlyRollup
from tests.dash_tree import component_nodes
from tests.factories import event

NOW = datetime.now(UTC).replace(microsecond=0)


def _ring(*events: Any, capacity: int = 2000) -> RingBuffer:
    ring = RingBuffer(capacity)
    ring.extend(events)
    return ring


def _ids(rows: list[dict[str, Any]] | None) -> list[str]:
    return [r["id"] for r in rows or []]


# -- the live list -------------------------------------------------------------------------
def test_first_load_is_the_newest_rows_newest_first() -> None:
    ring = _ring(*(event(error_id=f"e{i}") for i in range(3)))
    update = overview.next_rows(ring, None, None, None)
    assert _ids(update.row_data) == ["e2", "e1", "e0"]
    assert update.cursor == {"seq": ring.last_seq, "shown": 3}


def test_a_tick_adds_only_newer_rows_on_top_as_a_transaction() -> None:
    ring = _ring(*(event(error_id=f"e{i}") for i in range(3)))
    cursor = overview.next_rows(ring, None, None, None).cursor
    assert not overview.next_rows(ring, cursor, None, None).changed  # nothing new
    ring.extend([event(error_id="e3"), event(error_id="e4")])
    update = overview.next_rows(ring, cursor, None, None)
    assert update.row_data is None
    assert update.transaction is not None
    assert _ids(update.transaction["add"]) == ["e4", "e3"]
    assert update.transaction["addIndex"] == 0
    assert update.cursor == {"seq": ring.last_seq, "shown": 5}


def test_filters_narrow_the_list_and_debug_never_shows() -> None:
    ring = _ring(event(error_id="db", category="database", severity="critical"),
                 event(error_id="net", category="network", severity="error"),
                 event(error_id="dbg", category="database", severity="debug"),
                 event(error_id="warn", category="database", severity="warning"))
    assert _ids(overview.full_list(ring, None, None).row_data) == ["warn", "net", "db"]
    assert _ids(overview.full_list(ring, ["database"], None).row_data) == ["warn", "db"]
    assert _ids(overview.full_list(ring, ["database"], ["critical"]).row_data) == ["db"]
    cursor = overview.full_list(ring, ["network"], None).cursor
    ring.extend([event(error_id="db2", category="database")])
    update = overview.next_rows(ring, cursor, ["network"], None)
    assert update.transaction is None and update.row_data is None
    assert update.cursor is not None and update.cursor["seq"] == ring.last_seq


def test_a_cursor_older_than_the_ring_reloads_once() -> None:
    ring = _ring(*(event(error_id=f"e{i}") for i in range(5)), capacity=5)
    cursor = overview.next_rows(ring, None, None, None).cursor
    ring.extend([event(error_id=f"n{i}") for i in range(8)])  # 3 of them pushed out unseen
    update = overview.next_rows(ring, cursor, None, None)
    assert update.transaction is None
    assert _ids(update.row_data) == ["n7", "n6", "n5", "n4", "n3"]
    ring.extend([event(error_id="n8")])
    follow = overview.next_rows(ring, update.cursor, None, None)
    assert follow.transaction is not None and _ids(follow.transaction["add"]) == ["n8"]


def test_a_restarted_monitor_reloads() -> None:
    update = overview.next_rows(_ring(event(error_id="a")), {"seq": 999, "shown": 3}, None, None)
    assert _ids(update.row_data) == ["a"]


def test_a_grown_list_is_reloaded_to_its_size(monkeypatch) -> None:
    monkeypatch.setattr(overview, "MAX_SHOWN", 6)
    monkeypatch.setattr(overview, "LIVE_ROWS", 4)
    ring = _ring(*(event(error_id=f"e{i}") for i in range(4)))
    cursor = overview.next_rows(ring, None, None, None).cursor
    ring.extend([event(error_id=f"f{i}") for i in range(3)])
    update = overview.next_rows(ring, cursor, None, None)
    assert update.transaction is None and len(update.row_data or []) == 4


def test_an_empty_ring_is_topped_up_from_the_store(engine) -> None:
    store = ErrorStore(engine)
    store.write_batch([event(error_id=f"s{i}", timestamp=NOW - timedelta(minutes=i),
                             category="database" if i % 2 else "pattern") for i in range(4)])
    store.close()
    ring = _ring(event(error_id="live", category="database"))
    update = overview.full_list(ring, ["database"], None, overview.store_top_up(engine))
    assert _ids(update.row_data) == ["live", "s1", "s3"]


# -- notices --------------------------------------------------------------------------------
def test_one_error_one_toast_and_warnings_none() -> None:
    plan = plan_notices([event(severity="warning"), event(error_message="boom")], {}, 100.0)
    assert [n.text for n in plan.toasts] == ["boom"]
    assert plan.criticals == []


def test_a_burst_of_one_kind_is_one_toast_then_one_summary() -> None:
    burst = [event(error_type="T", component="C", error_message=f"m{i}") for i in range(50)]
    plan = plan_notices(burst, {}, 100.0)
    assert len(plan.toasts) == 1
    assert plan.toasts[0].more == 49 and "49 more like this" in plan.toasts[0].text
    # The burst goes on: held back while the group cools down...
    held = plan_notices(burst[:20], plan.state, 103.0)
    assert held.toasts == []
    # ...then one "N more like this".
    after = plan_notices([], held.state, 100.0 + COOLDOWN + 0.1)
    assert len(after.toasts) == 1 and after.toasts[0].more == 20
    assert "20 more like this" in after.toasts[0].text


def test_many_kinds_in_one_second_are_capped_with_a_summary() -> None:
    kinds = [event(error_type=f"T{i}", component="C") for i in range(25)]
    plan = plan_notices(kinds, {}, 100.0)
    assert len(plan.toasts) == MAX_PER_SECOND
    assert plan.toasts[-1].title == "16 more errors"
    # The budget is per second: a second tick in the same second gets nothing more.
    more = plan_notices([event(error_type="New", component="C")], plan.state, 100.5)
    assert more.toasts == []
    later = plan_notices([event(error_type="New2", component="C")], plan.state, 101.2)
    assert len(later.toasts) == 1


def test_every_critical_goes_to_the_dialog() -> None:
    crits = [event(severity="critical", error_type="DB", component="W") for _ in range(3)]
    plan = plan_notices(crits, {}, 100.0)
    assert len(plan.criticals) == 3
    assert plan.toasts[0].severity == "critical"


# -- routes and pages ---------------------------------------------------------------------
@pytest.mark.parametrize("path, search, page, params", [
    ("/", "", "overview", {}),
    ("/errors", "?q=severity%3Acritical&range=7d", "errors",
     {"q": "severity:critical", "range": "7d"}),
    ("/errors", "?id=a%2Fb", "detail", {"id": "a/b"}),
    ("/errors/a%2Fb", "", "detail", {"id": "a/b"}),
    ("/trends/", "", "trends", {}),
    ("/nope", "", "missing", {"path": "/nope"}),
])
def test_urls_resolve_to_pages(path: str, search: str, page: str, params: dict) -> None:
    assert resolve(path, search) == (page, params)


@pytest.fixture
def monitor(make_settings, db_url):
    monitor = app_module.build(make_settings(database_url=db_url))
    yield monitor
    monitor.stop()


def _post(client, output: str, outputs: Any, inputs: list, state: list | None = None,
          changed: list[str] | None = None) -> Any:
    body = {"output": output, "outputs": outputs, "inputs": inputs, "state": state or [],
            "changedPropIds": changed or []}
    response = client.post("/_dash-update-component", json=body)
    assert response.status_code in (200, 204), response.data[:500]
    return response.get_json() if response.status_code == 200 else None


@pytest.mark.parametrize("path, search, marker", [
    ("/", "", ids.ERROR_LIST), ("/errors", "?q=timeout", ids.SEARCH_RESULTS),
    ("/errors/x1", "", ids.ERROR_DETAIL), ("/trends", "", ids.TRENDS_CHARTS),
])
def test_every_page_renders_through_the_router(monitor, path, search, marker) -> None:
    store = ErrorStore(monitor.engine)
    store.write_batch([event(error_id="x1")])
    store.close()
    answer = _post(monitor.dash_app.server.test_client(), f"{ids.PAGE}.children",
                   {"id": ids.PAGE, "property": "children"},
                   [{"id": ids.URL, "property": "pathname", "value": path},
                    {"id": ids.URL, "property": "search", "value": search}],
                   changed=[f"{ids.URL}.pathname"])
    assert marker in str(answer)


def _post_feed(monitor, tick: int, categories: list[str] | None, cursor: dict[str, int],
               changed: list[str]) -> Any:
    """The Overview's live-list callback, as the browser calls it."""
    outputs = [{"id": ids.ERROR_LIST, "property": "rowTransaction"},
               {"id": ids.ERROR_LIST, "property": "rowData"},
               {"id": ids.LIVE_CURSOR, "property": "data"}]
    return _post(monitor.dash_app.server.test_client(),
                 f"..{ids.ERROR_LIST}.rowTransaction...{ids.ERROR_LIST}.rowData..."
                 f"{ids.LIVE_CURSOR}.data..", outputs,
                 [{"id": ids.LIVE_INTERVAL, "property": "n_intervals", "value": tick},
                  {"id": ids.CATEGORY_FILTER, "property": "value", "value": categories},
                  {"id": ids.SEVERITY_FILTER, "property": "value", "value": None}],
                 [{"id": ids.LIVE_CURSOR, "property": "data", "value": cursor}],
                 changed)


def test_the_feed_callback_sends_a_transaction(monitor) -> None:
    ring = monitor.ingest.ring
    ring.extend([event(error_id="old")])
    cursor = {"seq": ring.last_seq, "shown": 1}
    ring.extend([event(error_id="new")])
    answer = _post_feed(monitor, 5, None, cursor, [f"{ids.LIVE_INTERVAL}.n_intervals"])
    grid = answer["response"][ids.ERROR_LIST]
    assert [r["id"] for r in grid["rowTransaction"]["add"]] == ["new"]
    assert "rowData" not in grid
    assert answer["response"][ids.LIVE_CURSOR]["data"]["seq"] == ring.last_seq


# -- the Errors page ------------------------------------------------------------------------
def test_search_step_pages_older_and_back(engine) -> None:
    store = ErrorStore(engine)
    store.write_batch([event(error_id=f"p{i:03d}", timestamp=NOW - timedelta(seconds=i))
                       for i in range(120)])
    store.close()
    first = search_step(engine, "", "24h", None, "search", None, NOW + timedelta(seconds=1))
    assert len(first.rows) == 50 and first.rows[0]["id"] == "p000"
    assert first.summary.startswith("Showing 1–50 of 120")
    assert first.newer_disabled and not first.older_disabled
    second = search_step(engine, "", "24h", None, "older", first.state)
    assert second.rows[0]["id"] == "p050" and second.summary.startswith("Showing 51–100 of 120")
    third = search_step(engine, "", "24h", None, "older", second.state)
    assert len(third.rows) == 20 and third.older_disabled
    back = search_step(engine, "", "24h", None, "newer", third.state)
    assert back.rows[0]["id"] == "p050"
    assert "export.csv?q=&from=" in first.export_href


def test_search_step_says_what_is_wrong(engine) -> None:
    view = search_step(engine, "severity:loud", "24h", None, "search", None)
    assert view.problem is not None and "severity must be one of" in view.problem
    assert view.rows == []


# -- text, never HTML ---------------------------------------------------------------------
def test_the_detail_renders_producer_text_as_plain_strings() -> None:
    nasty = "<img src=x onerror=alert(1)> <b>bold</b>"
    detail = render_detail({
        "id": "x", "type": "<script>T</script>", "message": nasty, "severity": "error",
        "category": "pattern", "symbol": "<b>S</b>", "component": None, "operation": None,
        "source": "TickStockPL", "traceback": "Traceback <i>", "context": {"h": nasty},
        "timestamp": "2025-01-01T00:00:00Z", "createdAt": None})
    nodes = component_nodes(detail)
    assert any(getattr(n, "children", None) == nasty for n in nodes)
    for node in nodes:
        assert "dangerously_allow_html" not in getattr(node, "_prop_names", [])
        assert type(node).__name__ != "Markdown"


def test_chart_labels_are_escaped_for_plotly() -> None:
    assert plot_text("<b>X</b>") == "&lt;b&gt;X&lt;/b&gt;"
    assert plot_text("A" * 60).endswith("…") and len(plot_text("A" * 60)) == 40


def test_an_empty_trend_range_shows_an_empty_state(engine) -> None:
    body, summary = trends_view(HourlyRollup(engine), "24h", "auto", None, dark=False)
    assert "No errors in this range" in str(body)
    assert summary.startswith("0 errors")


def test_the_top_names_link_to_their_errors_and_show_as_text(engine) -> None:
    now = datetime.now(UTC)
    store = ErrorStore(engine)
    names = ["AAPL"] * 3 + ["<b>X</b>"] * 2 + ["A,B"] + ["BRK B"]
    store.write_batch([event(error_id=f"top{i}", symbol=name,
                             timestamp=now - timedelta(minutes=i))
                       for i, name in enumerate(names)])
    store.close()
    body, summary = trends_view(HourlyRollup(engine), "7d", "auto", None, dark=False)
    assert summary.startswith("7 errors")
    (symbols,) = [n for n in component_nodes(body) if getattr(n, "id", None) == "trend-symbols"]
    links = {n.children: n.href for n in component_nodes(symbols) if hasattr(n, "href")}
    assert links["AAPL"] == "/errors?q=symbol%3AAAPL&range=7d"
    assert links["BRK B"] == "/errors?q=symbol%3A%22BRK+B%22&range=7d"  # quoted: a space
    assert "A,B" not in links  # a comma means "or" in the search: shown, not linked
    texts = [n.children for n in component_nodes(symbols) if isinstance(n.children, str)]
    assert "A,B" in texts and "3" in texts  # the busiest, with its count
    assert "<b>X</b>" in links  # the name as its characters, no markup
    for node in component_nodes(symbols):
        assert "dangerously_allow_html" not in getattr(node, "_prop_names", [])


def test_a_filter_change_sent_with_a_tick_still_reloads(monitor) -> None:
    # The browser merges triggers that happen while a request is in flight: the filter must
    # win even when the tick is listed first.
    ring = monitor.ingest.ring
    ring.extend([event(error_id="db", category="database"), event(error_id="net",
                                                                  category="network")])
    answer = _post_feed(monitor, 9, ["database"], {"seq": ring.last_seq, "shown": 2},
                        [f"{ids.LIVE_INTERVAL}.n_intervals", f"{ids.CATEGORY_FILTER}.value"])
    grid = answer["response"][ids.ERROR_LIST]
    assert [r["id"] for r in grid["rowData"]] == ["db"]
    # The reload clears the grid's last transaction, or the grid would apply it again on top
    # of the new rows and bring the network row back.
    assert "rowTransaction" in grid and grid["rowTransaction"] is None
