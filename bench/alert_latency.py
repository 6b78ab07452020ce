"""How long from PUBLISH of a critical error to the webhook receiver: p50, p95, max.

    python bench/alert_latency.py [--count 50] [--redis-url redis://127.0.0.1:6379/0]

Runs the real monitor (app.build) on a throwaway SQLite file and channel, with a local HTTP
receiver as ALERT_WEBHOOK_URL. Each critical comes from a new group, so each must notify.
Target: p95 at most 1 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import app as app_module
from settings import Settings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()

    arrived: dict[str, float] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # the name http.server calls
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            arrived[body["sample"]["id"]] = time.perf_counter()
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    folder = Path(tempfile.mkdtemp(prefix="alert-bench-"))
    channel = f"bench:{uuid.uuid4().hex}:errors"
    settings = Settings(redis_url=args.redis_url, error_channel=channel,
                        database_url=f"sqlite:///{folder}/errors.db",
                        spool_dir=str(folder / "spool"),
                        alert_webhook_url=f"http://127.0.0.1:{server.server_address[1]}/")
    monitor = app_module.build(settings)
    monitor.start()
    client = redis.Redis.from_url(args.redis_url)
    while not monitor.ingest.subscriber.subscribed:
        time.sleep(0.05)
    sent: dict[str, float] = {}
    for i in range(args.count):
        error_id = f"bench-{i}"
        message = {"error_id": error_id, "severity": "critical", "category": "network",
                   "error_type": f"Outage{i}", "message": f"feed {i} down",
                   "context": {"component": f"Feed{i}"}}
        sent[error_id] = time.perf_counter()
        client.publish(channel, json.dumps(message))
        time.sleep(0.2)  # one critical at a time, as an outage starts
    deadline = time.monotonic() + 10
    while len(arrived) < args.count and time.monotonic() < deadline:
        time.sleep(0.05)
    monitor.stop()
    server.shutdown()
    latencies = sorted((arrived[k] - sent[k]) * 1000 for k in arrived)
    if not latencies:
        print("no notice arrived")
        return 1
    p95 = latencies[max(0, int(len(latencies) * 0.95) - 1)]
    print(f"criticals published: {args.count}, notices received: {len(latencies)}")
    print(f"publish -> webhook latency ms: p50 {statistics.median(latencies):.0f}, "
          f"p95 {p95:.0f}, max {latencies[-1]:.0f}  (target p95 <= 1000)")
    return 0 if len(latencies) == args.count and p95 <= 1000 else 1


if __name__ == "__main__":
    sys.exit(main())
