"""The jobs package's tables (queries/schema.py job_runs, import_jobs, job_error_links):
saving the trackers' runs and jobs, loading them after a restart, reading for the API/page."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.engine import Connection, Engine

from jobs.model import RUN_COMPLETED, RUN_RUNNING, Job, Phase, Run
from queries.reads import as_utc as _as_utc
from queries.records import iso_utc
from queries.schema import error_logs, import_jobs, job_error_links, job_runs

MEDIAN_OF = 20  # durations are shown against the median of this many completed runs


def as_utc(moment: datetime | None) -> datetime | None:
    return _as_utc(moment) if moment is not None else None


def _upsert(conn: Connection, table: Any, key: str, values: dict[str, Any]) -> None:
    # One writer (the watch thread) saves these rows: update-then-insert needs no lock.
    done = conn.execute(update(table).where(table.c[key] == values[key]).values(values))
    if done.rowcount == 0:
        conn.execute(insert(table).values(values))


def _run_row(run: Run) -> dict[str, Any]:
    return {"run_id": run.run_id, "state": run.state, "started_at": run.started_at,
            "first_seen_at": run.first_seen_at, "last_event_at": run.last_event_at,
            "ended_at": run.ended_at, "duration_seconds": run.duration_seconds,
            "failure": run.failure, "source": run.source,
            "phases": [p.as_json() for p in run.phases.values()],
            "last_event": run.last_event}


def _run_from_row(row: Any) -> Run:
    return Run(run_id=row.run_id, state=row.state, started_at=as_utc(row.started_at),
               first_seen_at=as_utc(row.first_seen_at), last_event_at=as_utc(row.last_event_at),
               ended_at=as_utc(row.ended_at), duration_seconds=row.duration_seconds,
               failure=row.failure, source=row.source,
               phases={p["name"]: Phase.from_json(p) for p in (row.phases or [])},
               last_event=row.last_event)


def _job_row(job: Job) -> dict[str, Any]:
    return {"job_id": job.job_id, "job_type": job.job_type, "status": job.status,
            "progress": job.progress, "message": job.message,
            "submitted_at": job.submitted_at, "first_seen_at": job.first_seen_at,
            "last_seen_at": job.last_seen_at, "progress_changed_at": job.progress_changed_at,
            "ended_at": job.ended_at, "raw": job.raw}


def _job_from_row(row: Any) -> Job:
    return Job(job_id=row.job_id, job_type=row.job_type, status=row.status,
               progress=row.progress, message=row.message,
               submitted_at=as_utc(row.submitted_at), first_seen_at=as_utc(row.first_seen_at),
               last_seen_at=as_utc(row.last_seen_at),
               progress_changed_at=as_utc(row.progress_changed_at),
               ended_at=as_utc(row.ended_at), raw=row.raw)


def save(engine: Engine, runs: Iterable[Run], jobs: Iterable[Job],
         links: Iterable[tuple[str, str, str, datetime]]) -> None:
    """Save changed runs and jobs, and new error links [(kind, ref_id, error_id, at)], in one
    transaction."""
    with engine.begin() as conn:
        for run in runs:
            _upsert(conn, job_runs, "run_id", _run_row(run))
        for job in jobs:
            _upsert(conn, import_jobs, "job_id", _job_row(job))
        for kind, ref, error_id, at in links:
            exists = conn.execute(select(job_error_links.c.kind).where(
                job_error_links.c.kind == kind, job_error_links.c.ref_id == ref,
                job_error_links.c.error_id == error_id)).first()
            if exists is None:
                conn.execute(insert(job_error_links).values(
                    kind=kind, ref_id=ref, error_id=error_id, linked_at=at))


def load_runs(engine: Engine, since: datetime) -> list[Run]:
    """Runs still running, and those that had an event since `since` (for a restart)."""
    query = select(job_runs).where(or_(job_runs.c.state == RUN_RUNNING,
                                       job_runs.c.last_event_at >= since))
    with engine.connect() as conn:
        return [_run_from_row(row) for row in conn.execute(query)]


def load_jobs(engine: Engine, since: datetime) -> list[Job]:
    """Jobs not in an end state, and those seen since `since` (for a restart)."""
    query = select(import_jobs).where(or_(import_jobs.c.status.in_(("submitted", "running")),
                                          import_jobs.c.last_seen_at >= since))
    with engine.connect() as conn:
        return [_job_from_row(row) for row in conn.execute(query)]


def _linked_errors(conn: Connection, kind: str, refs: list[str],
                   per_ref: int = 20) -> dict[str, list[dict[str, Any]]]:
    if not refs:
        return {}
    query = (select(job_error_links.c.ref_id, error_logs.c.error_id, error_logs.c.severity,
                    error_logs.c.error_message, error_logs.c.timestamp)
             .join(error_logs, error_logs.c.error_id == job_error_links.c.error_id)
             .where(job_error_links.c.kind == kind, job_error_links.c.ref_id.in_(refs))
             .order_by(error_logs.c.timestamp.desc()))
    found: dict[str, list[dict[str, Any]]] = {}
    for row in conn.execute(query):
        errors = found.setdefault(row.ref_id, [])
        if len(errors) < per_ref:
            errors.append({"id": row.error_id, "severity": row.severity,
                           "message": row.error_message[:300],
                           "timestamp": iso_utc(as_utc(row.timestamp))})
    return found


def _medians(conn: Connection) -> dict[str, float | None]:
    """Median run duration and median duration of each phase, over the last completed runs."""
    rows = conn.execute(select(job_runs.c.duration_seconds, job_runs.c.phases)
                        .where(job_runs.c.state == RUN_COMPLETED)
                        .order_by(job_runs.c.last_event_at.desc()).limit(MEDIAN_OF)).all()
    runs = [r.duration_seconds for r in rows if r.duration_seconds is not None]
    phases: dict[str, list[float]] = {}
    for row in rows:
        for phase in row.phases or []:
            if phase.get("durationSeconds") is not None and phase.get("state") == "completed":
                phases.setdefault(phase["name"], []).append(float(phase["durationSeconds"]))
    medians: dict[str, float | None] = {"run": statistics.median(runs) if runs else None}
    medians.update({name: statistics.median(values) for name, values in phases.items()})
    return medians


def list_runs(engine: Engine, limit: int = 50, now: datetime | None = None,
              stall: timedelta | None = None) -> list[dict[str, Any]]:
    """Runs newest first, each with its linked errors and the medians to compare with;
    `shownState` is `stalled` for a running run silent for longer than `stall`."""
    with engine.connect() as conn:
        rows = conn.execute(select(job_runs).order_by(job_runs.c.first_seen_at.desc())
                            .limit(limit)).all()
        runs = [_run_from_row(row) for row in rows]
        errors = _linked_errors(conn, "run", [r.run_id for r in runs])
        medians = _medians(conn)
    return [_run_json(run, errors.get(run.run_id, []), medians, now, stall) for run in runs]


def _run_json(run: Run, errors: list[dict[str, Any]], medians: dict[str, float | None],
              now: datetime | None, stall: timedelta | None) -> dict[str, Any]:
    shown = run.shown_state(now, stall.total_seconds()) if now and stall else run.state
    data = {**run.as_json(), "shownState": shown, "errors": errors,
            "medianDurationSeconds": medians.get("run")}
    for phase in data["phases"]:
        phase["medianDurationSeconds"] = medians.get(phase["name"])
    return data


def get_run(engine: Engine, run_id: str, now: datetime | None = None,
            stall: timedelta | None = None) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(job_runs).where(job_runs.c.run_id == run_id)).first()
        if row is None:
            return None
        run = _run_from_row(row)
        errors = _linked_errors(conn, "run", [run_id], per_ref=200)
        medians = _medians(conn)
    return _run_json(run, errors.get(run_id, []), medians, now, stall)


def list_jobs(engine: Engine, limit: int = 50) -> list[dict[str, Any]]:
    """Jobs newest first, each with its linked errors."""
    with engine.connect() as conn:
        rows = conn.execute(select(import_jobs).order_by(import_jobs.c.first_seen_at.desc())
                            .limit(limit)).all()
        jobs = [_job_from_row(row) for row in rows]
        errors = _linked_errors(conn, "job", [j.job_id for j in jobs])
    return [{**job.as_json(), "errors": errors.get(job.job_id, [])} for job in jobs]
