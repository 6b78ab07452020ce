"""In headless Chromium, with the admin's credentials and the Content-Security-Policy on: the
page renders, its callbacks run (the live list fills, the health badge changes), Plotly's
charts draw, and the browser reports no CSP violation.

The policy allows Dash's two inline scripts (the renderer, and the clientside callbacks) by
their hashes: no `'unsafe-inline'` and no `'unsafe-eval'` for scripts.
"""

from __future__ import annotations

import base64
import json
import time

import pytest

from dashboard import ids
from tests.conftest import wait_for

USER, PASSWORD = "admin", "browser-test-password"

pytestmark = pytest.mark.browser


@pytest.fixture
def secured(start_monitor):
    return start_monitor(admin_username=USER, admin_password=PASSWORD)


def _authorize(driver) -> None:
    """Send the admin's Basic credentials with every request the page makes: what the
    browser does by itself once its login prompt was answered."""
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders",
                           {"headers": {"Authorization": f"Basic {token}"}})


def _csp_violations(dash_duo) -> list[str]:
    return [entry["message"] for entry in dash_duo.get_logs() or []
            if "Content Security Policy" in entry["message"]]


def test_sec001_page_and_callbacks_work_under_the_csp(dash_duo, secured, redis_client):
    app = secured.dash_app
    dash_duo.start_server(app, navigate=False)  # the first page needs the credentials
    _authorize(dash_duo.driver)
    base = dash_duo.server.url.rstrip("/")
    started = time.monotonic()
    dash_duo.wait_for_page(url=base + "/", timeout=20)
    dash_duo.wait_for_element(f"#{ids.ERROR_LIST}", timeout=20)
    channel = secured.settings.error_channel
    for i in range(3):
        redis_client.publish(channel, json.dumps({
            "error_id": f"csp-{i}", "severity": "critical", "category": "database",
            "message": f"seen through the CSP {i}"}))
    wait_for(lambda: len(dash_duo.find_elements(f"#{ids.ERROR_LIST} .ag-row")) >= 3,
             timeout=20, message="the live list to fill through the callbacks")
    dash_duo.wait_for_text_to_equal(f"#{ids.HEALTH_STATUS}", "Critical", timeout=20)
    seconds = time.monotonic() - started
    # The Trends page draws Plotly charts: the strictest part of a CSP for Dash.
    dash_duo.driver.get(base + "/trends")
    wait_for(lambda: len(dash_duo.find_elements(".js-plotly-plot .main-svg")) > 0,
             timeout=20, message="a Plotly chart")
    assert _csp_violations(dash_duo) == []
    print(f"page + live rows + health under the CSP in {seconds:.1f} s")


def test_sec002_the_csp_is_what_makes_it_work(dash_duo, secured, monkeypatch):
    """The control: without the hashes the same page is blocked, and the browser says so;
    so the first test's silence means the policy was enforced, not ignored."""
    import dashboard.security as security

    original = security.page_csp
    monkeypatch.setattr(security, "page_csp", lambda hashes: original([]))
    dash_duo.start_server(secured.dash_app, navigate=False)
    _authorize(dash_duo.driver)
    dash_duo.driver.get(dash_duo.server.url.rstrip("/") + "/")
    wait_for(lambda: _csp_violations(dash_duo), timeout=20, message="a CSP violation")
    assert not dash_duo.find_elements(f"#{ids.ERROR_LIST}")
