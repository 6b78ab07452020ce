"""The Groups page's first paint: its rows as a plain table (dashboard/quick_list.py), and in
the browser the hand-over to the grid, which takes the table's place.

The browser test needs `DASH_TEST_CHROMEPATH=/usr/lib/chromium/chromium ... --headless`.
"""

from __future__ import annotations

import pytest

from dashboard import ids
from dashboard.quick_list import MAX_ROWS, quick_list
from groups import page
from groups.reads import list_groups
from tests.conftest import arrivals, record_arrivals, wait_for
from tests.dash_tree import component_nodes
from tests.factories import payload


def _row(n: int, **fields) -> dict:
    row = {"id": f"fp{n}", "title": f"LoaderError: failed {n}", "state": "unresolved",
           "worstSeverity": "error", "count": 1234 + n, "symbols": "2: AAPL, MSFT",
           "spark": "··▂█", "sparkTip": "last 24 h, oldest first; busiest hour 9",
           "firstSeen": "2026-03-10T21:00:00Z", "lastSeen": "2026-03-10T22:05:00Z",
           "type": "LoaderError", "component": "Loader"}
    return {**row, **fields}


def _cells(table) -> list[list[str]]:
    rows = [n for n in component_nodes(table) if type(n).__name__ == "Tr"][1:]
    return [[_text(td) for td in row.children] for row in rows]


def _text(node) -> str:
    children = getattr(node, "children", node)
    if isinstance(children, (list, tuple)):
        return "".join(_text(c) for c in children)
    return children if isinstance(children, str) else _text(children)


def test_the_table_shows_the_grids_rows_and_links_titles_to_their_group() -> None:
    table = quick_list([_row(1, state="regressed"), _row(2)], page.group_href, "none")
    assert _cells(table) == [
        ["regressed", "LoaderError: failed 1", "error", "1,235", "··▂█", "2: AAPL, MSFT",
         "2026-03-10 21:00 UTC", "2026-03-10 22:05 UTC"],
        ["unresolved", "LoaderError: failed 2", "error", "1,236", "··▂█", "2: AAPL, MSFT",
         "2026-03-10 21:00 UTC", "2026-03-10 22:05 UTC"],
    ]
    links = [n for n in component_nodes(table) if type(n).__name__ == "A"]
    assert [a.href for a in links] == ["/groups/fp1", "/groups/fp2"]
    rows = [n for n in component_nodes(table) if type(n).__name__ == "Tr"][1:]
    assert rows[0].className == "group-row-regressed" and rows[1].className is None


def test_a_markup_title_stays_text_and_an_empty_list_says_so() -> None:
    table = quick_list([_row(1, title="<img src=x onerror=alert(1)>")], page.group_href, "none")
    assert _cells(table)[0][1] == "<img src=x onerror=alert(1)>"
    assert not [n for n in component_nodes(table) if type(n).__name__ in ("Img", "Iframe")]
    empty = quick_list([], page.group_href, "No groups to show")
    assert empty.children == "No groups to show"


def test_one_screen_of_rows_is_painted_and_the_grid_gets_them_all(engine) -> None:
    rows = [_row(n) for n in range(MAX_ROWS + 40)]
    assert len(_cells(quick_list(rows, page.group_href, "none"))) == MAX_ROWS


def test_the_layout_paints_the_table_and_hands_the_grid_over(engine) -> None:
    nodes = component_nodes(page.layout(engine, {}))
    assert "AgGrid" not in {type(n).__name__ for n in nodes}  # the grid comes after the paint
    found = {n.id: n for n in nodes if isinstance(getattr(n, "id", None), str)}
    assert ids.GROUPS_GRID_SLOT in found
    [grid] = found[ids.GROUPS_GRID_SPEC].data
    assert grid.id == ids.GROUPS_GRID and grid.selectedRows == []


@pytest.mark.browser
def test_the_table_shows_first_and_the_grid_takes_its_place(
        dash_duo, start_monitor, sqlite_url, redis_client, channel) -> None:
    monitor = start_monitor(database_url=sqlite_url)
    for symbol in ("AAPL", "MSFT"):
        redis_client.publish(channel, payload(
            error_type="LoaderError", error_message=f"failed for {symbol}",
            context={"symbol": symbol, "component": "Loader", "operation": "load"}))
    wait_for(lambda: monitor.ingest.counters()["stored"] == 2, message="2 stored")
    [group] = list_groups(monitor.engine)
    dash_duo.start_server(monitor.dash_app)
    # When each came into the page, noted by the page itself from its first moment.
    record_arrivals(dash_duo.driver, {"table": ".quick-list tbody tr",
                                      "grid": f"#{ids.GROUPS_GRID} .ag-row"})
    dash_duo.driver.get(f"{dash_duo.server_url}/groups")
    dash_duo.wait_for_element(f"#{ids.GROUPS_GRID} .ag-row[row-id]", timeout=15)
    seen = arrivals(dash_duo.driver)
    assert "table" in seen and seen["table"] < seen["grid"], seen
    shown = dash_duo.driver.execute_script(
        "var row = document.querySelector('.quick-list tbody tr');"
        "return [row.textContent, row.querySelector('a').getAttribute('href')];")
    assert "failed for" in shown[0] and "2: AAPL, MSFT" in shown[0]
    assert shown[1] == f"/groups/{group['fingerprint']}"
    # The grid is in the table's place, and the table hidden under it.
    hidden = dash_duo.driver.execute_script(
        "return getComputedStyle(document.querySelector('.quick-list')).visibility;")
    assert hidden == "hidden"
    box = dash_duo.driver.execute_script(
        "var a = document.querySelector('.quick-list').getBoundingClientRect();"
        "var b = document.querySelector('#groups-grid').getBoundingClientRect();"
        "return [a.top, b.top];")
    assert box[0] == pytest.approx(box[1], abs=1)
    assert dash_duo.get_logs() == [], "the browser console reported errors"
