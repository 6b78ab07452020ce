"""The trackers that decide what is wrong with runs, jobs and listeners, on a clock passed in.

Each keeps its state in memory and answers `conditions(now)`: for each condition rule, the
keys for which it holds now with their summary and sample, which the watch thread hands to
the alert engine (`AlertEngine.sync_conditions`), so firing, reminding and resolving follow
the same lifecycle as every other alert.

- Runs (`RunTracker`): `run_stalled` while a running run has been silent for
  `run_stall`; `run_failed` for `failure_hold` after a run ended failed or a phase completed
  below `min_success_rate`.
- Jobs (`JobTracker`): `job_stuck` while a job is `submitted` for longer than
  `job_submitted_timeout` or `running` with no progress for `job_stall`, and for
  `failure_hold` after its key expired before an end state (`lost`); `job_failed` for
  `failure_hold` after its status says failed.
- Listeners (`ListenerCheck`): `no_listener` while a channel has had 0 subscribers for
  `no_listener`.
- Schedule (`MissedRunCheck`): `run_missed` when a scheduled start passed `missed_grace`
  ago with no run seen since; only starts the monitor was there to see are judged (pub/sub
  has no memory of what came before).

"Holds for `failure_hold`" makes an end state (failed, lost) an alert that fires once and
resolves by itself, as a critical error's does after its quiet window.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.triggers.cron import CronTrigger

from alerts import catalog as rule
from jobs.events import RUN_PHASE, payload_of
from jobs.model import JOB_ENDED, RUN_COMPLETED, RUN_FAILED, RUN_RUNNING, Job, Phase, Run
from queries.records import ErrorEvent, iso_utc, parse_iso_utc
from settings import Settings

Clock = Callable[[], datetime]
Conditions = dict[str, dict[str, tuple[str, dict[str, Any] | None]]]


@dataclass(frozen=True)
class JobRules:
    no_listener: timedelta = timedelta(seconds=60)
    job_submitted_timeout: timedelta = timedelta(minutes=5)
    job_stall: timedelta = timedelta(minutes=15)
    run_stall: timedelta = timedelta(minutes=10)
    min_success_rate: float = 95.0
    missed_grace: timedelta = timedelta(minutes=15)
    failure_hold: timedelta = timedelta(minutes=5)

    @classmethod
    def from_settings(cls, settings: Settings) -> JobRules:
        return cls(no_listener=timedelta(seconds=settings.no_listener_seconds),
                   job_submitted_timeout=timedelta(
                       seconds=settings.job_submitted_timeout_seconds),
                   job_stall=timedelta(seconds=settings.job_stall_seconds),
                   run_stall=timedelta(seconds=settings.run_stall_seconds),
                   min_success_rate=float(settings.run_min_success_rate),
                   missed_grace=timedelta(seconds=settings.run_missed_grace_seconds),
                   failure_hold=timedelta(minutes=settings.alert_resolve_minutes))


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip().rstrip("%"))
        except ValueError:
            return None
    return None


def _whole(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None else None


def success_percent(value: Any) -> float | None:
    """A success rate as a percentage: 80 and "80%" are 80; a fraction such as 0.8 is 80."""
    number = _number(value)
    if number is None:
        return None
    if isinstance(value, float) and 0.0 <= number <= 1.0:
        return number * 100.0
    return number


def _failed_status(payload: dict[str, Any]) -> str | None:
    """Why a completion says it failed, or None."""
    status = payload.get("status")
    if isinstance(status, str) and status.strip().lower() in ("failed", "error", "failure"):
        return f"status {status.strip()}"
    if payload.get("success") is False:
        return "success false"
    return None


class RunTracker:
    """Every run_id seen on the processing channels, with its phases."""

    def __init__(self, rules: JobRules) -> None:
        self.rules = rules
        self.runs: dict[str, Run] = {}
        self.lock = threading.Lock()

    def load(self, runs: Iterable[Run]) -> None:
        """Runs from the store (the running ones and the recent ones), after a restart."""
        with self.lock:
            for run in runs:
                self.runs.setdefault(run.run_id, run)

    def observe(self, document: dict[str, Any], phase: str, step: str,
                now: datetime) -> Run | None:
        """Apply one run event; None when it names no run and no run is running (its shape
        is then unknown to us: the caller dead-letters it)."""
        payload = payload_of(document)
        run_id = payload.get("run_id") or document.get("run_id")
        with self.lock:
            if run_id in (None, ""):
                run = self._latest_running()
                if run is None:
                    return None
            else:
                run_id = str(run_id)[:200]
                run = self.runs.get(run_id)
                if run is None:
                    run = self.runs[run_id] = Run(run_id, first_seen_at=now, last_event_at=now)
            run.last_event_at = max(run.last_event_at, now)
            run.last_event = document
            if isinstance(document.get("source"), str):
                run.source = document["source"][:100]
            if phase == RUN_PHASE:
                self._run_step(run, step, payload, now)
            else:
                self._phase_step(run, phase, step, payload, now)
            run.version += 1
            return run

    def _latest_running(self) -> Run | None:
        running = [r for r in self.runs.values() if r.state == RUN_RUNNING]
        return max(running, key=lambda r: r.last_event_at) if running else None

    def _run_step(self, run: Run, step: str, payload: dict[str, Any], now: datetime) -> None:
        if step == "started":
            run.started_at = run.started_at or now
            return
        if step in ("completed", "failed") and run.state == RUN_RUNNING:
            run.ended_at = now
            why = "processing_failed" if step == "failed" else _failed_status(payload)
            run.state = RUN_FAILED if why else RUN_COMPLETED
            run.failure = why or run.failure
            duration = _number(payload.get("duration_seconds"))
            begun = run.started_at or run.first_seen_at
            run.duration_seconds = duration if duration is not None else \
                round((now - begun).total_seconds(), 3)

    def _phase_step(self, run: Run, name: str, step: str, payload: dict[str, Any],
                    now: datetime) -> None:
        phase = run.phases.get(name)
        if phase is None:
            phase = run.phases[name] = Phase(name, started_at=now)
        phase.updated_at = now
        phase.last_payload = payload
        completed, total = _whole(payload.get("completed_symbols")), \
            _whole(payload.get("total_symbols"))
        phase.completed_symbols = completed if completed is not None else phase.completed_symbols
        phase.total_symbols = total if total is not None else phase.total_symbols
        percent = _number(payload.get("percent_complete"))
        if percent is None and phase.completed_symbols is not None and phase.total_symbols:
            percent = 100.0 * phase.completed_symbols / phase.total_symbols
        phase.percent = percent if percent is not None else phase.percent
        eta = _number(payload.get("eta_seconds"))
        phase.eta_seconds = eta if eta is not None else phase.eta_seconds
        if step == "started":
            phase.started_at = phase.started_at or now
        elif step in ("completed", "failed"):
            phase.completed_at = now
            phase.state = "failed" if step == "failed" else "completed"
            phase.eta_seconds = None
            rate = success_percent(payload.get("success_rate"))
            phase.success_rate = rate if rate is not None else phase.success_rate
            duration = _number(payload.get("duration_seconds"))
            phase.duration_seconds = duration if duration is not None else \
                round((now - (phase.started_at or now)).total_seconds(), 3)
            if step == "completed" and phase.percent is None:
                phase.percent = 100.0
            if step == "failed" and run.state == RUN_RUNNING:
                run.failure = f"phase {name} failed"

    def conditions(self, now: datetime) -> Conditions:
        rules = self.rules
        stalled: dict[str, tuple[str, dict[str, Any] | None]] = {}
        failed: dict[str, tuple[str, dict[str, Any] | None]] = {}
        with self.lock:
            runs = list(self.runs.values())
        newest_start = max((r.first_seen_at for r in runs), default=None)
        for run in runs:
            sample = {"runId": run.run_id, "lastEventAt": iso_utc(run.last_event_at)}
            silent = now - run.last_event_at
            # A newer run has started: the silent one is history, not a stall to wake for.
            superseded = newest_start is not None and newest_start > run.last_event_at
            if run.state == RUN_RUNNING and silent >= rules.run_stall and not superseded:
                where = ", ".join(f"{p.name} {p.percent:.0f}%" for p in run.phases.values()
                                  if p.percent is not None and p.state == RUN_RUNNING)
                stalled[run.run_id] = (
                    f"run {run.run_id} has sent nothing for {int(silent.total_seconds())} s "
                    f"(last event {iso_utc(run.last_event_at)}{'; ' + where if where else ''})",
                    sample)
            why, since = self._failure(run)
            if why is not None and since is not None and now - since < rules.failure_hold:
                failed[run.run_id] = (f"run {run.run_id} {why}", {**sample, "failure": why})
        return {rule.RUN_STALLED: stalled, rule.RUN_FAILED: failed}

    def _failure(self, run: Run) -> tuple[str | None, datetime | None]:
        """(why the run counts as failed, since when), or (None, None)."""
        if run.state == RUN_FAILED:
            return f"failed: {run.failure or 'its completion says so'}", run.ended_at
        for phase in run.phases.values():
            if phase.state == "failed":
                return f"phase {phase.name} failed", phase.completed_at
            rate = phase.success_rate
            if rate is not None and rate < self.rules.min_success_rate:
                return (f"phase {phase.name} completed with success rate {rate:g}% "
                        f"(below {self.rules.min_success_rate:g}%)", phase.completed_at)
        return None, None

    def take_changed(self, saved: dict[str, int]) -> list[Run]:
        """Runs changed since `saved` (run_id -> version saved), as copies to store."""
        with self.lock:
            return [_copy_run(r) for r in self.runs.values()
                    if saved.get(r.run_id) != r.version]

    def known_ids(self) -> list[str]:
        with self.lock:
            return [r.run_id for r in self.runs.values() if r.state == RUN_RUNNING]

    def forget_before(self, cutoff: datetime) -> None:
        """Ended runs older than `cutoff` leave memory (they stay in the store)."""
        with self.lock:
            for run_id in [k for k, r in self.runs.items()
                           if r.state != RUN_RUNNING and r.last_event_at < cutoff]:
                del self.runs[run_id]


def _copy_run(run: Run) -> Run:
    return Run(**{**run.__dict__, "phases": {k: Phase(**v.__dict__)
                                             for k, v in run.phases.items()}})


class JobTracker:
    """Import jobs found through their status keys."""

    def __init__(self, rules: JobRules) -> None:
        self.rules = rules
        self.jobs: dict[str, Job] = {}
        self.lock = threading.Lock()

    def load(self, jobs: Iterable[Job]) -> None:
        with self.lock:
            for job in jobs:
                self.jobs.setdefault(job.job_id, job)

    def update(self, found: dict[str, dict[str, Any]], now: datetime) -> None:
        """The status documents of every key a full SCAN found: jobs missing from it that
        were not in an end state are `lost`."""
        with self.lock:
            for job_id, document in found.items():
                self._apply(job_id, document, now)
            for job in self.jobs.values():
                if job.job_id not in found and job.is_open:
                    job.status, job.ended_at = "lost", now
                    job.message = (job.message or "") + " [status key expired]"
                    job.version += 1

    def _apply(self, job_id: str, document: dict[str, Any], now: datetime) -> None:
        status = str(document.get("status") or "submitted").strip().lower()[:16]
        progress = _number(document.get("progress"))
        message = document.get("message")
        job = self.jobs.get(job_id)
        if job is None:
            job = self.jobs[job_id] = Job(job_id, status, first_seen_at=now, last_seen_at=now,
                                          progress_changed_at=now)
            job.version += 1
        elif job.status == "lost":
            job.ended_at = None  # the key is back: follow it again
        changed = (status, progress, message) != (job.status, job.progress, job.message)
        if (status, progress) != (job.status, job.progress):
            job.progress_changed_at = now
        job.status, job.progress = status, progress
        job.message = None if message is None else str(message)[:2000]
        job.last_seen_at = now
        job.submitted_at = parse_iso_utc(document.get("submitted_at")) or job.submitted_at
        if isinstance(document.get("job_type"), str):
            job.job_type = document["job_type"][:100]
        job.raw = document
        if status in JOB_ENDED and job.ended_at is None:
            job.ended_at = now
        if changed:
            job.version += 1

    def conditions(self, now: datetime) -> Conditions:
        rules = self.rules
        stuck: dict[str, tuple[str, dict[str, Any] | None]] = {}
        failed: dict[str, tuple[str, dict[str, Any] | None]] = {}
        with self.lock:
            jobs = list(self.jobs.values())
        for job in jobs:
            sample = {"jobId": job.job_id, "status": job.status, "jobType": job.job_type,
                      "message": job.message}
            if job.status == "submitted":
                since = min(job.first_seen_at, job.submitted_at or job.first_seen_at)
                if now - since >= rules.job_submitted_timeout:
                    stuck[job.job_id] = (
                        f"job {job.job_id} still submitted after "
                        f"{int((now - since).total_seconds())} s: is the data loader "
                        "listening?", sample)
            elif job.status == "running" and now - job.progress_changed_at >= rules.job_stall:
                stuck[job.job_id] = (
                    f"job {job.job_id} at {job.progress if job.progress is not None else '?'}"
                    f"% has not moved for {int((now - job.progress_changed_at).total_seconds())}"
                    " s", sample)
            elif job.status == "lost" and job.ended_at and now - job.ended_at < rules.failure_hold:
                stuck[job.job_id] = (f"job {job.job_id} lost: its status key expired before "
                                     "it completed or failed", sample)
            elif job.status == "failed" and job.ended_at and \
                    now - job.ended_at < rules.failure_hold:
                failed[job.job_id] = (f"job {job.job_id} failed: {job.message or ''}".strip(),
                                      sample)
        return {rule.JOB_STUCK: stuck, rule.JOB_FAILED: failed}

    def take_changed(self, saved: dict[str, int]) -> list[Job]:
        with self.lock:
            return [Job(**j.__dict__) for j in self.jobs.values()
                    if saved.get(j.job_id) != j.version]

    def known_ids(self) -> list[str]:
        with self.lock:
            return [j.job_id for j in self.jobs.values() if j.is_open]

    def forget_before(self, cutoff: datetime) -> None:
        with self.lock:
            for job_id in [k for k, j in self.jobs.items()
                           if not j.is_open and (j.ended_at or j.last_seen_at) < cutoff]:
                del self.jobs[job_id]


class ListenerCheck:
    """PUBSUB NUMSUB of the channels TickStockPL must listen on, over time."""

    def __init__(self, channels: Iterable[str], rules: JobRules) -> None:
        self.rules = rules
        self.counts: dict[str, int | None] = dict.fromkeys(channels)
        self.zero_since: dict[str, datetime] = {}
        self.checked_at: datetime | None = None

    def update(self, counts: dict[str, int], now: datetime) -> None:
        self.checked_at = now
        for channel, count in counts.items():
            self.counts[channel] = count
            if count > 0:
                self.zero_since.pop(channel, None)
            else:
                self.zero_since.setdefault(channel, now)

    def conditions(self, now: datetime) -> Conditions:
        active = {}
        for channel, since in self.zero_since.items():
            if now - since >= self.rules.no_listener:
                active[channel] = (
                    f"nobody has listened on {channel} for {int((now - since).total_seconds())}"
                    " s: what is published there reaches 0 subscribers",
                    {"channel": channel, "since": iso_utc(since)})
        return {rule.NO_LISTENER: active}

    def status(self, now: datetime) -> list[dict[str, Any]]:
        return [{"channel": channel, "subscribers": count,
                 "zeroSince": iso_utc(self.zero_since[channel])
                 if channel in self.zero_since else None,
                 "alerting": channel in self.conditions(now)[rule.NO_LISTENER]}
                for channel, count in self.counts.items()]


class MissedRunCheck:
    """The scheduled start (cron expression in a time zone) against the runs that began."""

    def __init__(self, expression: str, timezone: str, rules: JobRules) -> None:
        self.rules = rules
        self.trigger = CronTrigger.from_crontab(expression, timezone=timezone) \
            if expression else None
        self.watching_since: datetime | None = None
        self._next: datetime | None = None
        self.judged: datetime | None = None  # the latest start past its grace

    def watching(self, since: datetime) -> None:
        """The processing channels are read from `since` on: starts from then are judged."""
        if self.watching_since is None and self.trigger is not None:
            self.watching_since = since
            self._next = self._fire_after(since - timedelta(microseconds=1))

    def _fire_after(self, moment: datetime) -> datetime | None:
        assert self.trigger is not None
        found = self.trigger.get_next_fire_time(None, moment + timedelta(microseconds=1))
        return found.astimezone(UTC) if found is not None else None

    def next_start(self) -> datetime | None:
        return self._next

    def conditions(self, now: datetime, runs: Iterable[Run]) -> Conditions:
        grace = self.rules.missed_grace
        while self._next is not None and self._next + grace <= now:
            self.judged = self._next
            self._next = self._fire_after(self._next)
        active = {}
        slot = self.judged
        if slot is not None:
            # A run counts for the start if it was first seen from `grace` before it on
            # (an early start) until now; a late start resolves the alert.
            began = [r for r in runs if r.first_seen_at >= slot - grace]
            if not began:
                key = iso_utc(slot)
                active[key] = (f"no processing run started for the scheduled start at {key} "
                               f"({int(grace.total_seconds())} s of grace passed)",
                               {"scheduledAt": key})
        return {rule.RUN_MISSED: active}


# run_id=..., job_id: ..., "run_id": "..." inside a message.
_ID_IN_TEXT = re.compile(r"\b(run_id|job_id|run|job)[\"']?\s*[=:]\s*[\"']?([\w.:-]{4,200})")


def linked_ids(event: ErrorEvent, open_ids: dict[str, frozenset[str]]) -> list[tuple[str, str]]:
    """[(run|job, id)] an error names: run_id / job_id in its context (or the envelope's
    payload kept there), in its message as `run_id=...`, or an open run's or job's id
    anywhere in the message."""
    found: set[tuple[str, str]] = set()
    context = event.context or {}
    places = [context] + [context[k] for k in ("payload", "metadata", "context")
                          if isinstance(context.get(k), dict)]
    for place in places:
        for kind in ("run", "job"):
            value = place.get(f"{kind}_id")
            if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
                found.add((kind, str(value)[:200]))
    message = event.error_message or ""
    for label, value in _ID_IN_TEXT.findall(message):
        found.add(("run" if label.startswith("run") else "job", value))
    for kind, ids in open_ids.items():
        for ref in ids:
            if ref in message:
                found.add((kind, ref))
    return sorted(found)
