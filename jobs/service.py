"""The jobs package as one object: trackers, the processing reader and the watch thread,
built from the settings; `app.py` and `python -m ingest` start and stop it with the ingest."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine

from jobs.reader import DeadLetter, ProcessingReader, Sink
from jobs.rules import JobRules, JobTracker, ListenerCheck, MissedRunCheck, RunTracker
from jobs.watch import ConditionSink, JobsWatch
from queries.records import ErrorEvent
from settings import Settings

Clock = Callable[[], datetime]


class JobsService:
    def __init__(self, settings: Settings, db: Engine, alerts: ConditionSink,
                 submit_error: Sink, dead_letter: DeadLetter,
                 clock: Clock | None = None) -> None:
        clock = clock or (lambda: datetime.now(UTC))
        self.clock = clock
        self.rules = JobRules.from_settings(settings)
        self.runs = RunTracker(self.rules)
        self.jobs = JobTracker(self.rules)
        self.listeners = ListenerCheck(settings.listener_channel_list, self.rules)
        self.missed = MissedRunCheck(settings.run_schedule, settings.run_schedule_timezone,
                                     self.rules)
        self.reader = ProcessingReader(
            settings.redis_url, settings.processing_channel_list, self.runs, submit_error,
            dead_letter, on_listening=self.missed.watching, clock=clock,
            health_check_interval=settings.redis_health_check_interval)
        self.watch = JobsWatch(
            settings.redis_url, settings.listener_channel_list, settings.job_status_keys,
            settings.jobs_check_interval_ms / 1000.0, self.runs, self.jobs, self.listeners,
            self.missed, alerts, db, clock=clock)
        self._started = False

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        self.watch.load()
        self.reader.start()
        self.watch.start()

    def stop(self) -> None:
        """The reader first (nothing more is handed to the ingest), then the watch saves."""
        if not self._started:
            return
        self.reader.stop()
        self.watch.stop()
        self._started = False

    def link_errors(self, entries: Sequence[Any]) -> None:
        """A pipeline listener: the new errors (ring entries) that name a run or a job."""
        events: list[ErrorEvent] = [entry.event for entry in entries]
        self.watch.link(events)

    def status(self) -> dict[str, Any]:
        return {"reader": self.reader.status(), **self.watch.status()}


def jobs_for(ingest: Any, settings: Settings, engine: Engine) -> JobsService:
    """The jobs package wired to a running ingest (ingest.service.IngestService, by duck
    typing: jobs/ does not import the ingest): its conditions go to the ingest's alert
    engine, the errors it finds to the ingest's spool, and new errors come back to be
    linked to their run or job."""
    jobs = JobsService(settings, engine, ingest.alerts, ingest.submit_external,
                       ingest.dead_letter_external)
    ingest.pipeline.add_listener(jobs.link_errors)
    return jobs
