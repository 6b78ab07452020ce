"""The dashboard in headless Chromium, on a running monitor (Redis + PostgreSQL + ingest).

Run with `DASH_TEST_CHROMEPATH=/usr/lib/chromium/chromium python -m pytest --headless ...`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from dashboard import ids
from queries.store import ErrorStore
from tests.conftest import wait_for
from tests.factories import event, payload

pytestmark = pytest.mark.browser


@pytest.fixture
def monitor(start_monitor, pg_url, pg_engine):
    # pg_engine gives this test empty tables on the run's PostgreSQL database.
    return start_monitor(database_url=pg_url)


@pytest.fixture
def page(dash_duo, monitor):
    dash_duo.start_server(monitor.dash_app)
    dash_duo.wait_for_element(f"#{ids.ERROR_LIST} .ag-root", timeout=10)
    return dash_duo


def _publish(redis_client, channel: str, **fields) -> str:
    fields.setdefault("error_id", f"b_{uuid.uuid4().hex}")
    redis_client.publish(channel, payload(**fields))
    return fields["error_id"]


def _grid_text(dash_duo, grid: str = ids.ERROR_LIST) -> str:
    return dash_duo.find_element(f"#{grid}").text


def test_ov001_anchors_render(page) -> None:
    for anchor in (ids.ERROR_STATS, ids.HEALTH_STATUS, ids.ERROR_LIST, ids.CATEGORY_FILTER,
                   ids.SEVERITY_FILTER, ids.NOTIFICATIONS):
        page.wait_for_element(f"#{anchor}")
    classes = page.find_element(f"#{ids.HEALTH_STATUS}").get_attribute("class")
    assert any(f"health-{c}" in classes for c in ("green", "yellow", "red", "gray"))
    page.wait_for_text_to_equal(f"#{ids.HEALTH_STATUS}", "Operational", timeout=8)
    assert page.find_element(f"#{ids.STAT_TOTAL}").text == "0"
    assert page.get_logs() == [], "the browser console reported errors"


def test_ov002_published_error_appears_in_live_list(page, redis_client, channel) -> None:
    text = f"Pattern detection failed for Doji {uuid.uuid4().hex[:8]}"
    _publish(redis_client, channel, error_message=text, severity="error")
    page.wait_for_contains_text(f"#{ids.ERROR_LIST}", text, timeout=8)
    # The counts follow once the row is stored.
    page.wait_for_text_to_equal(f"#{ids.STAT_ERROR}", "1", timeout=8)


def test_ov003_filters_narrow_the_live_list(page, redis_client, channel) -> None:
    tag = uuid.uuid4().hex[:6]
    _publish(redis_client, channel, error_message=f"db down {tag}", category="database",
             severity="error")
    _publish(redis_client, channel, error_message=f"api slow {tag}", category="network",
             severity="warning")
    page.wait_for_contains_text(f"#{ids.ERROR_LIST}", f"api slow {tag}", timeout=8)
    page.wait_for_contains_text(f"#{ids.ERROR_LIST}", f"db down {tag}", timeout=8)

    page.find_element(f"#{ids.CATEGORY_FILTER}").click()
    page.driver.find_element(
        By.XPATH, "//*[@role='option'][.//input[@value='database']]").click()
    page.driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
    wait_for(lambda: f"api slow {tag}" not in _grid_text(page), message="network row to go")
    assert f"db down {tag}" in _grid_text(page)

    # New rows obey the filter too.
    _publish(redis_client, channel, error_message=f"api slow again {tag}",
             category="network", severity="error")
    _publish(redis_client, channel, error_message=f"db again {tag}", category="database",
             severity="error")
    page.wait_for_contains_text(f"#{ids.ERROR_LIST}", f"db again {tag}", timeout=8)
    assert f"api slow again {tag}" not in _grid_text(page)


def test_ov004_critical_raises_the_dialog_and_turns_health_red(page, redis_client,
                                                              channel) -> None:
    page.wait_for_text_to_equal(f"#{ids.HEALTH_STATUS}", "Operational", timeout=8)
    text = f"Database connection lost {uuid.uuid4().hex[:6]}"
    _publish(redis_client, channel, error_message=text, severity="critical",
             category="database", error_type="DatabaseError")
    page.wait_for_contains_text(f"#{ids.CRITICAL_DIALOG}", text, timeout=8)
    page.wait_for_contains_class(f"#{ids.HEALTH_STATUS}", "health-red", timeout=8)
    page.wait_for_text_to_equal(f"#{ids.HEALTH_STATUS}", "Critical", timeout=8)
    page.wait_for_contains_text(f"#{ids.NOTIFICATIONS}", text, timeout=8)
    # It stays until dismissed.
    page.driver.find_element(By.TAG_NAME, "body").click()
    assert page.find_element(f"#{ids.CRITICAL_DIALOG}").is_displayed()
    page.find_element(f"#{ids.CRITICAL_DISMISS}").click()
    page.wait_for_no_elements(f"#{ids.CRITICAL_DIALOG}", timeout=8)


def test_ov005_html_in_a_message_is_shown_as_text(page, redis_client, channel) -> None:
    nasty = '<img src=x onerror="window.__xss=1"> <b>bold</b> <script>window.__xss=2</script>'
    error_id = _publish(redis_client, channel, error_message=nasty, severity="critical",
                        error_type="<i>Type</i>", context={"symbol": "<b>S</b>",
                                                          "component": "<u>C</u>"})
    page.wait_for_contains_text(f"#{ids.ERROR_LIST}", "<b>bold</b>", timeout=8)
    page.wait_for_contains_text(f"#{ids.CRITICAL_DIALOG}", "<b>bold</b>", timeout=8)
    page.wait_for_contains_text(f"#{ids.NOTIFICATIONS}", "<b>bold</b>", timeout=8)
    for where in (ids.ERROR_LIST, ids.CRITICAL_DIALOG, ids.NOTIFICATIONS):
        assert page.driver.find_elements(By.CSS_SELECTOR, f"#{where} b, #{where} img, "
                                                          f"#{where} u, #{where} i") == []
    page.find_element(f"#{ids.CRITICAL_DISMISS}").click()
    page.driver.get(f"{page.server_url}/errors/{error_id}")
    page.wait_for_contains_text(f"#{ids.ERROR_DETAIL}", "<b>bold</b>", timeout=10)
    assert page.driver.find_elements(By.CSS_SELECTOR, f"#{ids.ERROR_DETAIL} b") == []
    assert page.driver.execute_script("return window.__xss") is None
    with pytest.raises(NoAlertPresentException):
        page.driver.switch_to.alert.text  # noqa: B018 - the access is the check


def test_er001_search_and_detail_work(dash_duo, monitor) -> None:
    now = datetime.now(UTC)
    store = ErrorStore(monitor.engine)
    store.write_batch(
        [event(error_id=f"bulk{i}", timestamp=now - timedelta(minutes=i)) for i in range(60)]
        + [event(error_id="needle", error_type="PolygonAPIError", category="network",
                 error_message="429 Too Many Requests from Polygon.io",
                 error_traceback="Traceback (most recent call last):\n  File \"loader.py\"",
                 context={"retry_after": 60, "symbol": "AAPL"},
                 timestamp=now - timedelta(minutes=5, seconds=30))])
    store.close()
    dash_duo.start_server(monitor.dash_app)
    dash_duo.driver.get(f"{dash_duo.server_url}/errors")
    dash_duo.wait_for_contains_text(f"#{ids.SEARCH_SUMMARY}", "of 61", timeout=10)
    box = dash_duo.find_element(f"#{ids.ERROR_SEARCH}")
    box.send_keys("too many category:network")
    box.send_keys(Keys.ENTER)
    dash_duo.wait_for_contains_text(f"#{ids.SEARCH_SUMMARY}", "1–1 of 1", timeout=10)
    dash_duo.wait_for_contains_text(f"#{ids.SEARCH_RESULTS}", "Polygon.io", timeout=8)
    dash_duo.find_element(f"#{ids.SEARCH_RESULTS} .ag-row .ag-cell[col-id='message']").click()
    dash_duo.wait_for_contains_text(f"#{ids.MODAL_DETAIL}", 'File "loader.py"', timeout=10)
    dash_duo.wait_for_contains_text(f"#{ids.MODAL_DETAIL}", '"retry_after": 60', timeout=8)
    href = dash_duo.find_element(f"#{ids.EXPORT_LINK}").get_attribute("href")
    assert "export.csv" in href and "category%3Anetwork" in href

    dash_duo.driver.get(f"{dash_duo.server_url}/errors?id=needle")
    dash_duo.wait_for_contains_text(f"#{ids.ERROR_DETAIL}", "PolygonAPIError", timeout=10)
    assert 'File "loader.py"' in dash_duo.find_element(f"#{ids.ERROR_DETAIL}-traceback").text


def test_tr001_trends_show_charts_or_an_empty_state(dash_duo, monitor) -> None:
    dash_duo.start_server(monitor.dash_app)
    dash_duo.driver.get(f"{dash_duo.server_url}/trends")
    dash_duo.wait_for_contains_text(f"#{ids.TRENDS_CHARTS}", "No errors in this range",
                                    timeout=10)
    store = ErrorStore(monitor.engine)
    store.write_batch([event(error_id=f"t{i}", symbol="<b>SYM</b>",
                             timestamp=datetime.now(UTC) - timedelta(minutes=7 * i))
                       for i in range(30)])
    store.close()
    dash_duo.find_element(f"#{ids.TRENDS_REFRESH}").click()
    dash_duo.wait_for_element("#trend-severity .main-svg", timeout=10)
    dash_duo.wait_for_contains_text(f"#{ids.TRENDS_SUMMARY}", "30 errors", timeout=8)
    dash_duo.wait_for_contains_text("#trend-symbols", "<b>SYM</b>", timeout=8)


def test_ov002_on_a_redis_cluster_an_error_reaches_the_web_workers_live_list(
        dash_duo, cluster_settings, redis_cluster, pg_url, pg_engine) -> None:
    """Issue 16: with REDIS_CLUSTER=true an error SPUBLISHed on the cluster is read by the
    ingest (SSUBSCRIBE), goes out on the sharded live feed, and a web-only worker following
    it (SSUBSCRIBE on the feed's node) shows it in its live list."""
    import app as app_module
    from live.feed import FeedNames
    from live.publisher import LiveFeedPublisher

    settings = cluster_settings(database_url=pg_url)
    # The ingest process in miniature (IngestService plus the publisher, as ingest/__main__).
    ingest_side = app_module.build(settings)
    publisher = LiveFeedPublisher(settings.redis_url, settings.error_channel,
                                  ingest_side.ingest.status, settings.ring_buffer_size)
    ingest_side.ingest.pipeline.add_listener(publisher.publish)
    web = app_module.build(cluster_settings(database_url=pg_url, ingest_enabled=False))
    cluster = redis_cluster.client()
    try:
        ingest_side.start()
        publisher.start()
        wait_for(lambda: ingest_side.ingest.subscriber.subscribed, message="subscription")
        web.start()
        dash_duo.start_server(web.dash_app)
        dash_duo.wait_for_element(f"#{ids.ERROR_LIST} .ag-root", timeout=10)
        wait_for(lambda: web.follower.connected, message="the web worker following the feed")
        text = f"Cluster pattern detection failed {uuid.uuid4().hex[:8]}"
        assert cluster.spublish(settings.error_channel, payload(
            error_id=f"b_{uuid.uuid4().hex}", error_message=text, severity="error")) == 1
        dash_duo.wait_for_contains_text(f"#{ids.ERROR_LIST}", text, timeout=10)
        assert web.follower.status()["follower"]["channel"] == settings.error_channel + ":live"
    finally:
        web.stop()
        ingest_side.stop()
        publisher.stop()
        names = FeedNames.for_channel(settings.error_channel)
        cluster.delete(names.seq, names.recent, names.status)
        cluster.close()
