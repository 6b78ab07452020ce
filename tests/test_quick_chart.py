"""The Trends page's first paint: plain bars from the same counts as the plotly charts that
replace them (dashboard/quick_chart.py), and in the browser the hand-over to plotly.

The browser test needs `DASH_TEST_CHROMEPATH=/usr/lib/chromium/chromium ... --headless`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from selenium.webdriver.support.ui import Select

from dashboard import ids
from dashboard.pages import trends
from dashboard.quick_chart import MAX_BARS, nice_step, stacked_bars
from queries.reads import recent_errors
from queries.store import ErrorStore
from queries.trends import HourlyRollup, build_trend
from tests.conftest import arrivals, record_arrivals, wait_for
from tests.dash_tree import component_nodes
from tests.factories import event, payload

T0 = datetime(2026, 3, 10, 22, 0)


def _columns(chart):
    return [n for n in component_nodes(chart) if getattr(n, "className", "") == "qc-col"]


def _height(segment) -> float:
    return float(segment.style["height"].rstrip("%"))


@pytest.mark.parametrize("top, step", [(0, 1), (3, 1), (9, 2), (40, 10), (1400, 500),
                                       (1_000_000, 200_000)])
def test_the_grid_steps_are_round_and_few(top: int, step: int) -> None:
    assert nice_step(top) == step
    assert top // step <= 5


def test_each_bucket_stacks_its_counts_with_them_as_its_tooltip() -> None:
    times = [T0 + timedelta(hours=i) for i in range(3)]
    chart = stacked_bars(times, [("warning", "#0dcaf0", [10, 0, 5]),
                                 ("error", "#fd7e14", [30, 0, 5]),
                                 ("critical", "#dc3545", [0, 0, 1])],
                         "By severity, hourly buckets", "hour", "c-quick")
    columns = _columns(chart)
    assert len(columns) == 3
    assert columns[0].title == "2026-03-10 22:00 UTC: warning 10, error 30"
    assert columns[1].title == "2026-03-10 23:00 UTC: none"
    assert columns[2].title == "2026-03-11 00:00 UTC: warning 5, error 5, critical 1"
    # Bottom to top in the series' order (the stack is a column-reverse flex), sized to
    # the same scale: 40 is the tallest, 5% under the top as plotly leaves it.
    first = columns[0].children
    assert [s.style["backgroundColor"] for s in first] == ["#0dcaf0", "#fd7e14"]
    assert sum(_height(s) for s in first) == pytest.approx(100 / 1.05, abs=0.01)
    assert _height(first[1]) == pytest.approx(3 * _height(first[0]), abs=0.01)
    assert columns[1].children == []
    # The legend lists the top of the stack first, as plotly does for stacked bars.
    legend = [n for n in component_nodes(chart) if getattr(n, "className", "") == "qc-legend"]
    assert [li.children[1] for li in legend[0].children] == ["critical", "error", "warning"]
    # A new day's first label carries its date; the total is said for screen readers.
    ticks = [n for n in component_nodes(chart) if getattr(n, "className", "") == "qc-xtick"]
    assert ticks[0].children[0] == "22:00" and "Mar 10, 2026" in ticks[0].children
    assert chart.role == "img" and "51 errors" in chart.to_plotly_json()["props"]["aria-label"]


def test_a_name_that_looks_like_markup_is_shown_as_text() -> None:
    chart = stacked_bars([T0], [("<b>x</b>", "#123456", [2])], "t", "hour", "q")
    assert _columns(chart)[0].title.endswith("<b>x</b> 2")
    legend = [n for n in component_nodes(chart) if getattr(n, "className", "") == "qc-legend"]
    assert legend[0].children[0].children[1] == "<b>x</b>"  # a string child: React text


def _stored(engine, n: int, now: datetime) -> None:
    store = ErrorStore(engine)
    try:
        store.write_batch([event(error_id=f"q{i}", severity=("error", "warning")[i % 2],
                                 category=("database", "network", "pattern")[i % 3],
                                 timestamp=now - timedelta(minutes=7 * i + 1))
                           for i in range(n)])
    finally:
        store.close()


def test_the_page_paints_bars_with_the_charts_counts_and_hands_over_their_figures(
        engine) -> None:
    now = datetime.now(UTC)
    _stored(engine, 60, now)
    trend = build_trend(HourlyRollup(engine), now - timedelta(hours=24), None, "auto")
    page = trends.charts(trend, dark=False)
    nodes = component_nodes(page)
    found = {getattr(n, "id", None): n for n in nodes}
    store = found[ids.TRENDS_FIGURES]
    figures = store.data["figures"]
    assert set(figures) == {"trend-severity", "trend-category"}
    assert "Graph" not in {type(n).__name__ for n in nodes}  # plotly comes after the paint
    for chart_id, frame in (("trend-severity", trend.by_severity),
                            ("trend-category", trend.by_category)):
        quick = found[f"{chart_id}-quick"]
        counted = 0
        for column in _columns(quick):
            counted += sum(int(n) for n in re.findall(r" (\d+)(?:,|$)", column.title))
        assert counted == int(frame.to_numpy().sum()) == trend.total == 60
        # The figure that takes over draws the same series over the same buckets.
        figure = figures[chart_id]
        assert [t["name"] for t in figure["data"]] == [str(c) for c in frame.columns]
        assert sum(sum(t["y"]) for t in figure["data"]) == 60
        assert f"{chart_id}-slot" in found


def test_a_range_of_too_many_bars_is_drawn_by_plotly_at_once(engine) -> None:
    now = datetime.now(UTC)
    _stored(engine, 10, now)
    trend = build_trend(HourlyRollup(engine), now - timedelta(hours=24), None, "minute")
    assert len(trend.by_severity.index) > MAX_BARS
    nodes = component_nodes(trends.charts(trend, dark=False))
    graphs = [n for n in nodes if type(n).__name__ == "Graph"]
    assert sorted(g.id for g in graphs) == ["trend-category", "trend-severity"]
    assert not [n for n in nodes if getattr(n, "className", "") == "quick-chart"]
    store = next(n for n in nodes if getattr(n, "id", None) == ids.TRENDS_FIGURES)
    assert store.data["figures"] == {}  # nothing to hand over


@pytest.mark.browser
def test_the_plain_bars_show_first_and_plotly_takes_their_place(
        dash_duo, start_monitor, sqlite_url, redis_client, channel) -> None:
    monitor = start_monitor(database_url=sqlite_url)
    for i in range(5):
        redis_client.publish(channel, payload(error_id=f"qb{i}", severity="error",
                                              category="database"))
    wait_for(lambda: len(recent_errors(monitor.engine, 10)) >= 5, message="5 stored")
    dash_duo.start_server(monitor.dash_app)
    # When each came into the page, noted by the page itself from its first moment.
    record_arrivals(dash_duo.driver, {"quick": "#trend-severity-quick",
                                      "plotly": "#trend-severity .main-svg"})
    dash_duo.driver.get(f"{dash_duo.server_url}/trends")
    dash_duo.wait_for_element("#trend-severity .main-svg .bars", timeout=15)
    seen = arrivals(dash_duo.driver)
    assert "quick" in seen and seen["quick"] < seen["plotly"], seen
    # The first paint's bars, with this hour's five errors in their tooltip.
    titles = dash_duo.driver.execute_script(
        "return Array.from(document.querySelectorAll('#trend-severity-quick .qc-col'))"
        ".map(function (c) { return c.title; });")
    assert any(t.endswith("error 5") for t in titles), titles
    # plotly's chart is in its place, and the plain bars are hidden under it.
    hidden = dash_duo.driver.execute_script(
        "return getComputedStyle(document.getElementById('trend-severity-quick'))"
        ".visibility;")
    assert hidden == "hidden"
    box = dash_duo.driver.execute_script(
        "var a = document.getElementById('trend-severity-quick').getBoundingClientRect();"
        "var b = document.querySelector('#trend-severity .main-svg').getBoundingClientRect();"
        "return [a.top, a.height, b.top, b.height];")
    assert box[0] == pytest.approx(box[2], abs=1) and box[1] == pytest.approx(box[3], abs=1)
    # Another range draws again the same way: bars first, then plotly in their place.
    Select(dash_duo.find_element(f"#{ids.TRENDS_RANGE}")).select_by_value("1h")
    dash_duo.wait_for_contains_text(f"#{ids.TRENDS_SUMMARY}", "one-minute buckets", timeout=10)
    dash_duo.wait_for_element("#trend-severity .main-svg .bars", timeout=15)
    assert "one-minute" in dash_duo.find_element("#trend-severity-quick .qc-title")\
        .get_attribute("textContent")  # hidden under plotly now: .text would be ""
    assert dash_duo.get_logs() == [], "the browser console reported errors"
