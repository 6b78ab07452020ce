"""The Groups pages and the Overview's events/groups switch: their logic on a real database,
their callbacks through Dash's own endpoint, and the pages in headless Chromium on a running
monitor (Redis + PostgreSQL + ingest).

Browser tests: `DASH_TEST_CHROMEPATH=/usr/lib/chromium/chromium python -m pytest --headless ...`.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from selenium.webdriver.common.by import By

import app as app_module
from dashboard import ids
from groups import page
from groups.fingerprint import fingerprint
from groups.hook import GroupsHook
from groups.reads import group_detail, list_groups
from queries.store import ErrorStore
from tests.conftest import click_settled, wait_for
from tests.dash_tree import component_nodes
from tests.factories import event, payload

NOW = datetime.now(UTC).replace(microsecond=0)


def grouped(**fields: Any) -> Any:
    e = event(**fields)
    return replace(e, fingerprint=fingerprint(e))


def _write(engine, *events: Any) -> None:
    store = ErrorStore(engine, hooks=[GroupsHook()])
    store.write_batch(list(events))
    store.close()


def _two_groups(engine) -> tuple[str, str]:
    """A loader group (3 events, 3 symbols) and a pattern group (1 event, no symbol)."""
    loads = [grouped(error_id=f"load{i}", error_type="LoaderError",
                     error_message=f"failed for {sym} after {i} retries", component="Loader",
                     operation="load", symbol=sym, severity="critical" if i == 2 else "error",
                     error_traceback=f"Traceback (most recent call last):\n  load {i}",
                     timestamp=NOW - timedelta(hours=3 - i, minutes=5))
             for i, sym in enumerate(("AAPL", "MSFT", "TSLA"))]
    pattern = grouped(error_id="pat0", error_message="Doji needs more bars", symbol=None,
                      severity="warning", timestamp=NOW - timedelta(minutes=30))
    _write(engine, *loads, pattern)
    return loads[0].fingerprint, pattern.fingerprint


def _state(engine, fp: str) -> str:
    found = group_detail(engine, fp)
    assert found is not None
    return str(found["state"])


# -- rows -------------------------------------------------------------------------------------
def test_the_sparkline_shows_busy_hours_tall_and_empty_hours_as_dots() -> None:
    assert page.sparkline([0, 0]) == "··"
    strip = page.sparkline([0, 1, 5, 10])
    assert strip[0] == "·" and strip[1] == "▂" and strip[-1] == "█"
    assert page.sparkline([1]) == "█"


def test_symbols_are_counted_and_the_first_few_named() -> None:
    top = [{"symbol": s, "count": 1} for s in ("AAPL", "MSFT", "TSLA", "NVDA")]
    assert page.symbols_text(0, []) == "—"
    assert page.symbols_text(2, top[:2]) == "2: AAPL, MSFT"
    assert page.symbols_text(12, top) == "12: AAPL, MSFT, TSLA +9"


def test_rows_carry_counts_symbols_states_and_a_24_hour_strip(engine) -> None:
    loader, pattern = _two_groups(engine)
    rows = {r["id"]: r for r in page.load_rows(engine, None, "7d", None, "last_seen")}
    assert set(rows) == {loader, pattern}
    row = rows[loader]
    assert row["count"] == 3 and row["state"] == "unresolved"
    assert row["worstSeverity"] == "critical"
    assert row["symbols"].startswith("3: ") and "AAPL" in row["symbols"]
    assert row["title"] == "LoaderError: failed for AAPL after 0 retries"
    assert len(row["spark"]) == 24 and row["spark"].count("·") == 21
    assert rows[pattern]["symbols"] == "—"
    # Newest last_seen first by default; by count on request.
    assert [r["id"] for r in page.load_rows(engine, None, "7d", None, "last_seen")] == \
        [pattern, loader]
    assert page.load_rows(engine, None, "7d", None, "count")[0]["id"] == loader


def test_filters_by_state_window_and_text(engine) -> None:
    loader, pattern = _two_groups(engine)
    assert page.change_state(engine, [loader], "resolve").ok
    assert [r["id"] for r in page.load_rows(engine, "resolved", "all", "", None)] == [loader]
    assert [r["id"] for r in page.load_rows(engine, "unresolved", "all", "", None)] == [pattern]
    assert [r["id"] for r in page.load_rows(engine, None, "1h", "", None)] == [pattern]
    assert [r["id"] for r in page.load_rows(engine, None, "all", "  loaderERROR ", None)] == \
        [loader]
    assert page.load_rows(engine, None, "all", "nothing like it", None) == []
    # Unknown choices fall back to the defaults instead of failing.
    assert len(page.load_rows(engine, "closed", "forever", None, "name")) == 2


# -- triage -----------------------------------------------------------------------------------
def test_resolve_and_ignore_change_the_groups_and_say_what_changed(engine) -> None:
    loader, pattern = _two_groups(engine)
    change = page.change_state(engine, [loader, pattern], "resolve",
                               titles=["LoaderError: failed", "Doji"])
    assert change.ok and change.colour == "success"
    assert change.message == "Resolved 2 groups: LoaderError: failed; Doji."
    assert _state(engine, loader) == _state(engine, pattern) == "resolved"

    change = page.change_state(engine, [loader], "ignore-1h", now=NOW)
    assert change.ok and "Ignored 1 group until" in change.message
    found = group_detail(engine, loader)
    assert found is not None and found["state"] == "ignored"
    assert found["ignoreUntil"] == (NOW + timedelta(hours=1)).isoformat().replace("+00:00", "Z")

    assert page.change_state(engine, [pattern], "ignore-count", ignore_count=5.0).message == \
        "Ignored 1 group until 5 more events."
    found = group_detail(engine, pattern)
    assert found is not None and found["ignoreUntilCount"] == 1 + 5
    assert page.state_note(found) == "until 5 more events"

    assert page.change_state(engine, [pattern], "ignore").message == \
        "Ignored 1 group for good."
    assert page.change_state(engine, [pattern], "reopen").ok
    assert _state(engine, pattern) == "unresolved"


@pytest.mark.parametrize("action, count, fragment", [
    ("ignore-count", 0, "count must be a whole number"),
    ("ignore-count", 2.5, "count must be a whole number"),
    ("ignore-count", None, "enter how many more events"),
    ("explode", None, "unknown action"),
])
def test_bad_triage_changes_nothing_and_says_why(engine, action, count, fragment) -> None:
    loader, _ = _two_groups(engine)
    change = page.change_state(engine, [loader], action, ignore_count=count)
    assert not change.ok and change.colour == "warning"
    assert change.message.startswith("Nothing changed: ") and fragment in change.message
    assert _state(engine, loader) == "unresolved"


def test_a_bulk_change_with_an_unknown_group_changes_none(engine) -> None:
    loader, _ = _two_groups(engine)
    change = page.change_state(engine, [loader, "0" * 40], "resolve")
    assert not change.ok and "no group with fingerprint" in change.message
    assert _state(engine, loader) == "unresolved"
    assert page.change_state(engine, [], "resolve").message == \
        "Nothing changed: select one or more groups first."


# -- one group ----------------------------------------------------------------------------------
def test_the_group_page_shows_events_symbols_and_the_latest_traceback(engine) -> None:
    loader, _ = _two_groups(engine)
    nodes = component_nodes(page.group_layout(engine, loader))
    texts = [n.children for n in nodes if isinstance(getattr(n, "children", None), str)]
    assert "LoaderError: failed for AAPL after 0 retries" in texts
    assert "Traceback (most recent call last):\n  load 2" in texts  # the newest event's
    hrefs = {getattr(n, "href", None) for n in nodes}
    assert {"/errors/load0", "/errors/load1", "/errors/load2", "/groups"} <= hrefs
    assert any("AAPL (1)" == t for t in texts)
    for node in nodes:
        assert "dangerously_allow_html" not in getattr(node, "_prop_names", [])
        assert type(node).__name__ != "Markdown"


def test_the_chart_starts_at_the_first_hour_seen(engine) -> None:
    loader, _ = _two_groups(engine)
    found = group_detail(engine, loader)
    assert found is not None
    series = page.chart_series(found)
    assert sum(series["counts"]) == 3
    # A young group: the last day (three hours of life, shown on a day's axis), not the week.
    assert 24 <= len(series["counts"]) <= 25
    figure = page.hourly_figure(series, dark=True)
    assert figure["data"][0]["y"] == series["counts"]


def test_an_unknown_fingerprint_is_a_clear_no_such_group_page(engine) -> None:
    answer = str(page.group_layout(engine, "<b>nope</b>"))
    assert "No such group" in answer and "<b>nope</b>" in answer


# -- callbacks, as the browser calls them ---------------------------------------------------------
@pytest.fixture
def monitor(make_settings, db_url):
    monitor = app_module.build(make_settings(database_url=db_url))
    yield monitor
    monitor.stop()


def _post(client, outputs: list[tuple[str, str]], inputs: list, state: list,
          changed: list[str]) -> Any:
    body = {"output": ".." + "...".join(f"{i}.{p}" for i, p in outputs) + "..",
            "outputs": [{"id": i, "property": p} for i, p in outputs],
            "inputs": inputs, "state": state, "changedPropIds": changed}
    return _send(client, body)


def _send(client, body: dict[str, Any]) -> Any:
    response = client.post("/_dash-update-component", json=body)
    assert response.status_code in (200, 204), response.data[:500]
    return response.get_json() if response.status_code == 200 else None


_LIST_OUT = [(ids.GROUPS_GRID, "rowData"), (ids.GROUPS_GRID, "selectedRows"),
             (ids.GROUPS_DIGEST, "data"), (ids.GROUPS_SUMMARY, "children"),
             (ids.GROUPS_NOTICE, "children"), (ids.GROUPS_NOTICE, "color"),
             (ids.GROUPS_NOTICE, "is_open")]


def _list_call(client, clicked: str | None, selected: list, last_digest: str | None) -> Any:
    buttons = [{"id": {"type": ids.GROUPS_ACTION, "action": a}, "property": "n_clicks",
                "value": 1 if a == clicked else None} for a in page.ACTIONS]
    inputs = [{"id": ids.GROUPS_INTERVAL, "property": "n_intervals", "value": 3},
              {"id": ids.GROUPS_STATE, "property": "value", "value": ""},
              {"id": ids.GROUPS_WINDOW, "property": "value", "value": "7d"},
              {"id": ids.GROUPS_TEXT, "property": "value", "value": ""},
              {"id": ids.GROUPS_SORT, "property": "value", "value": "last_seen"},
              buttons]
    state = [{"id": ids.GROUPS_GRID, "property": "selectedRows", "value": selected},
             {"id": ids.GROUPS_IGNORE_N, "property": "value", "value": 100},
             {"id": ids.GROUPS_DIGEST, "property": "data", "value": last_digest}]
    key = json.dumps({"action": clicked, "type": ids.GROUPS_ACTION}, sort_keys=True,
                     separators=(",", ":"))
    changed = [f"{key}.n_clicks"] if clicked else [f"{ids.GROUPS_INTERVAL}.n_intervals"]
    return _post(client, _LIST_OUT, inputs, state, changed)


def test_a_tick_sends_rows_only_when_they_changed_and_never_touches_the_selection(monitor) -> None:
    loader, pattern = _two_groups(monitor.engine)
    client = monitor.dash_app.server.test_client()
    selected = [{"id": loader, "title": "LoaderError"}]
    first = _list_call(client, None, selected, None)["response"]
    assert {r["id"] for r in first[ids.GROUPS_GRID]["rowData"]} == {loader, pattern}
    assert "selectedRows" not in first[ids.GROUPS_GRID]
    assert ids.GROUPS_NOTICE not in first
    again = _list_call(client, None, selected, first[ids.GROUPS_DIGEST]["data"])
    assert again is None or again["response"] == {}  # nothing changed, nothing sent


def test_the_resolve_button_resolves_the_selection_and_confirms(monitor) -> None:
    loader, pattern = _two_groups(monitor.engine)
    client = monitor.dash_app.server.test_client()
    rows = page.load_rows(monitor.engine, None, "7d", None, "last_seen")
    answer = _list_call(client, "resolve", [r for r in rows if r["id"] == loader],
                        page.digest(rows))["response"]
    assert answer[ids.GROUPS_NOTICE]["children"].startswith("Resolved 1 group: LoaderError")
    assert answer[ids.GROUPS_NOTICE]["color"] == "success"
    assert answer[ids.GROUPS_GRID]["selectedRows"] == []
    states = {r["id"]: r["state"] for r in answer[ids.GROUPS_GRID]["rowData"]}
    assert states == {loader: "resolved", pattern: "unresolved"}


def test_the_group_pages_render_through_the_router(monitor) -> None:
    loader, _ = _two_groups(monitor.engine)
    client = monitor.dash_app.server.test_client()
    for path, marker in (("/groups", ids.GROUPS_GRID), (f"/groups/{loader}", ids.GROUP_CHART),
                         ("/groups/" + "0" * 40, "No such group")):
        answer = _send(client, {
            "output": f"{ids.PAGE}.children",
            "outputs": {"id": ids.PAGE, "property": "children"},
            "inputs": [{"id": ids.URL, "property": "pathname", "value": path},
                       {"id": ids.URL, "property": "search", "value": ""}],
            "state": [], "changedPropIds": [f"{ids.URL}.pathname"]})
        assert marker in str(answer), path


def test_the_overview_groups_list_is_active_groups_newest_first(engine) -> None:
    loader, pattern = _two_groups(engine)
    assert [r["id"] for r in page.overview_rows(engine, "24h")] == [pattern, loader]
    assert [r["id"] for r in page.overview_rows(engine, "1h")] == [pattern]


# -- in the browser ---------------------------------------------------------------------------
@pytest.fixture
def live_monitor(start_monitor, pg_url, pg_engine):
    return start_monitor(database_url=pg_url)


def _publish_two_groups(monitor, redis_client, channel) -> tuple[str, str]:
    for i, symbol in enumerate(("AAPL", "MSFT", "TSLA")):
        redis_client.publish(channel, payload(
            error_type="LoaderError", error_message=f"failed for {symbol} after {i} retries",
            context={"symbol": symbol, "component": "Loader", "operation": "load"}))
    for _ in range(2):
        redis_client.publish(channel, payload(
            error_type="RSIError", error_message="RSI needs 14 bars",
            context={"component": "Indicators", "operation": "rsi"}, category="indicator"))
    wait_for(lambda: monitor.ingest.counters()["stored"] == 5, message="5 stored")
    fps = {g["type"]: g["fingerprint"] for g in list_groups(monitor.engine)}
    return fps["LoaderError"], fps["RSIError"]


def _cell(dash_duo, grid: str, row_id: str, column: str) -> str:
    found = dash_duo.driver.find_elements(
        By.CSS_SELECTOR, f"#{grid} .ag-row[row-id='{row_id}'] .ag-cell[col-id='{column}']")
    return found[0].text if found else ""


def _select(dash_duo, row_id: str) -> None:
    dash_duo.driver.find_element(
        By.CSS_SELECTOR, f"#{ids.GROUPS_GRID} .ag-row[row-id='{row_id}'] "
                         "input.ag-checkbox-input").click()


def _selected(dash_duo, row_id: str) -> bool:
    rows = dash_duo.driver.find_elements(
        By.CSS_SELECTOR, f"#{ids.GROUPS_GRID} .ag-row[row-id='{row_id}']")
    return bool(rows) and "ag-row-selected" in (rows[0].get_attribute("class") or "")


@pytest.mark.browser
def test_gr001_resolve_a_group_then_see_it_regress(dash_duo, live_monitor, redis_client,
                                                   channel) -> None:
    loader, rsi = _publish_two_groups(live_monitor, redis_client, channel)
    dash_duo.start_server(live_monitor.dash_app)
    dash_duo.driver.get(f"{dash_duo.server_url}/groups")
    dash_duo.wait_for_contains_text(f"#{ids.GROUPS_GRID}", "LoaderError: failed for AAPL",
                                    timeout=10)
    dash_duo.wait_for_contains_text(f"#{ids.GROUPS_GRID}", "RSIError: RSI needs 14 bars",
                                    timeout=8)
    assert _cell(dash_duo, ids.GROUPS_GRID, loader, "count") == "3"
    assert _cell(dash_duo, ids.GROUPS_GRID, rsi, "count") == "2"
    assert _cell(dash_duo, ids.GROUPS_GRID, loader, "symbols") == "3: AAPL, MSFT, TSLA"

    _select(dash_duo, loader)
    wait_for(lambda: _selected(dash_duo, loader), message="the row to be selected")
    dash_duo.driver.find_element(By.XPATH, "//button[normalize-space()='Resolve']").click()
    dash_duo.wait_for_contains_text(f"#{ids.GROUPS_NOTICE}", "Resolved 1 group: LoaderError",
                                    timeout=8)
    wait_for(lambda: _cell(dash_duo, ids.GROUPS_GRID, loader, "state") == "resolved",
             message="the badge to say resolved")
    assert _cell(dash_duo, ids.GROUPS_GRID, rsi, "state") == "unresolved"

    # A selection survives the refreshes, even one that brings new rows.
    _select(dash_duo, rsi)
    wait_for(lambda: _selected(dash_duo, rsi), message="the other row to be selected")
    redis_client.publish(channel, payload(
        error_type="LoaderError", error_message="failed for NVDA after 7 retries",
        context={"symbol": "NVDA", "component": "Loader", "operation": "load"}))
    wait_for(lambda: _cell(dash_duo, ids.GROUPS_GRID, loader, "state").lower() == "regressed",
             timeout=15, message="the group to show as regressed")
    assert _cell(dash_duo, ids.GROUPS_GRID, loader, "count") == "4"
    assert _selected(dash_duo, rsi) and not _selected(dash_duo, loader)
    assert "group-row-regressed" in dash_duo.driver.find_element(
        By.CSS_SELECTOR, f"#{ids.GROUPS_GRID} .ag-row[row-id='{loader}']").get_attribute("class")

    # A click on a count opens nothing; the title opens the group's page.
    dash_duo.driver.find_element(
        By.CSS_SELECTOR, f"#{ids.GROUPS_GRID} .ag-row[row-id='{loader}'] "
                         ".ag-cell[col-id='count']").click()
    time.sleep(0.5)
    assert dash_duo.driver.current_url.endswith("/groups")
    dash_duo.driver.find_element(
        By.CSS_SELECTOR, f"#{ids.GROUPS_GRID} .ag-row[row-id='{loader}'] "
                         ".ag-cell[col-id='title']").click()
    dash_duo.wait_for_contains_text(f"#{ids.GROUP_PAGE}", "LoaderError: failed for AAPL",
                                    timeout=10)
    assert dash_duo.driver.current_url.endswith(f"/groups/{loader}")
    # Regressed is loud: its badge is in capitals.
    dash_duo.wait_for_contains_text(f"#{ids.GROUP_STATE}", "REGRESSED", timeout=5)
    dash_duo.wait_for_element(f"#{ids.GROUP_CHART} .main-svg", timeout=10)
    assert "NVDA" in dash_duo.find_element(f"#{ids.GROUP_SYMBOLS}").text
    dash_duo.driver.find_element(By.XPATH, "//button[normalize-space()='Resolve']").click()
    dash_duo.wait_for_contains_text(f"#{ids.GROUP_STATE}", "resolved", timeout=8)
    dash_duo.wait_for_contains_text(f"#{ids.GROUP_NOTICE}", "Resolved 1 group", timeout=5)
    dash_duo.find_element(f"#{ids.GROUP_EVENTS} a").click()
    dash_duo.wait_for_contains_text(f"#{ids.ERROR_DETAIL}", "LoaderError", timeout=10)
    assert dash_duo.get_logs() == [], "the browser console reported errors"


@pytest.mark.browser
def test_gr002_unknown_group_is_a_no_such_group_page(dash_duo, live_monitor) -> None:
    dash_duo.start_server(live_monitor.dash_app)
    dash_duo.driver.get(f"{dash_duo.server_url}/groups/{'0' * 40}")
    dash_duo.wait_for_contains_text(f"#{ids.GROUP_PAGE}", "No such group", timeout=10)


@pytest.mark.browser
def test_ov010_overview_switches_between_events_and_groups(dash_duo, live_monitor,
                                                          redis_client, channel) -> None:
    loader, rsi = _publish_two_groups(live_monitor, redis_client, channel)
    dash_duo.start_server(live_monitor.dash_app)
    dash_duo.wait_for_contains_text(f"#{ids.ERROR_LIST}", "failed for MSFT after 1 retries",
                                    timeout=10)
    assert not dash_duo.find_element(f"#{ids.OVERVIEW_GROUPS_BOX}").is_displayed()

    mode = f"#{ids.OVERVIEW_LIST_MODE}"
    dash_duo.driver.find_element(By.XPATH, f"//*[@id='{ids.OVERVIEW_LIST_MODE}']"
                                           "//label[normalize-space()='Groups']").click()
    dash_duo.wait_for_contains_text(f"#{ids.OVERVIEW_GROUPS}", "RSIError: RSI needs 14 bars",
                                    timeout=10)
    assert not dash_duo.find_element(f"#{ids.OVERVIEW_EVENTS_BOX}").is_displayed()
    assert not dash_duo.find_element(f"#{ids.CATEGORY_FILTER}").is_displayed()
    rows = dash_duo.driver.find_elements(
        By.CSS_SELECTOR, f"#{ids.OVERVIEW_GROUPS} .ag-center-cols-container .ag-row")
    order = sorted(rows, key=lambda r: int(r.get_attribute("row-index")))
    assert [r.get_attribute("row-id") for r in order] == [rsi, loader]  # newest first
    assert _cell(dash_duo, ids.OVERVIEW_GROUPS, loader, "state") == "unresolved"

    # Updated on the tick: a new group shows without touching the page.
    redis_client.publish(channel, payload(error_type="FeedError", error_message="feed stalled",
                                          context={"component": "Feed"}))
    dash_duo.wait_for_contains_text(f"#{ids.OVERVIEW_GROUPS}", "FeedError: feed stalled",
                                    timeout=10)

    # Back to events: today's list, which kept up while hidden.
    dash_duo.driver.find_element(By.XPATH, f"//*[@id='{ids.OVERVIEW_LIST_MODE}']"
                                           "//label[normalize-space()='Events']").click()
    dash_duo.wait_for_contains_text(f"#{ids.ERROR_LIST}", "feed stalled", timeout=10)
    assert dash_duo.find_element(f"#{ids.CATEGORY_FILTER}").is_displayed()
    assert dash_duo.find_element(mode).is_displayed()

    # A title in the groups list opens the group.
    dash_duo.driver.find_element(By.XPATH, f"//*[@id='{ids.OVERVIEW_LIST_MODE}']"
                                           "//label[normalize-space()='Groups']").click()
    dash_duo.wait_for_element(f"#{ids.OVERVIEW_GROUPS} .ag-row[row-id='{loader}']", timeout=10)
    click_settled(dash_duo, f"#{ids.OVERVIEW_GROUPS} .ag-row[row-id='{loader}'] "
                            ".ag-cell[col-id='title']")
    dash_duo.wait_for_contains_text(f"#{ids.GROUP_PAGE}", "LoaderError: failed for AAPL",
                                    timeout=10)
    assert dash_duo.get_logs() == [], "the browser console reported errors"
