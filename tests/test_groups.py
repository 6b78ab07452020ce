"""Error groups: counts and times across batches, states, regressions, ignores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from groups.commands import change_states, state_request
from groups.fingerprint import fingerprint
from groups.hook import GroupNotFound, GroupsHook
from groups.reads import group_detail, list_groups
from queries.store import ErrorStore
from tests.factories import event

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def grouped(**fields):
    e = event(**fields)
    from dataclasses import replace
    return replace(e, fingerprint=fingerprint(e))


@pytest.fixture
def clock():
    return Clock(T0)


@pytest.fixture
def store(engine, clock):
    store = ErrorStore(engine, hooks=[GroupsHook(clock)])
    yield store
    store.close()


def _state(engine, fp, state, clock, **kw):
    change_states(engine, [fp], state_request(state, clock(), **kw), clock())


def _group(engine, fp, clock):
    return group_detail(engine, fp, now=clock())


def test_counts_first_and_last_seen_and_symbols_add_up_across_batches_with_duplicates(
        engine, store, clock):
    a = grouped(error_id="a", error_message="failed for AAPL after 3 retries", symbol="AAPL",
                timestamp=T0, severity="warning")
    b = grouped(error_id="b", error_message="failed for MSFT after 5 retries", symbol="MSFT",
                timestamp=T0 + timedelta(minutes=5), severity="critical")
    c = grouped(error_id="c", error_message="failed for AAPL after 9 retries", symbol="AAPL",
                timestamp=T0 - timedelta(minutes=5), severity="error")
    assert a.fingerprint == b.fingerprint == c.fingerprint
    store.write_batch([a, b])
    result = store.write_batch([a, c, c])  # a and the second c are duplicates
    assert [(ch.state, ch.previous_state, ch.events) for ch in result.hook_results["groups"]] \
        == [("unresolved", "unresolved", 1)]
    group = _group(engine, a.fingerprint, clock)
    assert group["count"] == 3
    assert group["firstSeen"] == "2026-11-01T11:55:00Z"
    assert group["lastSeen"] == "2026-11-01T12:05:00Z"
    assert group["worstSeverity"] == "critical"
    assert group["symbolCount"] == 2
    assert group["topSymbols"] == [{"symbol": "AAPL", "count": 2}, {"symbol": "MSFT", "count": 1}]
    assert group["title"] == "PatternDetectionError: failed for AAPL after 3 retries"
    assert [e["id"] for e in group["events"]] == ["b", "a", "c"]


def test_a_new_event_in_a_resolved_group_is_a_regression(engine, store, clock):
    first = grouped(error_id="r1", timestamp=T0)
    store.write_batch([first])
    _state(engine, first.fingerprint, "resolved", clock)
    assert _group(engine, first.fingerprint, clock)["state"] == "resolved"
    clock.now = T0 + timedelta(hours=1)
    result = store.write_batch([grouped(error_id="r2", timestamp=clock.now)])
    (change,) = result.hook_results["groups"]
    assert change.regressed and change.notifies
    group = _group(engine, first.fingerprint, clock)
    assert group["state"] == "regressed" and group["regressedAt"] == "2026-11-01T13:00:00Z"
    result = store.write_batch([grouped(error_id="r3", timestamp=clock.now)])
    assert not result.hook_results["groups"][0].regressed  # only the first event regresses


def test_ignored_for_good_stays_ignored_and_does_not_notify(engine, store, clock):
    first = grouped(error_id="i1")
    store.write_batch([first])
    _state(engine, first.fingerprint, "ignored", clock)
    (change,) = store.write_batch([grouped(error_id="i2")]).hook_results["groups"]
    assert change.state == "ignored" and not change.notifies
    assert _group(engine, first.fingerprint, clock)["count"] == 2  # stored and counted


def test_ignore_until_count_ends_after_n_more_events(engine, store, clock):
    first = grouped(error_id="c0")
    store.write_batch([first])
    _state(engine, first.fingerprint, "ignored", clock, count=3)
    states = [store.write_batch([grouped(error_id=f"c{i}")]).hook_results["groups"][0].state
              for i in range(1, 4)]
    assert states == ["ignored", "ignored", "unresolved"]


def test_ignore_until_time_ends_at_that_time(engine, store, clock):
    first = grouped(error_id="t0")
    store.write_batch([first])
    _state(engine, first.fingerprint, "ignored", clock, until=T0 + timedelta(hours=2))
    clock.now = T0 + timedelta(hours=1, minutes=59)
    assert store.write_batch([grouped(error_id="t1")]).hook_results["groups"][0].state == \
        "ignored"
    clock.now = T0 + timedelta(hours=2)
    assert _group(engine, first.fingerprint, clock)["state"] == "unresolved"  # shown as over
    assert store.write_batch([grouped(error_id="t2")]).hook_results["groups"][0].state == \
        "unresolved"


def test_unknown_group_and_bad_state(engine, store, clock):
    first = grouped(error_id="u0")
    store.write_batch([first])
    with pytest.raises(GroupNotFound):
        _state(engine, "0" * 40, "resolved", clock)
    with pytest.raises(ValueError, match="state must be one of"):
        _state(engine, first.fingerprint, "regressed", clock)


def test_list_filters_sorts_and_searches(engine, store, clock):
    big = [grouped(error_id=f"big{i}", error_message="connection reset", category="network",
                   component="HistoricalLoader", timestamp=T0 - timedelta(hours=3))
           for i in range(5)]
    recent = grouped(error_id="new", error_message="RSI needs data", component="Indicators",
                     timestamp=T0 - timedelta(minutes=10))
    store.write_batch([*big, recent])
    _state(engine, recent.fingerprint, "resolved", clock)
    by_count = list_groups(engine, sort="count", now=clock())
    assert [g["count"] for g in by_count] == [5, 1]
    # 24 clock hours ending with the current one (12:00): 09:00 is the 21st of them.
    assert by_count[0]["hourly"][20] == 5 and sum(by_count[0]["hourly"]) == 5
    assert [g["fingerprint"] for g in list_groups(engine, state="resolved", now=clock())] == \
        [recent.fingerprint]
    assert [g["component"] for g in list_groups(engine, hours=1, now=clock())] == ["Indicators"]
    assert [g["count"] for g in list_groups(engine, q="historical", now=clock())] == [5]


def test_two_ingests_making_the_same_new_group_at_once_both_count(pg_url, clock):
    """Issue 16: a second writer that finds the group made meanwhile adds to it (no unique
    violation splitting its batch)."""
    import threading

    from queries.engine import make_engine
    from tests.conftest import fresh_schema

    engine = make_engine(pg_url)
    fresh_schema(engine)
    hook = GroupsHook(clock)
    first, second = engine.raw_connection(), engine.raw_connection()
    try:
        made = hook(first, "postgresql", [grouped(error_id="race-1", symbol="AAPL")])
        assert [c.state for c in made] == ["unresolved"]
        seen: dict[str, object] = {}

        def other_writer() -> None:
            try:
                seen["changes"] = hook(second, "postgresql",
                                       [grouped(error_id="race-2", symbol="MSFT"),
                                        grouped(error_id="race-3", symbol="AAPL")])
                second.commit()
            except Exception as exc:  # noqa: BLE001 - the test reports it
                seen["error"] = exc

        thread = threading.Thread(target=other_writer)
        thread.start()
        thread.join(0.5)
        assert thread.is_alive(), "the second writer waits for the first one's new row"
        first.commit()
        thread.join(10)
        assert "error" not in seen, seen.get("error")
        (only,) = list_groups(engine, now=T0 + timedelta(minutes=1))
        assert only["count"] == 3
        # AAPL was new to both writers: the group has 2 symbols, not 3.
        assert group_detail(engine, only["fingerprint"], now=T0)["symbolCount"] == 2
    finally:
        first.close()
        second.close()
        engine.dispose()
