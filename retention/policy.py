"""What retention removes and what a run reports: the rules per table, the policy from
settings, a run's report, a dry run's plan and the record a run leaves."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from queries.records import iso_utc

JOB = "retention"
# Tables whose rows count as "removed" (error_ids is bookkeeping).
COUNTED = ("error_logs", "rejected_messages", "alerts", "error_groups", "error_group_symbols",
           "alert_silences")

Clock = Callable[[], datetime]
Progress = Callable[[str, int], None]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Rule:
    """What retention removes from one table besides error_logs: rows whose `time_column` is
    before the cutoff and that meet `where` (SQL on alias `t`); skipped when the table or a
    needed column is missing (tables other features add)."""

    table: str
    time_column: str
    where: str = ""
    needs: tuple[str, ...] = ()
    archive: bool = True
    other_tables: tuple[str, ...] = ()  # tables `where` reads


RULES = (
    Rule("rejected_messages", "received_at"),
    Rule("alerts", "ended_at", "t.state = 'resolved'", ("state",)),
    # A group with events left is kept whatever its last_seen says; a resolved or ignored one
    # is kept even without events, so that its next event is a regression or stays ignored.
    Rule("error_groups", "last_seen", "t.state NOT IN ('resolved', 'ignored') AND NOT EXISTS "
         "(SELECT 1 FROM error_logs e WHERE e.fingerprint = t.fingerprint)",
         ("state", "fingerprint")),
    Rule("error_group_symbols", "last_seen", "NOT EXISTS "
         "(SELECT 1 FROM error_groups g WHERE g.fingerprint = t.fingerprint)", ("fingerprint",),
         other_tables=("error_groups",)),
    Rule("alert_silences", "until", archive=False),
    Rule("job_claims", "claimed_at", archive=False),
    # Delivered (or given up) webhook notices; a pending one stays however old.
    Rule("alert_outbox", "created_at", "t.state <> 'pending'", ("state",), archive=False),
    # Runs and import jobs (jobs/): ended ones go like any history; a running run or an open
    # job stays however old, so a restart still follows it. Their error links go with them.
    Rule("job_runs", "last_event_at", "t.state <> 'running'", ("state",), archive=False),
    Rule("import_jobs", "last_seen_at", "t.status IN ('completed', 'failed', 'lost')",
         ("status",), archive=False),
    Rule("job_error_links", "linked_at", archive=False),
)


@dataclass(frozen=True)
class RetentionPolicy:
    days: int = 30
    archive_dir: str = ""
    batch_rows: int = 10_000
    partitions_ahead: int = 7

    @classmethod
    def from_settings(cls, settings: Any) -> RetentionPolicy:
        return cls(days=settings.retention_days, archive_dir=settings.retention_archive_dir,
                   batch_rows=settings.retention_batch_rows,
                   partitions_ahead=settings.retention_partitions_ahead)


@dataclass
class RunReport:
    started_at: datetime
    cutoff: datetime
    layout: str = ""
    finished_at: datetime | None = None
    ok: bool = False
    error: str | None = None
    skipped: str | None = None
    removed: dict[str, int] = field(default_factory=dict)
    partitions_created: list[str] = field(default_factory=list)
    partitions_dropped: list[str] = field(default_factory=list)
    partitions_trimmed: list[str] = field(default_factory=list)
    archive_files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    duration_seconds: float = 0.0
    longest_lock_seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # step -> seconds

    @property
    def rows_removed(self) -> int:
        return sum(n for table, n in self.removed.items() if table in COUNTED)

    def count(self, table: str, rows: int) -> None:
        self.removed[table] = self.removed.get(table, 0) + rows

    def as_json(self) -> dict[str, Any]:
        return {
            "startedAt": iso_utc(self.started_at),
            "finishedAt": iso_utc(self.finished_at) if self.finished_at else None,
            "cutoff": iso_utc(self.cutoff), "layout": self.layout, "ok": self.ok,
            "error": self.error, "skipped": self.skipped, "rowsRemoved": self.rows_removed,
            "removed": dict(self.removed), "partitionsCreated": self.partitions_created,
            "partitionsDropped": self.partitions_dropped,
            "partitionsTrimmed": self.partitions_trimmed, "archiveFiles": self.archive_files,
            "notes": self.notes, "durationSeconds": round(self.duration_seconds, 3),
            "longestLockSeconds": round(self.longest_lock_seconds, 4),
            "phases": {step: round(seconds, 3) for step, seconds in self.phases.items()},
        }


@dataclass
class Plan:
    """What a run would do now: rows per table and day, partitions to drop, trim and make."""

    cutoff: datetime
    layout: str
    days: dict[str, dict[str, int]] = field(default_factory=dict)
    drop: list[str] = field(default_factory=list)
    trim: list[str] = field(default_factory=list)
    create: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(sum(days.values()) for days in self.days.values())


@dataclass
class RunRecord:
    """The last run as kept in maintenance_runs."""

    started_at: datetime
    finished_at: datetime | None
    ok: bool
    rows_removed: int
    detail: dict[str, Any]
