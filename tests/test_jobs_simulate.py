"""`python -m ingest.simulate --run / --job` against the running monitor: every state."""

from __future__ import annotations

import pytest

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


def test_on_a_redis_cluster_simulated_runs_and_jobs_reach_their_states(
        cluster_settings, redis_cluster, channel) -> None:
    """Issue 16: with REDIS_CLUSTER=true the simulator SPUBLISHes, the processing reader
    SSUBSCRIBEs on every node that owns one of the listed channels, the watch SCANs the job
    status keys on every node and counts the data loader's shard subscribers."""
    import app as app_module
    from jobs.simulate import PHASES
    from tests.conftest import jobs_names

    prefix = jobs_names(channel)["prefix"]
    listed = [f"{prefix}:processing:status"] + [
        f"{prefix}:{phase}:{step}" for phase in PHASES
        for step in ("started", "progress", "completed")]
    settings = cluster_settings(processing_channels=",".join(listed),
                                jobs_check_interval_ms=100, run_stall_seconds=1,
                                job_submitted_timeout_seconds=1, no_listener_seconds=1)
    monitor = app_module.build(settings)
    cluster = redis_cluster.client()
    monitor.start()
    try:
        wait_for(lambda: monitor.jobs.reader.subscribed and monitor.ingest.subscriber.subscribed)
        nodes = {cluster.get_node_from_key(name).name for name in listed}
        assert len(nodes) > 1  # the channels are spread over the cluster's nodes
        client = monitor.dash_app.server.test_client()
        healthy = simulate_run(cluster, settings, "healthy", 0.0, lambda line: None)
        failed_job = simulate_job(cluster, settings, "failed", 0.0, lambda line: None)

        def states() -> dict[str, str]:
            found = {r["runId"]: r["shownState"] for r in client.get("/api/runs").get_json()}
            found.update({j["jobId"]: j["status"] for j in client.get("/api/jobs").get_json()})
            return found

        try:
            wait_for(lambda: {k: states().get(k) for k in (healthy, failed_job)}
                     == {healthy: "completed", failed_job: "failed"}, message="both states")
        except pytest.fail.Exception:
            # Seen once in CI on a loaded machine: say what the API showed instead.
            pytest.fail(f"both states not reached within 10 s: the API shows "
                        f"{ {k: states().get(k) for k in (healthy, failed_job)} }, "
                        f"reader {monitor.jobs.reader.status()}")
        wait_for(lambda: ("job_failed", failed_job) in {
            (a["rule"], a["key"]) for a in client.get("/api/alerts").get_json()},
                 message="job_failed")
        # Nobody listens on the data loader's shard channel: no_listener.
        wait_for(lambda: "no_listener" in {a["rule"]
                                           for a in client.get("/api/alerts").get_json()},
                 message="no_listener")
        # A data loader SSUBSCRIBEs: the watch sees it on the channel's node (SHARDNUMSUB).
        loader = cluster.pubsub()
        loader.ssubscribe(settings.listener_channel_list[0])
        wait_for(lambda: [row["subscribers"] for row in monitor.jobs.watch.status()["listeners"]]
                 == [1], message="the data loader counted")
        assert monitor.jobs.watch.status()["lastRedisError"] is None
        loader.close()
    finally:
        monitor.stop()
        cluster.close()
