"""The Jobs page in headless Chromium on a running monitor: a running run's progress moves.

Run with `DASH_TEST_CHROMEPATH=/usr/lib/chromium/chromium python -m pytest --headless ...`.
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from jobs import page as jobs_page
from tests.conftest import jobs_names

pytestmark = pytest.mark.browser


def _event(name: str, **payload) -> bytes:
    return orjson.dumps({"event": name, "timestamp": datetime.now(UTC).isoformat(),
                         "source": "TickStockPL", "version": "1.0", "payload": payload})


def test_jb001_a_running_runs_progress_moves(dash_duo, start_monitor, pg_url, pg_engine,
                                             redis_client, channel) -> None:
    monitor = start_monitor(database_url=pg_url, jobs_check_interval_ms=200)
    prefix = jobs_names(channel)["prefix"]
    dash_duo.start_server(monitor.dash_app)
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/jobs")
    dash_duo.wait_for_element(f"#{jobs_page.JOBS_BODY}", timeout=10)
    redis_client.publish(f"{prefix}:processing:status",
                         _event("processing_started", run_id="run-browser"))
    for done in (2, 6):
        redis_client.publish(f"{prefix}:indicators:progress", _event(
            "indicators_progress", run_id="run-browser", completed_symbols=done,
            total_symbols=10, percent_complete=done * 10.0))
        dash_duo.wait_for_contains_text(f"#{jobs_page.RUNS_TABLE}",
                                        f"indicators {done * 10}% ({done}/10)", timeout=10)
    assert "running" in dash_duo.find_element(f"#{jobs_page.RUNS_TABLE}").text
    assert dash_duo.get_logs() == [], "the browser console reported errors"
