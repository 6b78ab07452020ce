"""Counts over time: bucket choice, the hourly rollup against direct counts, the trend frames."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from queries.reads import error_statistics
from queries.store import ErrorStore
from queries.trends import (
    HourlyRollup,
    build_trend,
    choose_bucket,
    fit_bucket,
)
from tests.factories import event

# A clock in the middle of an hour, so every window has partial hours at both edges.
NOW = datetime(2026, 3, 10, 12, 34, 56, 789000, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _store(engine, events) -> None:
    store = ErrorStore(engine)
    try:
        assert not store.write_batch(list(events)).refused
    finally:
        store.close()


def _spread(hours: int = 50, every_minutes: int = 7) -> list:
    """Errors every few minutes over the last `hours`, with a mix of everything."""
    severities = ("warning", "error", "critical", "error", "warning", "info")
    categories = ("pattern", "database", "network", "redis")
    symbols = ("AAPL", "MSFT", None, "AAPL")
    out = []
    for i in range(hours * 60 // every_minutes):
        out.append(event(
            error_id=f"s{i}", timestamp=NOW - timedelta(minutes=i * every_minutes, seconds=13),
            severity=severities[i % len(severities)], category=categories[i % 4],
            symbol=symbols[i % 4], component=f"C{i % 3}", error_type=f"T{i % 5}"))
    return out


@pytest.mark.parametrize("span, bucket", [
    (timedelta(hours=1), "minute"), (timedelta(hours=6), "minute"),
    (timedelta(hours=7), "hour"), (timedelta(days=7), "hour"),
    (timedelta(days=8, hours=1), "day"), (timedelta(days=30), "day"),
])
def test_bucket_fits_the_range(span: timedelta, bucket: str) -> None:
    assert choose_bucket(span) == bucket
    assert fit_bucket("auto", span) == (bucket, None)


def test_a_requested_bucket_that_makes_too_many_bars_is_coarsened() -> None:
    assert fit_bucket("minute", timedelta(days=30))[0] == "day"
    assert "more than" in (fit_bucket("minute", timedelta(days=30))[1] or "")
    assert fit_bucket("hour", timedelta(days=30)) == ("hour", None)
    with pytest.raises(ValueError, match="bucket must be"):
        fit_bucket("week", timedelta(days=1))


@pytest.mark.parametrize("hours", [1, 3, 24, 49])
def test_window_counts_equal_a_direct_count(engine, hours: int) -> None:
    _store(engine, _spread())
    rollup = HourlyRollup(engine, Clock(NOW))
    counts = rollup.severity_counts(NOW - timedelta(hours=hours))
    direct = error_statistics(engine, hours, now=NOW)["bySeverity"]
    shown = ("warning", "error", "critical")  # info is stored here but never shown
    assert {k: counts[k] for k in shown} == {k: direct[k] for k in shown}
    assert counts["total"] == sum(direct[k] for k in shown) > 0


def test_a_row_that_arrives_late_counts_at_once(engine) -> None:
    # The in-memory hourly cache showed a late row only after a re-read (up to half an
    # hour); the count tables are kept in the writer's transaction, so it counts at once.
    _store(engine, _spread())
    rollup = HourlyRollup(engine, Clock(NOW))
    before = rollup.severity_counts(NOW - timedelta(hours=48))
    # A row arrives late for an hour of yesterday (a spool replayed after an outage).
    _store(engine, [event(error_id="late", severity="critical",
                          timestamp=NOW - timedelta(hours=30, minutes=10))])
    later = rollup.severity_counts(NOW - timedelta(hours=48))
    assert later["critical"] == before["critical"] + 1
    direct = error_statistics(engine, 48, now=NOW)["bySeverity"]
    assert later["critical"] == direct["critical"]
    assert later["error"] == direct["error"]


def test_hourly_trend_matches_the_rows(engine) -> None:
    rows = _spread()
    _store(engine, rows)
    rollup = HourlyRollup(engine, Clock(NOW))
    start = NOW - timedelta(hours=24)
    trend = build_trend(rollup, start, NOW)
    assert trend.bucket == "hour"
    assert len(trend.by_severity) == 25  # 24 hours across 25 clock hours
    assert list(trend.by_severity.columns) == ["warning", "error", "critical"]
    shown = [r for r in rows if start <= r.timestamp < NOW and r.severity != "info"]
    assert trend.total == len(shown)
    first = trend.by_severity.index[0]
    in_first = [r for r in shown if r.timestamp < first + timedelta(hours=1)]
    assert trend.by_severity.iloc[0].sum() == len(in_first)
    assert trend.by_category.to_numpy().sum() == len(shown)
    totals = trend.by_category.sum().tolist()
    assert totals == sorted(totals, reverse=True)
    symbols = trend.top["symbol"]
    assert list(symbols["name"]) == ["AAPL", "MSFT"]  # no-symbol rows are not a name
    assert symbols["count"].iloc[0] == sum(1 for r in shown if r.symbol == "AAPL")


def test_short_ranges_use_minutes_and_long_ones_days(engine) -> None:
    _store(engine, _spread(hours=24 * 9, every_minutes=60))
    rollup = HourlyRollup(engine, Clock(NOW))
    minute = build_trend(rollup, NOW - timedelta(hours=2), NOW)
    assert minute.bucket == "minute" and len(minute.by_severity) in (120, 121)
    assert minute.total == 2
    day = build_trend(rollup, NOW - timedelta(days=9), NOW)
    assert day.bucket == "day" and len(day.by_severity) == 10
    assert day.total == build_trend(rollup, NOW - timedelta(days=9), NOW, "hour").total


def test_an_empty_range_is_empty_with_every_bucket_present(engine) -> None:
    rollup = HourlyRollup(engine, Clock(NOW))
    trend = build_trend(rollup, NOW - timedelta(hours=24), NOW)
    assert trend.empty and trend.total == 0
    assert len(trend.by_severity) == 25 and trend.by_severity.to_numpy().sum() == 0
    assert trend.by_category.empty or trend.by_category.to_numpy().sum() == 0
    assert trend.top["symbol"].empty


def test_trend_json_shape(engine) -> None:
    _store(engine, _spread(hours=3))
    data = build_trend(HourlyRollup(engine, Clock(NOW)), NOW - timedelta(hours=3), NOW).as_json()
    assert data["bucket"] == "minute"
    assert set(data) >= {"from", "to", "bucket", "total", "bySeverity", "byCategory",
                         "topSymbols", "topComponents", "topTypes"}
    assert data["bySeverity"][0]["time"].endswith("Z")
    assert sum(p["warning"] + p["error"] + p["critical"] for p in data["bySeverity"]) \
        == data["total"]
    assert data["topSymbols"][0] == {"name": "AAPL", "count": data["topSymbols"][0]["count"]}


def test_back_dated_rows_show_without_a_refresh(engine) -> None:
    rollup = HourlyRollup(engine, Clock(NOW))
    assert build_trend(rollup, NOW - timedelta(hours=24), NOW).empty
    _store(engine, [event(error_id=f"back{i}", timestamp=NOW - timedelta(hours=5, minutes=i))
                    for i in range(3)])
    assert build_trend(rollup, NOW - timedelta(hours=24), NOW).total == 3
