"""The maintenance commands, with a progress bar on a terminal:

    python -m retention --dry-run         what would go, counts per day
    python -m retention --now             run it now
    python -m retention --restore FILE..  load archives back (duplicates ignored)
    python -m retention --migrate         make an unpartitioned error_logs partitioned
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any

from queries.engine import make_engine
from queries.records import iso_utc
from queries.schema import create_schema
from retention.policy import Plan, RetentionPolicy
from retention.run import Retention, summary
from settings import SettingsError, load_settings


class _Bar:
    """A progress line on stderr when it is a terminal (\\r), plain lines otherwise."""

    def __init__(self, total: int, stream: Any = sys.stderr) -> None:
        self.total = max(total, 0)
        self.stream = stream
        self.tty = stream.isatty()
        self.started = time.monotonic()
        self._last = 0.0

    def __call__(self, label: str, done: int) -> None:
        now = time.monotonic()
        if self.tty:
            if now - self._last < 0.1 and done < self.total:
                return
            self._last = now
            share = min(1.0, done / self.total) if self.total else 1.0
            filled = int(share * 30)
            self.stream.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {share:6.1%} "
                              f"{done:,}/{self.total:,} rows  {label[:40]:<40}")
            self.stream.flush()
        elif now - self._last >= 5.0:
            self._last = now
            self.stream.write(f"{done:,}/{self.total:,} rows ({label})\n")

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _print_plan(plan: Plan, out: Any) -> None:
    out.write(f"cutoff {iso_utc(plan.cutoff)} (layout: {plan.layout})\n")
    for table, days in plan.days.items():
        out.write(f"{table}: {sum(days.values()):,} rows\n")
        for day, count in days.items():
            out.write(f"  {day}  {count:>10,}\n")
    if plan.drop:
        out.write(f"partitions to drop whole: {', '.join(plan.drop)}\n")
    if plan.trim:
        out.write(f"partitions trimmed by batched deletes: {', '.join(plan.trim)}\n")
    if plan.create:
        out.write(f"partitions to make ahead: {', '.join(plan.create)}\n")
    for note in plan.skipped:
        out.write(f"skipped {note}\n")
    out.write(f"total: {plan.total:,} rows would be removed\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m retention", description=(
        "Retention of the error store: what is older than RETENTION_DAYS goes."))
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--dry-run", action="store_true",
                        help="show what would go now, counts per day; change nothing")
    action.add_argument("--now", action="store_true", help="run retention now")
    action.add_argument("--restore", nargs="+", metavar="FILE",
                        help="load archive files back (rows already stored are skipped)")
    action.add_argument("--migrate", action="store_true",
                        help="PostgreSQL: make an unpartitioned error_logs partitioned by day")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"bad setting: {exc}", file=sys.stderr)
        return 2
    engine = make_engine(settings.sqlalchemy_url)
    try:
        create_schema(engine)
        retention = Retention(engine, RetentionPolicy.from_settings(settings))
        if args.dry_run:
            _print_plan(retention.plan(), sys.stdout)
            return 0
        if args.now:
            bar = _Bar(retention.plan().total)
            report = retention.run(progress=bar)
            bar.close()
            print(summary(report))
            for note in report.notes:
                print(f"note: {note}")
            return 0 if report.ok else 1
        if args.restore:
            totals = retention.restore(args.restore)
            for table, counts in totals.items():
                print(f"{table}: {counts['read']:,} read, {counts['inserted']:,} restored, "
                      f"{counts['read'] - counts['inserted']:,} already there")
            print(f"note: rows older than {settings.retention_days} days go again at the next "
                  "retention run; raise RETENTION_DAYS to keep them")
            return 0
        bar = _Bar(0)
        print(retention.migrate(progress=bar))
        bar.close()
        return 0
    finally:
        engine.dispose()
