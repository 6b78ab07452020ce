"""The monitor's own status: JSON for tools, Prometheus text for scrapers."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from live.status import StatusSource

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"

# counter name -> help text; the names are the keys of the status' `counters`.
_COUNTERS = {
    "received": "Messages read from Redis and journaled",
    "replayed": "Messages replayed from the spool left by an earlier run",
    "dropped": "Messages refused because the spool was full or unwritable",
    "stored": "Errors written to the store",
    "duplicate": "Messages whose error_id was already stored",
    "rejected": "Malformed messages sent to the dead-letter table",
    "refused": "Rows the database refused, sent to the dead-letter table",
    "log_only": "Messages below STORE_MIN_SEVERITY, written to the log file only",
    "reconnects": "Times the Redis subscription was lost",
}
_GAUGES = {
    "spool_unread": "Messages in the spool not yet processed",
    "spool_bytes": "Bytes in the spool not yet committed to the store",
    "pending_write": "Events waiting for the database writer",
}


class _StatusCollector:
    """Reads the live status at scrape time, so the counters are never stale or doubled."""

    def __init__(self, status: StatusSource) -> None:
        self.status = status

    def collect(self):
        status = self.status()
        counters = status["counters"]
        for name, help_text in _COUNTERS.items():
            family = CounterMetricFamily(f"tickstock_monitor_{name}", help_text)
            family.add_metric([], counters[name])
            yield family
        for name, help_text in _GAUGES.items():
            family = GaugeMetricFamily(f"tickstock_monitor_{name}", help_text)
            family.add_metric([], counters[name])
            yield family
        yield GaugeMetricFamily("tickstock_monitor_subscribed",
                                "1 while subscribed to the error channel",
                                value=1 if status["subscribed"] else 0)
        yield GaugeMetricFamily("tickstock_monitor_store_ok",
                                "1 while the store accepts writes",
                                value=0 if status["storeOk"] is False else 1)
        yield GaugeMetricFamily("tickstock_monitor_last_batch_seconds",
                                "Time the last batch took to commit",
                                value=status["lastBatchSeconds"])


def create_monitor_blueprint(status: StatusSource) -> Blueprint:
    """`GET /api/monitor/status` (JSON) and `GET /metrics` (Prometheus text)."""
    blueprint = Blueprint("monitor_api", __name__)
    registry = CollectorRegistry(auto_describe=True)
    registry.register(_StatusCollector(status))

    @blueprint.get("/api/monitor/status")
    def monitor_status():
        return jsonify(status())

    @blueprint.get("/metrics")
    def metrics():
        return Response(generate_latest(registry), content_type=PROMETHEUS_TEXT)

    return blueprint
