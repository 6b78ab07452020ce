"""Alert rules on a controllable clock, as timelines: fire at the threshold and not one event
before, resolve after the window, never twice while firing, remind, silence, inhibit."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from alerts.rules import AlertEngine, AlertRules, Notice, Silence
from groups.fingerprint import fingerprint
from tests.factories import event

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


class Timeline:
    """An engine on a clock the test moves, recording every notice."""

    def __init__(self, rules: AlertRules | None = None) -> None:
        self.now = T0
        self.notices: list[Notice] = []
        self.engine = AlertEngine(rules or AlertRules(), clock=lambda: self.now,
                                  on_notice=self.notices.append)

    def at(self, seconds: float) -> Timeline:
        self.now = T0 + timedelta(seconds=seconds)
        self.engine.tick()
        return self

    def send(self, n: int = 1, **fields) -> Timeline:
        events = []
        for _ in range(n):
            e = event(**fields)
            events.append(replace(e, fingerprint=fingerprint(e)))
        self.engine.observe(events)
        return self

    def kinds(self, rule: str | None = None) -> list[tuple[str, str, str]]:
        return [(n.kind, n.alert["rule"], n.alert["key"]) for n in self.notices
                if rule is None or n.alert["rule"] == rule]


def test_critical_error_fires_on_the_first_critical_once_per_group():
    t = Timeline()
    t.send(severity="error", category="network")
    assert t.kinds("critical_error") == []
    t.send(3, severity="critical", category="network", error_message="feed down")
    t.at(60).send(severity="critical", category="network", error_message="feed down")
    assert len(t.kinds("critical_error")) == 1
    t.send(severity="critical", category="network", error_message="another problem")
    assert len(t.kinds("critical_error")) == 2  # another group, another alert


def test_error_rate_fires_at_11_in_a_minute_not_at_10():
    t = Timeline()
    for i in range(10):
        t.at(i * 5).send(severity="error", category=("network", "pattern")[i % 2],
                         symbol=None)
    assert t.kinds("error_rate") == []
    t.at(55).send(severity="error", category="redis")
    assert t.kinds("error_rate") == [("firing", "error_rate", "all")]


def test_error_rate_counts_a_sliding_minute():
    t = Timeline()
    for i in range(10):
        t.at(i).send(severity="error", category="network")
    t.at(61).send(severity="error", category="network")  # the first has left the window
    assert t.kinds("error_rate") == []


def test_category_burst_fires_at_6_within_5_minutes_once_per_category():
    t = Timeline(AlertRules(error_rate_threshold=1000))
    for i in range(5):
        t.at(i * 50).send(severity="error", category="indicator")
    assert t.kinds("category_burst") == []
    t.at(280).send(severity="error", category="indicator")
    t.at(290).send(2, severity="error", category="indicator")
    assert t.kinds("category_burst") == [("firing", "category_burst", "indicator")]


def test_symbol_pattern_failures_fire_at_4_for_one_symbol_within_15_minutes():
    t = Timeline(AlertRules(error_rate_threshold=1000, category_burst_threshold=1000))
    for i in range(3):
        t.at(i * 200).send(severity="error", category="pattern", symbol="AAPL")
    t.send(severity="error", category="pattern", symbol="MSFT")
    t.send(severity="warning", category="pattern", symbol="AAPL")  # warnings do not count
    assert t.kinds("symbol_pattern_failures") == []
    t.at(890).send(severity="error", category="pattern", symbol="AAPL")
    assert t.kinds("symbol_pattern_failures") == [("firing", "symbol_pattern_failures", "AAPL")]


def test_an_alert_resolves_once_after_its_condition_was_false_for_its_window():
    t = Timeline()
    t.at(0).send(severity="critical", category="network")
    t.at(299)  # the critical is still inside its 5-minute window
    t.at(301)  # the condition turns false now ...
    t.at(600)
    assert [k for k, *_ in t.kinds("critical_error")] == ["firing"]
    t.at(601)  # ... and has been false for a whole window
    t.at(700)
    assert [k for k, *_ in t.kinds("critical_error")] == ["firing", "resolved"]
    assert t.engine.firing() == []


def test_a_reminder_after_the_repeat_interval_while_firing():
    t = Timeline(AlertRules(repeat=timedelta(minutes=60)))
    for minute in range(0, 130, 2):
        t.at(minute * 60).send(severity="critical", category="network")
    assert [k for k, *_ in t.kinds("critical_error")] == ["firing", "reminder", "reminder"]


def test_a_silence_holds_notifications_but_keeps_the_record():
    t = Timeline()
    t.engine.set_silences([Silence("s1", "critical_error", None, T0 + timedelta(minutes=10))])
    t.at(0).send(severity="critical", category="network")
    assert t.kinds("critical_error") == []
    (alert,) = t.engine.firing()
    assert alert.suppressed == "silenced:s1"
    t.at(30).send(severity="critical", category="network")
    t.at(601)  # the silence is over and the alert still fires: it is sent now, once
    assert [k for k, *_ in t.kinds("critical_error")] == ["firing"]


def test_a_silence_for_one_key_leaves_other_keys_alone():
    t = Timeline(AlertRules(error_rate_threshold=1000))
    t.engine.set_silences([Silence("s2", "category_burst", "network", T0 + timedelta(hours=1))])
    t.send(6, severity="error", category="network")
    t.send(6, severity="error", category="redis")
    assert t.kinds("category_burst") == [("firing", "category_burst", "redis")]


def test_a_firing_database_error_inhibits_the_bursts_it_causes():
    t = Timeline(AlertRules(error_rate_threshold=1000))
    t.at(0).send(severity="error", category="database", error_message="connection lost")
    t.send(6, severity="error", category="pattern", symbol="AAPL")
    assert t.kinds() == [("firing", "database_error", t.engine.firing()[0].key)]
    held = {a.rule: a.suppressed for a in t.engine.firing()}
    assert held["category_burst"] == "inhibited"
    assert held["symbol_pattern_failures"] == "inhibited"


def test_ignored_groups_do_not_count():
    t = Timeline()
    e = event(severity="critical")
    t.engine.set_ignored([fingerprint(e)])
    t.send(20, severity="critical")
    assert t.kinds() == []


def test_a_regression_of_a_firing_critical_group_notifies_again():
    t = Timeline()
    t.send(severity="critical", category="network")
    (alert,) = [a for a in t.engine.firing() if a.rule == "critical_error"]
    t.engine.regressed([alert.key])
    assert [k for k, *_ in t.kinds("critical_error")] == ["firing", "regressed"]


def test_alerts_loaded_after_a_restart_are_not_sent_again():
    first = Timeline()
    first.send(severity="critical", category="network")
    carried = first.engine.firing()
    second = Timeline()
    second.engine.load(carried)
    second.send(severity="critical", category="network")
    assert second.kinds() == []
    second.at(301)
    second.at(601)
    assert [k for k, *_ in second.kinds("critical_error")] == ["resolved"]


@pytest.mark.parametrize("kind", ["firing", "reminder", "regressed", "resolved"])
def test_notice_text_says_what_happened(kind):
    t = Timeline()
    t.send(severity="critical", category="network", error_message="feed down")
    text = Notice(kind, t.notices[0].alert).text()
    assert "critical_error" in text and "feed down" in text
