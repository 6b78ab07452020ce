"""How far several ingest processes go on one Redis Stream and one PostgreSQL.

    python bench/scale_out.py [--count 60000] [--processes 1,2,3] [--baseline-count 3000]
        [--pg-admin-url postgresql://postgres@127.0.0.1:5432/postgres]
        [--redis-url redis://127.0.0.1:6379/0]

For each N in --processes: a fresh database, N `python -m ingest` processes
(INGEST_SOURCE=stream, one consumer group, their own STREAM_CONSUMER and SPOOL_DIR), and once
all N report, --count realistic messages (bench/ingest_throughput.py's mix) added to the
stream as fast as pipelined XADDs go; the clock runs from the first XADD until every message
is accounted for in PostgreSQL (rows and dead letters counted with SELECT; re-sent copies
are stored once). It prints the total rate, each process's share and rate (from
its heartbeat), and the CPU each part used per message: the ingest processes (reader included),
the database's PostgreSQL backends and redis-server, with PostgreSQL's share of all of it.

The reference, measured in the same run: the one-INSERT-per-message writer of
bench/ingest_throughput.py (--baseline-count messages); every rate is also printed as a
ratio to it, since machines here differ about 3x from day to day.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import ingest_throughput as single  # noqa: E402 - the sibling bench, for its messages

from live.follower import LiveFeedFollower  # noqa: E402


def _accounted(db_url: str) -> int:
    """Rows and dead letters stored."""
    return single.table_count(db_url, "error_logs") + single.table_count(
        db_url, "rejected_messages")


def _cpu_of(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        total += single._proc_cpu(f"/proc/{pid}/stat") or 0.0
        # The reader is a child process of each ingest.
        children = Path(f"/proc/{pid}/task/{pid}/children")
        if children.exists():
            for child in children.read_text().split():
                total += single._proc_cpu(f"/proc/{child}/stat") or 0.0
    return total


def run(n: int, args: argparse.Namespace, databases: single.Databases,
        messages: list[bytes], expected: single.Expected) -> dict[str, object]:
    rows = expected.published - expected.duplicates - expected.malformed
    db_url = databases.create(f"scale{n}")
    stream = f"bench:{uuid.uuid4().hex}:stream"
    channel = f"bench:{uuid.uuid4().hex}:errors"
    client = redis.Redis.from_url(args.redis_url)
    folder = Path(tempfile.mkdtemp(prefix="tsem-scale-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))}
    env.update({"PYTHONPATH": str(ROOT), "DATABASE_URL": db_url, "REDIS_URL": args.redis_url,
                "ERROR_CHANNEL": channel, "INGEST_SOURCE": "stream", "ERROR_STREAM": stream,
                "STORE_MIN_SEVERITY": "debug", "LOG_FORMAT": "json"})
    follower = LiveFeedFollower(args.redis_url, channel, 10)
    follower.start()
    procs = [subprocess.Popen(
        [sys.executable, "-m", "ingest"], cwd=folder,
        env={**env, "STREAM_CONSUMER": f"bench-{i}", "SPOOL_DIR": str(folder / f"spool-{i}")},
        stdout=subprocess.DEVNULL, stderr=open(folder / f"ingest-{i}.log", "wb"))
        for i in range(n)]
    shares: list[int] = []
    try:
        # Start-up (imports, schema, spool) is not what is measured: all N first report.
        while len(follower.status().get("ingestProcesses") or []) < n:
            time.sleep(0.1)
        pids = [p.pid for p in procs]
        ingest_cpu = -_cpu_of(pids)
        postgres_cpu = -_postgres_cpu(db_url)
        redis_cpu = _redis_cpu(client)
        started = time.monotonic()
        for start in range(0, len(messages), 1000):
            pipe = client.pipeline(transaction=False)
            for payload in messages[start:start + 1000]:
                pipe.xadd(stream, {"data": payload})
            pipe.execute()
        deadline = started + args.timeout
        while time.monotonic() < deadline:
            status = follower.status()
            processes = status.get("ingestProcesses") or []
            if processes:
                shares = [p.get("received") or 0 for p in processes]
            if sum(shares) >= expected.published and _accounted(db_url) >= (
                    rows + expected.malformed):
                break
            time.sleep(0.1)
        seconds = time.monotonic() - started
        ingest_cpu += _cpu_of(pids)
        postgres_cpu += _postgres_cpu(db_url)
        redis_used = _redis_cpu(client) - redis_cpu
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(60)
        follower.stop()
        client.delete(stream)
        client.close()
        shutil.rmtree(folder, ignore_errors=True)
    stored = single.table_count(db_url, "error_logs")
    total_cpu = ingest_cpu + postgres_cpu + redis_used
    count = expected.published
    return {"n": n, "seconds": seconds, "rate": count / seconds, "stored": stored,
            "expected_rows": rows, "shares": shares, "ingest_us": 1e6 * ingest_cpu / count,
            "postgres_us": 1e6 * postgres_cpu / count, "redis_us": 1e6 * redis_used / count,
            "postgres_share": postgres_cpu / total_cpu if total_cpu else 0.0}


def _postgres_cpu(db_url: str) -> float:
    return sum(single._proc_cpu(f"/proc/{pid}/stat") or 0.0
               for pid in single._backend_pids(db_url))


def _redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=60_000)
    parser.add_argument("--processes", default="1,2,3")
    parser.add_argument("--baseline-count", type=int, default=3000)
    parser.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    counts = [int(n) for n in args.processes.split(",") if n.strip()]
    spec = single.MessageSpec(count=args.count, prefix=f"scale-{uuid.uuid4().hex[:6]}")
    messages, expected = single.make_messages(spec)
    databases = single.Databases(args.pg_admin_url)
    try:
        baseline_args = argparse.Namespace(
            redis_url=args.redis_url, publish_chunk=500, store_min_severity="debug",
            idle_timeout=10.0)
        base = single.run_baseline(
            baseline_args, databases.create("baseline"),
            single.MessageSpec(count=args.baseline_count, prefix="ref", seed=8))
        reference = base.received / base.seconds if base.seconds else 0.0
        print(f"reference: one INSERT and commit per message: {reference:,.0f} msg/s "
              f"({base.received:,} messages)")
        print(f"{'processes':>9} {'msg/s':>9} {'x ref':>6} {'per process (share, msg/s)':<40} "
              f"{'µs/msg ingest':>13} {'postgres':>9} {'redis':>6} {'pg share':>8}")
        for n in counts:
            result = run(n, args, databases, messages, expected)
            seconds = float(result["seconds"])
            shares = result["shares"]
            per = ", ".join(f"{s:,} ({s / seconds:,.0f}/s)" for s in shares)
            print(f"{n:>9} {result['rate']:>9,.0f} {float(result['rate']) / reference:>6.1f} "
                  f"{per:<40} {result['ingest_us']:>13.1f} {result['postgres_us']:>9.1f} "
                  f"{result['redis_us']:>6.1f} {float(result['postgres_share']):>8.0%}")
            if result["stored"] != result["expected_rows"]:
                print(f"  stored {result['stored']:,}, expected {result['expected_rows']:,}")
    finally:
        databases.drop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
