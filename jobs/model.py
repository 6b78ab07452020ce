"""Runs, their phases, and import jobs: plain data, with the JSON the API and page show."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from queries.records import iso_utc, parse_iso_utc

RUN_RUNNING, RUN_COMPLETED, RUN_FAILED = "running", "completed", "failed"
# Shown, never stored: a running run that has been silent for longer than the stall limit.
RUN_STALLED = "stalled"
JOB_OPEN = frozenset({"submitted", "running"})
JOB_ENDED = frozenset({"completed", "failed", "lost"})


def _when(moment: datetime | None) -> str | None:
    return iso_utc(moment) if moment else None


@dataclass
class Phase:
    """One phase of a run (import, cache, indicators, patterns), from its own events."""

    name: str
    state: str = RUN_RUNNING  # running | completed | failed
    started_at: datetime | None = None
    updated_at: datetime | None = None
    completed_at: datetime | None = None
    completed_symbols: int | None = None
    total_symbols: int | None = None
    percent: float | None = None
    eta_seconds: float | None = None
    success_rate: float | None = None  # a percentage
    duration_seconds: float | None = None
    last_payload: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "state": self.state, "startedAt": _when(self.started_at),
                "updatedAt": _when(self.updated_at), "completedAt": _when(self.completed_at),
                "completedSymbols": self.completed_symbols, "totalSymbols": self.total_symbols,
                "percent": self.percent, "etaSeconds": self.eta_seconds,
                "successRate": self.success_rate, "durationSeconds": self.duration_seconds,
                "lastPayload": self.last_payload}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Phase:
        return cls(name=data["name"], state=data.get("state") or RUN_RUNNING,
                   started_at=parse_iso_utc(data.get("startedAt")),
                   updated_at=parse_iso_utc(data.get("updatedAt")),
                   completed_at=parse_iso_utc(data.get("completedAt")),
                   completed_symbols=data.get("completedSymbols"),
                   total_symbols=data.get("totalSymbols"), percent=data.get("percent"),
                   eta_seconds=data.get("etaSeconds"), success_rate=data.get("successRate"),
                   duration_seconds=data.get("durationSeconds"),
                   last_payload=data.get("lastPayload") or {})


@dataclass
class Run:
    """A daily processing run: every event with its run_id, in the order received."""

    run_id: str
    first_seen_at: datetime
    last_event_at: datetime
    state: str = RUN_RUNNING
    started_at: datetime | None = None  # when its processing_started arrived
    ended_at: datetime | None = None
    duration_seconds: float | None = None
    failure: str | None = None
    source: str | None = None
    phases: dict[str, Phase] = field(default_factory=dict)
    last_event: dict[str, Any] | None = None
    version: int = 0  # in memory only: grows with each change, to know what to save

    def shown_state(self, now: datetime, stall_seconds: float) -> str:
        if self.state == RUN_RUNNING and \
                (now - self.last_event_at).total_seconds() >= stall_seconds:
            return RUN_STALLED
        return self.state

    def as_json(self) -> dict[str, Any]:
        return {"runId": self.run_id, "state": self.state, "startedAt": _when(self.started_at),
                "firstSeenAt": _when(self.first_seen_at),
                "lastEventAt": _when(self.last_event_at), "endedAt": _when(self.ended_at),
                "durationSeconds": self.duration_seconds, "failure": self.failure,
                "source": self.source,
                "phases": [p.as_json() for p in self.phases.values()],
                "lastEvent": self.last_event}


@dataclass
class Job:
    """An import job, as its status key `tickstock.jobs.status:<job_id>` says."""

    job_id: str
    status: str
    first_seen_at: datetime
    last_seen_at: datetime
    progress_changed_at: datetime
    job_type: str | None = None
    progress: float | None = None
    message: str | None = None
    submitted_at: datetime | None = None
    ended_at: datetime | None = None
    raw: dict[str, Any] | None = None
    version: int = 0

    @property
    def is_open(self) -> bool:
        return self.status not in JOB_ENDED

    def as_json(self) -> dict[str, Any]:
        return {"jobId": self.job_id, "jobType": self.job_type, "status": self.status,
                "progress": self.progress, "message": self.message,
                "submittedAt": _when(self.submitted_at),
                "firstSeenAt": _when(self.first_seen_at),
                "lastSeenAt": _when(self.last_seen_at),
                "progressChangedAt": _when(self.progress_changed_at),
                "endedAt": _when(self.ended_at), "raw": self.raw}
