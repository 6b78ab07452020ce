"""The Jobs page (`/jobs`): processing runs and import jobs, newest first, with state badges,
phase progress while a run is running, durations against the median of the last runs, the
errors linked to each, and the listener check. Refreshed every second from the store (the
ingest saves what it sees every JOBS_CHECK_INTERVAL_MS), so it works on a web-only worker too.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, html
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from alerts.catalog import NO_LISTENER
from alerts.store import list_alerts
from dashboard.components import empty_state, interval, utc_text
from jobs.store import list_jobs, list_runs

# Component ids, shared by the layout, the callback and the tests.
JOBS_PAGE = "jobs-page"
JOBS_INTERVAL = "jobs-interval"
JOBS_BODY = "jobs-body"
RUNS_TABLE = "jobs-runs"
JOBS_TABLE = "jobs-jobs"
LISTENERS = "jobs-listeners"
REFRESH_MS = 1000
TONES = {"running": "primary", "completed": "success", "failed": "danger",
         "stalled": "warning", "submitted": "secondary", "lost": "dark"}
UNREADABLE = "The store cannot be read right now; the page retries every second."


def _badge(state: str) -> dbc.Badge:
    return dbc.Badge(state, color=TONES.get(state, "secondary"), className="job-state")


def duration_text(seconds: float | None, median: float | None = None) -> str:
    """`12m 5s`, with `(median 11m 40s)` when there is one to compare with."""
    if seconds is None:
        return "—"
    whole = round(seconds)
    text = f"{whole // 60}m {whole % 60}s" if whole >= 60 else f"{whole}s"
    return text if median is None else f"{text} (median {duration_text(median)})"


def _errors(errors: list[dict[str, Any]]) -> Any:
    if not errors:
        return ""
    return html.Details([
        html.Summary(f"{len(errors)} linked error{'s' if len(errors) != 1 else ''}"),
        html.Ul([html.Li([html.A(e["id"][:24], href=f"/errors/{e['id']}"),
                          f" {e['severity']}: {e['message'][:160]}"]) for e in errors],
                className="small mb-0")])


def _phases(run: dict[str, Any]) -> Any:
    rows = []
    for phase in run["phases"]:
        percent = phase.get("percent")
        label = f"{phase['name']} {percent:.0f}%" if percent is not None else phase["name"]
        if phase.get("completedSymbols") is not None and phase.get("totalSymbols"):
            label += f" ({phase['completedSymbols']}/{phase['totalSymbols']})"
        if phase["state"] == "running" and run["state"] == "running":
            bar: Any = dbc.Progress(value=percent or 0, label=label, striped=True,
                                    animated=run["shownState"] == "running",
                                    className="phase-progress mb-1")
        else:
            extra = []
            if phase.get("successRate") is not None:
                extra.append(f"success {phase['successRate']:g}%")
            extra.append(duration_text(phase.get("durationSeconds"),
                                       phase.get("medianDurationSeconds")))
            bar = html.Div([_badge(phase["state"]), f" {label} · {' · '.join(extra)}"],
                           className="small")
        rows.append(bar)
    return html.Div(rows) if rows else html.Span("no phase yet", className="text-body-secondary")


def runs_table(runs: list[dict[str, Any]]) -> Any:
    if not runs:
        return empty_state("No processing run seen yet",
                           "Runs appear as TickStockPL publishes on the processing channels.")
    body = [html.Tr([
        html.Td(html.Code(r["runId"])),
        html.Td(_badge(r["shownState"])),
        html.Td(utc_text(r["startedAt"] or r["firstSeenAt"])),
        html.Td(_phases(r), style={"minWidth": "18rem"}),
        html.Td(duration_text(r["durationSeconds"], r["medianDurationSeconds"])),
        html.Td([html.Div(r["failure"] or "", className="small"), _errors(r["errors"])]),
    ], className="run-row", **{"data-run": r["runId"]}) for r in runs]
    head = html.Thead(html.Tr([html.Th(t) for t in
                               ("Run", "State", "Started", "Phases", "Duration", "Problems")]))
    return dbc.Table([head, html.Tbody(body)], id=RUNS_TABLE, size="sm", hover=True)


def jobs_table(jobs: list[dict[str, Any]]) -> Any:
    if not jobs:
        return empty_state("No import job seen yet",
                           "Jobs appear as their status keys do (tickstock.jobs.status:*).")
    body = [html.Tr([
        html.Td(html.Code(j["jobId"])), html.Td(j["jobType"] or "—"),
        html.Td(_badge(j["status"])),
        html.Td(f"{j['progress']:g}%" if j["progress"] is not None else "—"),
        html.Td(utc_text(j["submittedAt"] or j["firstSeenAt"])),
        html.Td([html.Div(j["message"] or "", className="small"), _errors(j["errors"])]),
    ], className="job-row") for j in jobs]
    head = html.Thead(html.Tr([html.Th(t) for t in
                               ("Job", "Type", "Status", "Progress", "Submitted", "Message")]))
    return dbc.Table([head, html.Tbody(body)], id=JOBS_TABLE, size="sm", hover=True)


def listeners_view(engine: Engine) -> Any:
    """The listener check, from the firing `no_listener` alerts."""
    firing = [a for a in list_alerts(engine, "firing") if a["rule"] == NO_LISTENER]
    if not firing:
        return dbc.Alert("Every channel TickStockPL must listen on has a listener.",
                         color="success", className="py-2", id=LISTENERS)
    return dbc.Alert([html.Div(a["summary"]) for a in firing], color="danger",
                     className="py-2", id=LISTENERS)


def body(engine: Engine, stall: timedelta, now: datetime | None = None) -> Any:
    now = now or datetime.now(UTC)
    try:
        runs, jobs = list_runs(engine, 30, now, stall), list_jobs(engine, 30)
        listeners = listeners_view(engine)
    except SQLAlchemyError:
        return dbc.Alert(UNREADABLE, color="warning")
    return [listeners, html.H5("Processing runs", className="mt-3"), runs_table(runs),
            html.H5("Import jobs", className="mt-3"), jobs_table(jobs)]


def layout(engine: Engine, stall: timedelta) -> Any:
    return html.Div([html.H4("Jobs and runs"), html.Div(body(engine, stall), id=JOBS_BODY),
                     interval(JOBS_INTERVAL, REFRESH_MS)], id=JOBS_PAGE)


def register_callbacks(app: Dash, engine: Engine, stall: timedelta) -> None:
    @app.callback(Output(JOBS_BODY, "children"), Input(JOBS_INTERVAL, "n_intervals"),
                  prevent_initial_call=True)
    def refresh(_tick):
        return body(engine, stall)
