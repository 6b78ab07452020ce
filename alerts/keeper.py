"""The thread that keeps the alert engine in step with the database and the clock.

Every second it ticks the engine (resolutions, reminders, lifted silences) and saves the
alerts that changed; every few seconds it reloads the silences and the ignored groups, which
people change through the API, possibly in another process. While the database is away the
changes wait (the latest state of each alert only) and the engine keeps working from memory.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from alerts.rules import Alert, AlertEngine, Silence
from alerts.store import ignored_fingerprints, list_silences, load_firing, save_alerts

log = logging.getLogger(__name__)


def alert_row(alert: Alert) -> dict[str, Any]:
    return {"id": alert.id, "rule": alert.rule, "alert_key": alert.key, "state": alert.state,
            "started_at": alert.started_at, "ended_at": alert.ended_at,
            "last_event_at": alert.last_event_at, "event_count": alert.event_count,
            "summary": alert.summary, "sample": alert.sample, "last_notice": alert.last_notice,
            "notified_at": alert.notified_at, "notices": alert.notices,
            "suppressed": alert.suppressed}


def alert_from_row(row: dict[str, Any]) -> Alert:
    return Alert(rule=row["rule"], key=row["alert_key"], started_at=row["started_at"],
                 id=row["id"], state=row["state"], ended_at=row["ended_at"],
                 last_event_at=row["last_event_at"], event_count=row["event_count"],
                 summary=row["summary"], sample=row["sample"], last_notice=row["last_notice"],
                 notified_at=row["notified_at"], notices=row["notices"],
                 suppressed=row["suppressed"])


class AlertKeeper(threading.Thread):
    def __init__(self, engine: AlertEngine, db: Engine, interval: float = 1.0,
                 conditions: list[Callable[[], None]] | None = None) -> None:
        super().__init__(name="alert-keeper", daemon=True)
        self.engine = engine
        self.db = db
        self.interval = interval
        # Checks that say whether a condition rule holds, run before every tick.
        self.conditions = list(conditions or [])
        self._changed: dict[str, Alert] = {}
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._wake = threading.Event()
        self.saved = 0
        self.last_error: str | None = None

    def record(self, alert: Alert) -> None:
        """The engine's on_change: keep the latest state of each alert to save."""
        self._keep(alert)
        self._wake.set()

    def _keep(self, alert: Alert) -> None:
        with self._lock:
            held = self._changed.get(alert.id)
            if held is None or alert.version >= held.version:
                self._changed[alert.id] = alert

    def load(self) -> None:
        """Alerts still firing from the last run, so a restart does not notify them again."""
        try:
            self.engine.load(alert_from_row(row) for row in load_firing(self.db))
            self._reload(self.engine.clock())
        except SQLAlchemyError as exc:
            log.warning("could not load the alerts of the last run: %s", exc)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop_event.set()
        self._wake.set()
        if self.is_alive():
            self.join(timeout)
        self._save()

    def run(self) -> None:
        beat = 0
        while not self._stop_event.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            beat += 1
            try:
                for condition in self.conditions:
                    condition()
                self.engine.tick()
                if beat % 3 == 0:
                    self._reload(self.engine.clock())
            except SQLAlchemyError as exc:
                self.last_error = str(exc).splitlines()[0]
            except Exception:
                log.exception("alert keeper failed; carrying on")
            self._save()

    def _reload(self, now: datetime) -> None:
        self.engine.set_silences([
            Silence(s["id"], s["rule"], s["key"], datetime.fromisoformat(
                s["until"].replace("Z", "+00:00")), s["reason"], s["createdBy"])
            for s in list_silences(self.db, now)])
        self.engine.set_ignored(ignored_fingerprints(self.db, now))

    def _save(self) -> None:
        for alert in self.engine.take_updates():
            self._keep(alert)
        with self._lock:
            changed, self._changed = self._changed, {}
        if not changed:
            return
        try:
            save_alerts(self.db, [alert_row(a) for a in changed.values()])
            self.saved += len(changed)
        except SQLAlchemyError as exc:
            self.last_error = str(exc).splitlines()[0]
            for alert in changed.values():  # kept, unless a newer state arrived meanwhile
                self._keep(alert)
