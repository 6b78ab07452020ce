"""Alert rules and their lifecycle, Alertmanager-style: fire once, remind, resolve once.

Rules (thresholds in `AlertRules`, from settings):
- `critical_error`: any critical error; one alert per group (fingerprint); a regression of
  the group while it fires notifies again.
- `error_rate`: more than N errors (severity error or critical) within a minute.
- `category_burst`: more than N errors of one category within 5 minutes; one per category.
- `symbol_pattern_failures`: more than N `pattern` errors for one symbol within 15 minutes.
- `database_error`: any `database` error; one alert per group.

An alert fires when its count within its window passes the threshold, and resolves once the
count has stayed at or below the threshold for a whole window. The same rule and key never
notify twice while firing, except a reminder every `repeat`. A silence or an inhibition (any
firing `database_error` holds back `category_burst` and `symbol_pattern_failures`) holds
notifications back but not the record; once it lifts, a firing alert that was never sent is
sent. Events of ignored groups are left out of every rule.

`observe` runs on the pipeline thread as each chunk arrives (so an outage of the store does
not delay alerts); `tick` runs every second on a timer for resolutions and reminders.

With several ingest processes one engine evaluates for all (alerts/shared.py): the others'
engines are not `active` (they neither count, fire nor notify; they show the state the
leader saved), and a new leader starts from the saved state (`reset`) with its windows filled
from the events of the last windows (`count_past`).

Condition rules (alerts/catalog.py CONDITION_RULES: nobody listening, a job stuck, a run
stalled...) are not counted: their owner says whether the condition holds
(`set_condition`, or `sync_conditions` with the whole set of one rule), and the alert fires
on the first True and resolves on the first False, with the same silences, reminders and
notifications as the counted rules.
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from alerts.catalog import CONDITION_RULES, INHIBITED_BY_DATABASE
from alerts.catalog import EVENT_RULES as RULES
from queries.records import SERIOUS, ErrorEvent, iso_utc

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class AlertRules:
    error_rate_threshold: int = 10
    error_rate_window: timedelta = timedelta(minutes=1)
    category_burst_threshold: int = 5
    category_burst_window: timedelta = timedelta(minutes=5)
    symbol_pattern_threshold: int = 3
    symbol_pattern_window: timedelta = timedelta(minutes=15)
    critical_window: timedelta = timedelta(minutes=5)
    database_window: timedelta = timedelta(minutes=5)
    repeat: timedelta = timedelta(minutes=60)

    def threshold(self, rule: str) -> int:
        return {"error_rate": self.error_rate_threshold,
                "category_burst": self.category_burst_threshold,
                "symbol_pattern_failures": self.symbol_pattern_threshold}.get(rule, 0)

    def window(self, rule: str) -> timedelta:
        return {"critical_error": self.critical_window, "error_rate": self.error_rate_window,
                "category_burst": self.category_burst_window,
                "symbol_pattern_failures": self.symbol_pattern_window,
                "database_error": self.database_window}[rule]


@dataclass(frozen=True)
class Silence:
    id: str
    rule: str
    key: str | None
    until: datetime
    reason: str = ""
    created_by: str = ""

    def matches(self, rule: str, key: str, now: datetime) -> bool:
        return self.rule == rule and (self.key is None or self.key == key) and now < self.until


@dataclass
class Alert:
    rule: str
    key: str
    started_at: datetime
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    state: str = "firing"
    ended_at: datetime | None = None
    last_event_at: datetime | None = None
    event_count: int = 0
    summary: str = ""
    sample: dict[str, Any] | None = None
    last_notice: str | None = None
    notified_at: datetime | None = None
    notices: int = 0
    suppressed: str | None = None
    false_since: datetime | None = None  # in memory only: since when below threshold
    version: int = 0  # in memory only: grows with every change, so the newest copy wins

    def as_json(self) -> dict[str, Any]:
        def when(moment: datetime | None) -> str | None:
            return iso_utc(moment) if moment else None

        return {"id": self.id, "rule": self.rule, "key": self.key, "state": self.state,
                "startedAt": when(self.started_at), "endedAt": when(self.ended_at),
                "lastEventAt": when(self.last_event_at), "count": self.event_count,
                "summary": self.summary, "sample": self.sample,
                "lastNotice": self.last_notice, "notifiedAt": when(self.notified_at),
                "notices": self.notices, "suppressed": self.suppressed}


@dataclass(frozen=True)
class Notice:
    """One notification to send: `kind` is firing, reminder, regressed or resolved."""

    kind: str
    alert: dict[str, Any]

    @property
    def key(self) -> str:
        """Stable per notice (the alert and its notice number): the webhook's
        Idempotency-Key, the same on every retry and from any leader."""
        return f"{self.alert.get('id')}-{self.alert.get('notices')}"

    def text(self) -> str:
        a = self.alert
        mark = {"firing": "🔴 FIRING", "reminder": "🔁 STILL FIRING", "regressed": "⚠️ REGRESSED",
                "resolved": "✅ RESOLVED"}.get(self.kind, self.kind)
        return f"{mark} [{a['rule']}] {a['summary']} ({a['count']} events since {a['startedAt']})"


def _summary(rule: str, key: str, event: ErrorEvent, count: int, rules: AlertRules) -> str:
    what = f"{event.error_type or event.category}: {event.error_message[:200]}"
    if rule == "error_rate":
        return f"more than {rules.error_rate_threshold} errors in a minute ({count}); latest {what}"
    if rule == "category_burst":
        return (f"more than {rules.category_burst_threshold} {key} errors in 5 minutes; "
                f"latest {what}")
    if rule == "symbol_pattern_failures":
        return (f"more than {rules.symbol_pattern_threshold} pattern failures for {key} "
                f"in 15 minutes; latest {what}")
    where = f" in {event.component}" if event.component else ""
    return f"{event.severity} {what}{where}"


def _rule_keys(event: ErrorEvent) -> list[tuple[str, str]]:
    """The (rule, key) windows a serious event counts in (as `AlertEngine.observe` does)."""
    fp = event.fingerprint or event.error_id
    keys = [("error_rate", "all"), ("category_burst", event.category)]
    if event.severity == "critical":
        keys.append(("critical_error", fp))
    if event.category == "pattern" and event.symbol:
        keys.append(("symbol_pattern_failures", event.symbol))
    if event.category == "database":
        keys.append(("database_error", fp))
    return keys


def _sample(event: ErrorEvent) -> dict[str, Any]:
    return {**event.to_summary(), "operation": event.operation,
            "traceback": (event.error_traceback or "")[:2000] or None}


class AlertEngine:
    def __init__(self, rules: AlertRules | None = None, clock: Clock | None = None,
                 on_notice: Callable[[Notice], None] | None = None,
                 on_change: Callable[[Alert], None] | None = None) -> None:
        self.rules = rules or AlertRules()
        self.clock = clock or (lambda: datetime.now(UTC))
        self.on_notice = on_notice or (lambda notice: None)
        self.on_change = on_change or (lambda alert: None)
        self._windows: dict[tuple[str, str], deque[datetime]] = {}
        self._firing: dict[tuple[str, str], Alert] = {}
        self._silences: list[Silence] = []
        self._ignored: frozenset[str] = frozenset()
        self._dirty: set[tuple[str, str]] = set()  # firing alerts whose count moved
        # Firing alerts hit in the chunk being observed, with their latest event.
        self._latest: dict[tuple[str, str], tuple[Alert, ErrorEvent]] = {}
        self._lock = threading.RLock()
        # False in a process that is not the alert leader: every input is ignored.
        self.active = True

    # -- state from outside ---------------------------------------------------------------
    def load(self, firing: Iterable[Alert]) -> None:
        """Alerts still firing when the monitor last stopped: they carry on, not re-sent."""
        with self._lock:
            for alert in firing:
                self._firing[(alert.rule, alert.key)] = alert

    def reset(self, firing: Iterable[Alert]) -> None:
        """Forget everything (windows too) and carry on from `firing`, as saved by the
        leader: a process taking over, or a follower showing the leader's state."""
        with self._lock:
            self._windows.clear()
            self._firing.clear()
            self._dirty.clear()
            self._latest.clear()
            self.load(firing)

    def count_past(self, events: Iterable[tuple[datetime, ErrorEvent]]) -> None:
        """Count events a previous leader already evaluated into the windows only, at the
        time each was seen (oldest first): they fire nothing and move no alert, so a new
        leader's windows hold what the deployment saw, not just what came after it."""
        with self._lock:
            ignored = self._ignored
            for seen_at, event in events:
                if event.severity not in SERIOUS or event.is_test or \
                        event.fingerprint in ignored:
                    continue
                for rule, key in _rule_keys(event):
                    self._windows.setdefault((rule, key), deque()).append(seen_at)

    def set_silences(self, silences: Sequence[Silence]) -> None:
        with self._lock:
            self._silences = list(silences)
        self.tick()

    def set_ignored(self, fingerprints: Iterable[str]) -> None:
        with self._lock:
            self._ignored = frozenset(fingerprints)

    def take_updates(self) -> list[Alert]:
        """Firing alerts whose count moved since the last call, to be saved."""
        with self._lock:
            updates = [replace(self._firing[k]) for k in self._dirty if k in self._firing]
            self._dirty.clear()
        return updates

    def firing(self) -> list[Alert]:
        with self._lock:
            return [replace(a) for a in self._firing.values()]

    # -- events ---------------------------------------------------------------------------
    def observe(self, events: Sequence[ErrorEvent]) -> None:
        """Count a chunk of new events into the rules; fire what passes a threshold."""
        if not self.active:
            return
        now = self.clock()
        rules = self.rules
        # Per rule for this chunk: (window cutoff, threshold).
        limits = {rule: (now - rules.window(rule), rules.threshold(rule)) for rule in RULES}
        # The sample of a firing alert is its latest event's: it is made once per chunk for
        # each alert hit (by `_flush_samples`, before anyone can see the alert), not per event.
        hit = self._hit
        with self._lock:
            ignored = self._ignored
            try:
                for event in events:
                    severity = event.severity
                    # Test traffic fires nothing (TickStockPL's test script sends a critical).
                    if severity not in SERIOUS or event.is_test or event.fingerprint in ignored:
                        continue
                    fp = event.fingerprint or event.error_id
                    category = event.category
                    if severity == "critical":
                        hit("critical_error", fp, now, event, limits)
                    hit("error_rate", "all", now, event, limits)
                    hit("category_burst", category, now, event, limits)
                    if category == "pattern" and event.symbol:
                        hit("symbol_pattern_failures", event.symbol, now, event, limits)
                    if category == "database":
                        hit("database_error", fp, now, event, limits)
            finally:
                self._flush_samples()
            self._review(now)

    # -- conditions -----------------------------------------------------------------------
    def set_condition(self, rule: str, key: str, active: bool, summary: str = "",
                      sample: dict[str, Any] | None = None) -> None:
        """Say whether condition `rule` holds for `key`: True fires (once), False resolves.

        Saying True again while it fires only refreshes its summary and sample (saved, not
        notified); a restart that loaded the alert as firing does not notify it again."""
        if rule not in CONDITION_RULES:
            raise ValueError(f"{rule!r} is not a condition rule ({', '.join(CONDITION_RULES)})")
        if not self.active:
            return
        with self._lock:
            now = self.clock()
            alert = self._firing.get((rule, key))
            if not active:
                if alert is not None:
                    self._resolve(alert, now)
                return
            if alert is not None:
                if summary and (alert.summary != summary or alert.sample != sample):
                    alert.summary, alert.sample = summary, sample
                    alert.last_event_at = now
                    alert.version += 1
                    self._dirty.add((rule, key))
                return
            self._fire(Alert(rule=rule, key=key, started_at=now, last_event_at=now,
                             event_count=1, summary=summary or f"{rule} {key}",
                             sample=sample), now)

    def sync_conditions(self, rule: str,
                        active: dict[str, tuple[str, dict[str, Any] | None]]) -> None:
        """The whole set of keys for which `rule` holds now, as {key: (summary, sample)}:
        those fire, and firing alerts of the rule missing from it resolve (also the ones a
        restart loaded whose cause is gone)."""
        if not self.active:
            return
        with self._lock:
            for key in [k for (r, k) in self._firing if r == rule and k not in active]:
                self.set_condition(rule, key, False)
            for key, (summary, sample) in active.items():
                self.set_condition(rule, key, True, summary, sample)

    def regressed(self, fingerprints: Iterable[str]) -> None:
        """Groups that came back after being resolved: a firing critical alert says so again."""
        if not self.active:
            return
        with self._lock:
            for fp in fingerprints:
                alert = self._firing.get(("critical_error", fp))
                if alert is not None and not alert.suppressed:
                    self._notify(alert, "regressed", self.clock())

    def _hit(self, rule: str, key: str, now: datetime, event: ErrorEvent,
             limits: dict[str, tuple[datetime, int]] | None = None) -> None:
        cutoff, threshold = (limits[rule] if limits is not None
                             else (now - self.rules.window(rule), self.rules.threshold(rule)))
        window = self._windows.get((rule, key))
        if window is None:
            window = self._windows[(rule, key)] = deque()
        window.append(now)
        while window and window[0] <= cutoff:
            window.popleft()
        count = len(window)
        alert = self._firing.get((rule, key))
        if alert is not None:
            alert.event_count += 1
            alert.last_event_at = now
            if limits is not None:
                self._latest[(rule, key)] = (alert, event)
            else:
                alert.sample = _sample(event)
            alert.version += 1
            self._dirty.add((rule, key))
            if count > threshold:
                alert.false_since = None
            return
        if count <= threshold:
            return
        self._flush_samples()  # the callbacks below may look at any alert
        self._fire(Alert(rule=rule, key=key, started_at=now, last_event_at=now,
                         event_count=count, summary=_summary(rule, key, event, count, self.rules),
                         sample=_sample(event)), now)

    def _fire(self, alert: Alert, now: datetime) -> None:
        """A new alert: notified now, or only recorded while a silence or inhibition holds."""
        self._firing[(alert.rule, alert.key)] = alert
        alert.suppressed = self._suppression(alert, now)
        if not alert.suppressed:
            self._notify(alert, "firing", now)
        else:
            self.on_change(replace(alert))

    def _flush_samples(self) -> None:
        latest = self._latest
        if latest:
            for alert, event in latest.values():
                alert.sample = _sample(event)
            latest.clear()

    @staticmethod
    def _prune(window: deque[datetime], cutoff: datetime) -> None:
        while window and window[0] <= cutoff:
            window.popleft()

    # -- time -----------------------------------------------------------------------------
    def tick(self) -> None:
        """Resolve, remind, and send what a lifted silence or inhibition held back."""
        if not self.active:
            return
        with self._lock:
            self._review(self.clock())

    def _review(self, now: datetime) -> None:
        for (rule, key), alert in list(self._firing.items()):
            if rule in CONDITION_RULES:
                self._review_notices(alert, now)  # resolved by their owner only
                continue
            window = self._windows.get((rule, key))
            if window is not None:
                self._prune(window, now - self.rules.window(rule))
            count = len(window) if window else 0
            if count > self.rules.threshold(rule):
                alert.false_since = None
            elif alert.false_since is None:
                alert.false_since = now
            if alert.false_since is not None and \
                    now - alert.false_since >= self.rules.window(rule):
                self._resolve(alert, now)
                continue
            self._review_notices(alert, now)
        for key in [k for k, w in self._windows.items() if not w and k not in self._firing]:
            del self._windows[key]

    def _review_notices(self, alert: Alert, now: datetime) -> None:
        """A silence or inhibition that started or lifted, and reminders."""
        suppressed = self._suppression(alert, now)
        if suppressed != alert.suppressed:
            alert.suppressed = suppressed
            alert.version += 1
            if not suppressed and alert.notices == 0:
                self._notify(alert, "firing", now)
                return
            self.on_change(replace(alert))
        if not alert.suppressed and alert.notified_at is not None and \
                now - alert.notified_at >= self.rules.repeat:
            self._notify(alert, "reminder", now)

    def _suppression(self, alert: Alert, now: datetime) -> str | None:
        for silence in self._silences:
            if silence.matches(alert.rule, alert.key, now):
                return f"silenced:{silence.id}"
        if alert.rule in INHIBITED_BY_DATABASE and any(
                a.rule == "database_error" for a in self._firing.values()):
            return "inhibited"
        return None

    def _resolve(self, alert: Alert, now: datetime) -> None:
        del self._firing[(alert.rule, alert.key)]
        alert.state = "resolved"
        alert.ended_at = now
        alert.version += 1
        if alert.notices and not alert.suppressed:
            self._notify(alert, "resolved", now)
        else:
            self.on_change(replace(alert))

    def _notify(self, alert: Alert, kind: str, now: datetime) -> None:
        alert.last_notice = kind
        alert.notified_at = now
        alert.notices += 1
        alert.version += 1
        snapshot = replace(alert)
        self.on_change(snapshot)
        self.on_notice(Notice(kind, snapshot.as_json()))
