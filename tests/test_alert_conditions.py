"""Condition rules (no_listener, job_stuck, run_stalled...) through the alert lifecycle: fire
on the first True, once; resolve on the first False, once; silences and reminders apply;
a restart that loaded the alert does not notify it again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerts.catalog import CONDITION_RULES, RULES
from alerts.rules import AlertEngine, AlertRules, Silence

T0 = datetime(2026, 11, 2, 21, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def _engine(clock: Clock, notices: list, repeat_minutes: int = 60) -> AlertEngine:
    return AlertEngine(AlertRules(repeat=timedelta(minutes=repeat_minutes)), clock=clock,
                       on_notice=notices.append)


def test_a_condition_fires_once_and_resolves_once() -> None:
    clock, notices = Clock(), []
    engine = _engine(clock, notices)
    for _ in range(3):
        engine.set_condition("run_stalled", "run-1", True, "run run-1 silent for 10 min")
        engine.tick()
    clock.now += timedelta(minutes=5)
    engine.tick()
    engine.set_condition("run_stalled", "run-1", False)
    engine.set_condition("run_stalled", "run-1", False)
    assert [(n.kind, n.alert["rule"], n.alert["key"]) for n in notices] == [
        ("firing", "run_stalled", "run-1"), ("resolved", "run_stalled", "run-1")]


def test_a_condition_reminds_after_the_repeat_interval() -> None:
    clock, notices = Clock(), []
    engine = _engine(clock, notices, repeat_minutes=30)
    engine.set_condition("no_listener", "tickstock.jobs.data_load", True, "nobody listens")
    clock.now += timedelta(minutes=31)
    engine.tick()
    assert [n.kind for n in notices] == ["firing", "reminder"]


def test_a_silenced_condition_is_recorded_but_not_sent() -> None:
    clock, notices = Clock(), []
    engine = _engine(clock, notices)
    engine.set_silences([Silence("s1", "job_stuck", None, T0 + timedelta(hours=1))])
    engine.set_condition("job_stuck", "job-9", True, "job job-9 still submitted")
    assert notices == [] and engine.firing()[0].suppressed == "silenced:s1"


def test_sync_resolves_what_is_no_longer_in_the_set_even_after_a_restart() -> None:
    clock, notices = Clock(), []
    first = _engine(clock, notices)
    first.sync_conditions("job_stuck", {"a": ("a stuck", None), "b": ("b stuck", None)})
    again = _engine(clock, notices)
    again.load(first.firing())  # what the keeper loads on start
    again.sync_conditions("job_stuck", {"b": ("b stuck", None)})
    assert [(n.kind, n.alert["key"]) for n in notices] == [
        ("firing", "a"), ("firing", "b"), ("resolved", "a")]


def test_only_condition_rules_take_conditions_and_every_rule_is_listed_once() -> None:
    with pytest.raises(ValueError):
        AlertEngine().set_condition("error_rate", "all", True)
    assert len(set(RULES)) == len(RULES) and set(CONDITION_RULES) <= set(RULES)
