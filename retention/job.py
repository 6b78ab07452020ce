"""The retention job in the app's process: every day at RETENTION_AT (server local time), and
once at start-up when the last successful run is more than a day old.

APScheduler (BackgroundScheduler, one worker thread, so runs never overlap) does the timing;
`status()` is what GET /api/monitor/status shows under "retention". The last run is read back
from `maintenance_runs` on start, so a restart neither forgets it nor runs it twice a day.
With several ingest processes on one database, each scheduled run first claims its day
(retention/claims.py): one process runs it, the others say they stand by.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from tzlocal import get_localzone

from queries.records import iso_utc
from retention.claims import claim, claimant_name
from retention.policy import JOB, Clock, RetentionPolicy, RunReport, utc_now
from retention.run import Retention
from settings import Settings, parse_time_of_day

log = logging.getLogger(__name__)

STARTUP_AFTER = timedelta(days=1)
# The start-up run waits this long, so that it never competes with the ingest's own start
# (replaying its spool) for the machine.
STARTUP_DELAY = timedelta(seconds=30)


def daily_trigger(at: str, timezone: tzinfo) -> CronTrigger:
    hour, minute = parse_time_of_day(at)
    return CronTrigger(hour=hour, minute=minute, timezone=timezone)


def next_run_after(moment: datetime, at: str, timezone: tzinfo) -> datetime:
    """The first RETENTION_AT (in `timezone`) strictly after `moment`, as aware UTC."""
    fire = daily_trigger(at, timezone).get_next_fire_time(None, moment + timedelta(seconds=1))
    assert fire is not None
    return fire.astimezone(UTC)


class RetentionJob:
    """Schedules `Retention.run`; thread name `retention-job`; `stop()` ends a run early."""

    def __init__(self, retention: Retention, at: str = "03:00",
                 timezone: tzinfo | str | None = None,
                 startup_delay: timedelta = STARTUP_DELAY) -> None:
        self.retention = retention
        self.at = at
        self.startup_delay = startup_delay
        parse_time_of_day(at)
        if isinstance(timezone, str):
            from zoneinfo import ZoneInfo

            timezone = ZoneInfo(timezone)
        self.timezone: tzinfo = timezone or get_localzone()
        self._scheduler: BackgroundScheduler | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.running = False
        self.startup_run = False
        self.last: dict[str, Any] | None = None  # the last run's report, as JSON
        self.standby: str | None = None  # why this process did not run today's retention
        self.claimant = claimant_name()
        self.runs = 0

    @classmethod
    def from_settings(cls, engine: Engine, settings: Settings,
                      clock: Clock = utc_now) -> RetentionJob:
        return cls(Retention(engine, RetentionPolicy.from_settings(settings), clock),
                   at=settings.retention_at)

    @property
    def clock(self) -> Clock:
        return self.retention.clock

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> bool:
        """Start the schedule; returns True when a start-up run was due (and is started)."""
        if self._scheduler is not None:
            return self.startup_run
        self._stop.clear()
        due = self._load_last_run()
        scheduler = BackgroundScheduler(
            timezone=self.timezone,
            executors={"default": ThreadPoolExecutor(1, pool_kwargs={
                "thread_name_prefix": "retention-job"})},
            job_defaults={"coalesce": True, "max_instances": 1,
                          "misfire_grace_time": 6 * 3600})
        scheduler.add_job(self.run_scheduled, daily_trigger(self.at, self.timezone),
                          id="retention", name="retention")
        if due:
            scheduler.add_job(self.run_scheduled, "date", id="retention-startup",
                              name="retention at start-up",
                              run_date=datetime.now(self.timezone) + self.startup_delay)
        scheduler.start()
        self._scheduler = scheduler
        self.startup_run = due
        log.info("retention: daily at %s (%s), keeping %d days%s", self.at, self.timezone,
                 self.retention.policy.days, "; a run is due (last run over a day ago): "
                 f"in {self.startup_delay.total_seconds():.0f} s" if due else "")
        return due

    def stop(self) -> None:
        """Stop the schedule; a run in progress stops at its next batch."""
        self._stop.set()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None

    def _load_last_run(self) -> bool:
        """Read the last run back; True when a start-up run is due."""
        try:
            last = self.retention.last_run()
            last_ok = self.retention.last_run(successful=True)
        except Exception as exc:  # noqa: BLE001 - a store away at start must not stop the app
            log.warning("retention: cannot read the last run (%s); running at start-up", exc)
            return True
        if last is not None:
            self.last = last.detail or {"startedAt": iso_utc(last.started_at), "ok": last.ok,
                                        "rowsRemoved": last.rows_removed}
        return last_ok is None or self.clock() - last_ok.started_at > STARTUP_AFTER

    # -- the run ------------------------------------------------------------------------------
    def run_scheduled(self) -> RunReport | None:
        """Today's run, if no other process has claimed it; None when standing by."""
        now = self.clock()
        period = now.astimezone(self.timezone).date().isoformat()
        try:
            held = claim(self.retention.engine, JOB, period, self.claimant, now)
        except SQLAlchemyError as exc:
            # The store is away: the run itself would fail and say so; no claim to trust.
            log.warning("retention: cannot claim today's run (%s); running it", exc)
            return self.run()
        if held.claimed_by != self.claimant:
            self.standby = (f"today's run ({period}) was taken by {held.claimed_by} "
                            f"at {iso_utc(held.claimed_at)}")
            log.info("retention: standing by: %s", self.standby)
            return None
        self.standby = None
        return self.run()

    def run(self) -> RunReport:
        """One run now (the scheduler's thread calls it; tests may too)."""
        with self._lock:
            self.running = True
            try:
                report = self.retention.run(should_stop=self._stop.is_set)
            finally:
                self.running = False
            if not report.skipped:
                self.last = report.as_json()
                self.runs += 1
            return report

    # -- status -------------------------------------------------------------------------------
    def next_run(self) -> datetime | None:
        if self._scheduler is None:
            return None
        job = self._scheduler.get_job("retention")
        return job.next_run_time.astimezone(UTC) if job and job.next_run_time else None

    def status(self) -> dict[str, Any]:
        last = self.last or {}
        next_run = self.next_run()
        policy = self.retention.policy
        return {
            "retentionDays": policy.days,
            "at": self.at,
            "timezone": str(self.timezone),
            "archiveDir": policy.archive_dir or None,
            "running": self.running,
            "startupRun": self.startup_run,
            "lastRun": last.get("startedAt"),
            "lastRunOk": last.get("ok"),
            "lastError": last.get("error"),
            "rowsRemoved": last.get("rowsRemoved", 0),
            "removed": last.get("removed", {}),
            "durationSeconds": last.get("durationSeconds"),
            "cutoff": last.get("cutoff"),
            "layout": last.get("layout"),
            "partitionsDropped": len(last.get("partitionsDropped", [])),
            "partitionsCreated": len(last.get("partitionsCreated", [])),
            "nextRun": iso_utc(next_run) if next_run else None,
            "standby": self.standby,
        }
