"""Sample runs and jobs, as TickStockPL and TickStockAppV2 publish them, for
`python -m ingest.simulate --run ... / --job ...`: every state of the Jobs page in a minute.

- `--run healthy`: processing_started, then import, cache, indicators and patterns each
  started, progressing and completed (success 99.6 %), then processing_completed.
- `--run stalled`: a run that stops talking half-way through its import (run_stalled after
  RUN_STALL_SECONDS).
- `--run failed`: a run whose indicators phase completes with success 80 % (run_failed).
- `--job failed`: a job published and followed to `failed` through its status key.
- `--job unpicked`: a job published that nobody picks up (0 subscribers; job_stuck after
  JOB_SUBMITTED_TIMEOUT_SECONDS, and no_listener while no data loader is subscribed).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from live import redis_client
from settings import Settings

RUNS = ("healthy", "stalled", "failed")
JOBS = ("failed", "unpicked")
PHASES = ("import", "cache", "indicators", "patterns")
Say = Callable[[str], None]


def _envelope(event: str, payload: dict[str, Any]) -> bytes:
    return orjson.dumps({"event": event, "timestamp": datetime.now(UTC).isoformat(),
                         "source": "daily_processing", "version": "1.0", "payload": payload})


def _channel(settings: Settings, name: str) -> str:
    """The processing channel for `name` (processing:status, import:progress, ...), under the
    prefix the settings use (tickstock by default)."""
    first = settings.processing_channel_list[0] if settings.processing_channel_list else \
        "tickstock:processing:status"
    prefix = first.split(":processing")[0] if ":processing" in first else "tickstock"
    return f"{prefix}:{name}"


def simulate_run(client: redis_client.Client, settings: Settings, kind: str, step: float,
                 say: Say) -> str:
    run_id = f"sim-run-{uuid.uuid4().hex[:8]}"

    def send(channel: str, event: str, **payload: Any) -> None:
        reached = redis_client.publish(client, _channel(settings, channel),
                                 _envelope(event, {"run_id": run_id, **payload}))
        say(f"{event:<24} {run_id} -> {reached} subscriber(s)")

    send("processing:status", "processing_started", phases=list(PHASES))
    total = 500
    for phase in PHASES:
        send(f"{phase}:started", f"{phase}_started", total_symbols=total)
        for done in (100, 250, 400):
            time.sleep(step)
            send(f"{phase}:progress", f"{phase}_progress", completed_symbols=done,
                 total_symbols=total, percent_complete=100.0 * done / total,
                 eta_seconds=round(step * (total - done) / 150, 1))
            if kind == "stalled" and done == 250:
                say(f"{run_id} now stops talking: run_stalled fires after "
                    f"{settings.run_stall_seconds} s")
                return run_id
        rate = 80.0 if kind == "failed" and phase == "indicators" else 99.6
        send(f"{phase}:completed", f"{phase}_completed", total_symbols=total,
             success_rate=rate, duration_seconds=round(4 * step, 2))
    send("processing:status", "processing_completed", duration_seconds=round(16 * step, 2))
    return run_id


def simulate_job(client: redis_client.Client, settings: Settings, kind: str, step: float,
                 say: Say) -> str:
    job_id = str(uuid.uuid4())
    channel = (settings.listener_channel_list or ["tickstock.jobs.data_load"])[0]
    key = settings.job_status_keys.rstrip("*") + job_id
    now = datetime.now(UTC).isoformat()
    reached = redis_client.publish(client, channel, orjson.dumps({
        "job_id": job_id, "job_type": "historical_load", "symbols": ["AAPL", "MSFT"],
        "timeframes": ["daily"], "years": 1, "requested_by": "simulate", "timestamp": now}))
    say(f"job {job_id} published on {channel} -> {reached} subscriber(s)")

    def status(state: str, progress: float, message: str) -> None:
        client.set(key, orjson.dumps({"status": state, "progress": progress,
                                      "message": message, "submitted_at": now}), ex=86_400)
        say(f"{key} = {state} {progress:g}%")

    status("submitted", 0, "queued")
    if kind == "unpicked":
        say(f"nobody picks it up: job_stuck fires after "
            f"{settings.job_submitted_timeout_seconds} s")
        return job_id
    for progress in (10, 30):
        time.sleep(step)
        status("running", progress, "loading bars")
    time.sleep(step)
    status("failed", 30, "Polygon.io returned 403 for MSFT")
    return job_id
