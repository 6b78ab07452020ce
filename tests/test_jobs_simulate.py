"""`python -m ingest.simulate --run / --job` against the running monitor: every state."""

from __future__ import annotations

from jobs.simulate import simulate_job, simulate_run
from tests.conftest import wait_for


def test_simulated_runs_and_jobs_reach_their_states(start_monitor, redis_client,
                                                    make_settings) -> None:
    fast = {"jobs_check_interval_ms": 100, "run_stall_seconds": 1,
            "job_submitted_timeout_seconds": 1}
    monitor = start_monitor(**fast)
    settings = make_settings(**fast)
    wait_for(lambda: monitor.jobs.reader.subscribed)
    client = monitor.dash_app.server.test_client()
    healthy = simulate_run(redis_client, settings, "healthy", 0.0, lambda line: None)
    failed = simulate_run(redis_client, settings, "failed", 0.0, lambda line: None)
    # Last: a run stalled before a newer run started is history, not an alert.
    stalled = simulate_run(redis_client, settings, "stalled", 0.0, lambda line: None)
    failed_job = simulate_job(redis_client, settings, "failed", 0.0, lambda line: None)
    unpicked = simulate_job(redis_client, settings, "unpicked", 0.0, lambda line: None)

    def states() -> dict[str, str]:
        found = {r["runId"]: r["shownState"] for r in client.get("/api/runs").get_json()}
        found.update({j["jobId"]: j["status"] for j in client.get("/api/jobs").get_json()})
        return found

    wait_for(lambda: {k: states().get(k) for k in (healthy, stalled, failed, failed_job,
                                                    unpicked)}
             == {healthy: "completed", stalled: "stalled", failed: "completed",
                 failed_job: "failed", unpicked: "submitted"}, message="every state")
    wait_for(lambda: {(a["rule"], a["key"]) for a in client.get("/api/alerts").get_json()}
             >= {("run_stalled", stalled), ("run_failed", failed), ("job_failed", failed_job),
                 ("job_stuck", unpicked)}, message="their alerts")
