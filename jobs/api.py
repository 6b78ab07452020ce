"""REST routes for runs and jobs: `GET /api/jobs`, `/api/runs`, `/api/runs/<run_id>`.

A route raises and the app's handlers answer (dashboard/errors.py): 400 for a bad parameter,
404 for an unknown run, 503 while the store cannot be read.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from flask import Blueprint, abort, jsonify
from sqlalchemy.engine import Engine

from dashboard.params import int_param
from jobs.store import get_run, list_jobs, list_runs


def create_jobs_blueprint(engine: Engine, run_stall_seconds: float = 600,
                          clock: Callable[[], datetime] | None = None) -> Blueprint:
    api = Blueprint("jobs_api", __name__, url_prefix="/api")
    now = clock or (lambda: datetime.now(UTC))
    stall = timedelta(seconds=run_stall_seconds)

    @api.get("/jobs")
    def jobs():
        return jsonify(list_jobs(engine, int_param("limit", 50, 1, 500)))

    @api.get("/runs")
    def runs():
        return jsonify(list_runs(engine, int_param("limit", 50, 1, 500), now(), stall))

    @api.get("/runs/<run_id>")
    def run(run_id: str):
        found = get_run(engine, run_id[:200], now(), stall)
        if found is None:
            abort(404, f"no run with id {run_id[:200]!r}")
        return jsonify(found)

    return api
