"""The thread that keeps the alert engine in step with the database and the clock.

Every second it ticks the engine (resolutions, reminders, lifted silences) and saves the
alerts that changed; every few seconds it reloads the silences and the ignored groups, which
people change through the API, possibly in another process. While the database is away the
changes wait (the latest state of each alert only) and the engine keeps working from memory.

With a webhook, each notice is written to the outbox (alerts/outbox.py) in the transaction
that saves the alert's change, and the sender is woken once it is committed. With several
ingest processes the same transaction records how far in the deployment's event stream the
saved state goes (`progress`, alerts/shared.py): `save_lock` keeps the events observed and
the progress written together.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from alerts.outbox import outbox_row
from alerts.rules import Alert, AlertEngine, Notice, Silence
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
        # Notices for the outbox, saved with their alerts' changes (None: no webhook).
        self._outbox: list[dict[str, Any]] | None = None
        # (feed name, last event id) the state in memory goes up to; saved with it.
        self.progress: tuple[str, str] | None = None
        self._saved_progress: tuple[str, str] | None = None
        self.save_lock = threading.RLock()
        self.on_saved: Callable[[list[dict[str, Any]]], None] = lambda rows: None
        self._stop_event = threading.Event()
        self._wake = threading.Event()
        self.saved = 0
        self.last_error: str | None = None

    def record(self, alert: Alert) -> None:
        """The engine's on_change: keep the latest state of each alert to save."""
        self._keep(alert)
        self._wake.set()

    def use_outbox(self, on_saved: Callable[[list[dict[str, Any]]], None]) -> None:
        """Notices go to the outbox from now on; `on_saved(rows)` runs after each commit of
        some, with the rows committed."""
        self._outbox = []
        self.on_saved = on_saved

    def notice(self, notice: Notice) -> None:
        """The engine's on_notice (with a webhook): the notice goes with the next save."""
        if self._outbox is not None:
            with self._lock:
                self._outbox.append(outbox_row(notice, datetime.now(UTC)))
            self._wake.set()

    def discard(self) -> None:
        """This process stopped leading: what it did not save is the next leader's to do."""
        with self.save_lock:
            self.engine.take_updates()
            with self._lock:
                self._changed = {}
                if self._outbox is not None:
                    self._outbox = []
            self.progress = self._saved_progress = None

    def start_from(self, progress: tuple[str, str]) -> None:
        """A new leader's state goes up to `progress`, as saved (nothing to write yet)."""
        with self.save_lock:
            self.progress = self._saved_progress = progress

    def load_silences(self) -> None:
        self._reload(self.engine.clock())

    def save(self) -> None:
        """Save now (the shared feed calls this after each batch of events)."""
        self._save()

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
        with self.save_lock:
            for alert in self.engine.take_updates():
                self._keep(alert)
            with self._lock:
                changed, self._changed = self._changed, {}
                notices: list[dict[str, Any]] = []
                if self._outbox:
                    notices, self._outbox = self._outbox, []
            progress = self.progress if self.progress != self._saved_progress else None
            if not changed and not notices and progress is None:
                return
            try:
                save_alerts(self.db, [alert_row(a) for a in changed.values()], notices,
                            progress)
                self.saved += len(changed)
                if progress is not None:
                    self._saved_progress = progress
            except SQLAlchemyError as exc:
                self.last_error = str(exc).splitlines()[0]
                with self._lock:
                    if self._outbox is not None:
                        self._outbox[:0] = notices  # first, in their order
                for alert in changed.values():  # kept, unless a newer state arrived meanwhile
                    self._keep(alert)
                return
        if notices:
            self.on_saved(notices)
