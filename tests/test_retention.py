"""Retention on PostgreSQL (partitioned and not) and SQLite, with a clock the tests move."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import Engine

from queries.records import Rejection
from queries.schema import (
    create_schema,
    error_logs,
    maintenance_runs,
    metadata,
    rejected_messages,
)
from queries.store import ErrorStore
from retention import archive as archive_module
from retention.archive import ArchiveWriter, read_archive
from retention.job import RetentionJob, next_run_after
from retention.partitions import list_partitions, partition_name
from retention.policy import RetentionPolicy
from retention.run import Retention
from settings import SettingsError, load_settings
from tests.conftest import wait_for
from tests.factories import event

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2024, 11, 30, 3, 0, tzinfo=UTC)
CUTOFF = NOW - timedelta(days=30)
TICK = timedelta(microseconds=1)


class Clock:
    """A clock the test moves: returns an aware UTC datetime."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def move(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def _retention(engine: Engine, clock: Clock, **policy: object) -> Retention:
    return Retention(engine, RetentionPolicy(**{"days": 30, **policy}), clock)


def _store(engine: Engine, events) -> None:
    store = ErrorStore(engine)
    result = store.write_batch(list(events))
    assert not result.refused
    store.close()


def _ids(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(error_logs.c.error_id)).scalars())


def _count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


def _days_spread(start: datetime, days: int, per_day: int, prefix: str = "e") -> list:
    return [event(error_id=f"{prefix}-{d}-{i}", context={"day": d, "i": i},
                  timestamp=start + timedelta(days=d, hours=i % 24, minutes=i))
            for d in range(days) for i in range(per_day)]


def _attached(engine: Engine) -> set[str]:
    conn = engine.raw_connection()
    try:
        cur = conn.cursor()
        cur.execute("SET TimeZone = 'UTC'")
        return {p.name for p in list_partitions(conn)}
    finally:
        conn.close()


def _archived(folder: Path) -> dict[str, dict]:
    rows: dict[str, dict] = {}
    for path in sorted(folder.glob("errors-*.jsonl.gz")):
        day = path.name[len("errors-"):len("errors-") + 10]
        for row in read_archive(path):
            assert row["timestamp"].startswith(day), (path.name, row["timestamp"])
            assert row["error_id"] not in rows, "archived twice"
            rows[row["error_id"]] = row
    return rows


def _record_run(engine: Engine, started_at: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(insert(maintenance_runs).values(
            job="retention", started_at=started_at, finished_at=started_at, ok=True,
            rows_removed=0, detail="{}"))


# -- the cut-off ------------------------------------------------------------------------------

def test_the_cutoff_is_exact_at_the_boundary(engine):
    clock = Clock(CUTOFF)
    retention = _retention(engine, clock)
    retention.run()  # on PostgreSQL: the cut-off's day gets its partition, so it is trimmed
    clock.now = NOW
    _store(engine, [event(error_id="before", timestamp=CUTOFF - TICK),
                    event(error_id="at", timestamp=CUTOFF),
                    event(error_id="after", timestamp=CUTOFF + TICK),
                    event(error_id="ancient", timestamp=datetime(2023, 1, 2, tzinfo=UTC)),
                    event(error_id="future", timestamp=NOW + timedelta(days=400))])
    store = ErrorStore(engine)
    store.write_rejections([Rejection(raw=f"r{n}", reason="not JSON", received_at=moment)
                            for n, moment in enumerate((CUTOFF - TICK, CUTOFF, CUTOFF + TICK))])
    store.close()
    report = retention.run()
    assert report.ok, report.error
    assert _ids(engine) == {"at", "after", "future"}
    assert report.removed["error_logs"] == 2
    with engine.connect() as conn:
        assert set(conn.execute(select(rejected_messages.c.raw)).scalars()) == {"r1", "r2"}
    assert report.removed["rejected_messages"] == 1
    assert report.rows_removed == 3
    if engine.dialect.name == "postgresql":
        assert partition_name(CUTOFF.date()) in report.partitions_trimmed
        assert _count(engine, "error_ids") == 3  # the removed ids are pruned with their rows


def test_many_batches_remove_everything_expired(engine):
    clock = Clock(NOW)
    _store(engine, _days_spread(CUTOFF - timedelta(days=3), 6, 25))
    report = _retention(engine, clock, batch_rows=7).run()
    assert report.ok, report.error
    assert report.removed["error_logs"] == 75
    assert _count(engine, "error_logs") == 75


# -- archive ----------------------------------------------------------------------------------

def _before_and_after_partitions(engine: Engine, clock: Clock) -> None:
    """Partitions for the days around the cut-off (PostgreSQL), rows on both sides of it."""
    clock.now = CUTOFF - timedelta(days=2)
    _retention(engine, clock).run()
    clock.now = NOW
    _store(engine, [*_days_spread(CUTOFF - timedelta(days=4), 6, 12),
                    event(error_id="in-2023", timestamp=datetime(2023, 5, 1, 12, tzinfo=UTC))])


def test_the_archive_holds_exactly_what_was_deleted(engine, tmp_path):
    clock = Clock(NOW)
    _before_and_after_partitions(engine, clock)
    with engine.connect() as conn:
        before = {r.error_id: r for r in conn.execute(select(error_logs))}
    folder = tmp_path / "archive"
    report = _retention(engine, clock, archive_dir=str(folder), batch_rows=5).run()
    assert report.ok, report.error
    kept = _ids(engine)
    gone = set(before) - kept
    archived = _archived(folder)
    assert set(archived) == gone and len(gone) == report.removed["error_logs"] > 0
    assert all(before[i].timestamp.astimezone(UTC) < CUTOFF for i in gone)
    assert all(before[i].timestamp.astimezone(UTC) >= CUTOFF for i in kept)
    row = archived["e-0-3"]
    original = before["e-0-3"]
    assert row["context"] == {"day": 0, "i": 3}
    assert datetime.fromisoformat(row["timestamp"]) == original.timestamp.replace(
        tzinfo=original.timestamp.tzinfo or UTC)
    assert row["id"] == str(original.id) and row["error_message"] == original.error_message
    assert set(row) >= {c.name for c in error_logs.columns}
    assert (folder / "errors-2023-05-01.jsonl.gz").exists()
    if engine.dialect.name == "postgresql":
        assert report.partitions_dropped  # whole days went by DROP, and were archived first
        assert not set(report.partitions_dropped) & _attached(engine)


def test_a_second_run_writes_a_new_part_file_for_the_same_day(engine, tmp_path):
    clock = Clock(NOW)
    folder = tmp_path / "archive"
    retention = _retention(engine, clock, archive_dir=str(folder))
    _store(engine, [event(error_id="one", timestamp=CUTOFF - timedelta(hours=2))])
    retention.run()
    _store(engine, [event(error_id="two", timestamp=CUTOFF - timedelta(hours=1))])
    retention.run()
    day = (CUTOFF - timedelta(hours=2)).date().isoformat()
    first, second = folder / f"errors-{day}.jsonl.gz", folder / f"errors-{day}.2.jsonl.gz"
    assert [r["error_id"] for r in read_archive(first)] == ["one"]
    assert [r["error_id"] for r in read_archive(second)] == ["two"]


def test_an_unwritable_archive_folder_deletes_nothing(engine, tmp_path):
    clock = Clock(NOW)
    _before_and_after_partitions(engine, clock)
    ids, attached = _ids(engine), (_attached(engine) if engine.dialect.name == "postgresql"
                                   else set())
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the archive folder should be")
    report = _retention(engine, clock, archive_dir=str(blocker / "archive")).run()
    assert not report.ok and "cannot write archives" in report.error
    assert _ids(engine) == ids
    if engine.dialect.name == "postgresql":
        assert attached <= _attached(engine)
        assert report.partitions_created  # days ahead are made all the same


def test_an_archive_that_fails_while_writing_deletes_nothing(engine, tmp_path, monkeypatch):
    clock = Clock(NOW)
    _before_and_after_partitions(engine, clock)
    ids = _ids(engine)
    attached = _attached(engine) if engine.dialect.name == "postgresql" else set()
    folder = tmp_path / "archive"
    folder.mkdir()

    def disk_full(_fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ArchiveWriter, "check", lambda self: None)
    monkeypatch.setattr(archive_module.os, "fsync", disk_full)
    report = _retention(engine, clock, archive_dir=str(folder)).run()
    assert not report.ok and "No space left" in report.error
    assert _ids(engine) == ids  # not one row went
    assert list(folder.iterdir()) == []  # and nothing half-written stays behind
    if engine.dialect.name == "postgresql":
        assert attached <= _attached(engine)  # a detached day is attached again
        assert report.removed.get("error_logs", 0) == 0


# -- restore ----------------------------------------------------------------------------------

def test_restore_brings_the_rows_back_and_ignores_duplicates(engine, tmp_path):
    clock = Clock(NOW)
    _before_and_after_partitions(engine, clock)
    store = ErrorStore(engine)
    store.write_rejections([Rejection(raw="{bad", reason="not JSON",
                                      received_at=CUTOFF - timedelta(days=1))])
    store.close()
    with engine.connect() as conn:
        before = {r.error_id: r._asdict() for r in conn.execute(select(error_logs))}
    folder = tmp_path / "archive"
    retention = _retention(engine, clock, archive_dir=str(folder))
    assert retention.run().ok
    removed = len(before) - len(_ids(engine))
    assert removed > 0 and _count(engine, "rejected_messages") == 0
    files = sorted(folder.iterdir())
    totals = retention.restore(files)
    assert totals["error_logs"] == {"read": removed, "inserted": removed}
    with engine.connect() as conn:
        after = {r.error_id: r._asdict() for r in conn.execute(select(error_logs))}
    assert set(after) == set(before)
    for error_id, row in before.items():
        again = after[error_id]
        for column in ("id", "error_message", "context", "severity", "symbol", "fingerprint"):
            assert again[column] == row[column], (error_id, column)
        assert again["timestamp"].replace(tzinfo=UTC) == row["timestamp"].replace(tzinfo=UTC)
    assert _count(engine, "rejected_messages") == 1
    # Again: everything is there already.
    totals = retention.restore(files)
    assert totals["error_logs"]["inserted"] == 0 and totals["rejected_messages"]["inserted"] == 0
    # A re-sent copy of a restored error is still a duplicate.
    store = ErrorStore(engine)
    assert store.write_batch([event(error_id="e-0-0")]).duplicates == 1
    store.close()


# -- partitions (PostgreSQL) ------------------------------------------------------------------

def test_partitions_are_made_ahead_and_dropped_when_expired(pg_engine):
    clock = Clock(NOW)
    retention = _retention(pg_engine, clock, partitions_ahead=7)
    report = retention.run()
    ahead = [partition_name((NOW + timedelta(days=n)).date()) for n in range(8)]
    assert report.partitions_created == ahead
    assert set(ahead) <= _attached(pg_engine)
    _store(pg_engine, _days_spread(NOW.replace(hour=0), 8, 10))
    with pg_engine.connect() as conn:
        in_first = conn.execute(text(f"SELECT count(*) FROM {ahead[0]}")).scalar_one()
    assert in_first == 10
    assert retention.run().partitions_created == []  # made once
    clock.move(days=40)
    report = retention.run()
    assert report.ok, report.error
    assert report.partitions_dropped == ahead
    assert not set(ahead) & _attached(pg_engine)
    assert report.removed["error_logs"] == 80 and _count(pg_engine, "error_logs") == 0
    assert _count(pg_engine, "error_ids") == 0
    assert report.partitions_created[0] == partition_name(clock.now.date())
    with pg_engine.connect() as conn:  # dropped, not left behind detached
        left = conn.execute(text("SELECT count(*) FROM pg_class WHERE relname = :n"),
                            {"n": ahead[0]}).scalar_one()
    assert left == 0


def test_rows_waiting_in_the_default_partition_move_into_their_new_day(pg_engine):
    later = NOW + timedelta(days=3, hours=5)
    _store(pg_engine, [event(error_id=f"early-{i}", timestamp=later) for i in range(5)])
    assert _count(pg_engine, "error_logs_default") == 5
    _retention(pg_engine, Clock(NOW)).run()
    assert _count(pg_engine, "error_logs_default") == 0
    assert _count(pg_engine, partition_name(later.date())) == 5


def test_a_new_day_is_made_while_the_ingest_writes_into_it(pg_engine):
    # A new install: every row goes to DEFAULT until the job makes today's partition, and
    # rows of today keep coming while it moves them out.
    done = threading.Event()
    refused: list[str] = []

    def ingest() -> None:
        store = ErrorStore(pg_engine)
        batch_no = 0
        while not done.is_set():
            result = store.write_batch([event(error_id=f"n{batch_no}-{i}",
                                              timestamp=NOW + timedelta(seconds=batch_no))
                                        for i in range(20)])
            refused.extend(r.reason for r in result.refused)
            batch_no += 1
        store.close()

    writer = threading.Thread(target=ingest)
    writer.start()
    time.sleep(0.3)
    report = _retention(pg_engine, Clock(NOW)).run()
    time.sleep(0.2)
    done.set()
    writer.join(30)
    assert report.ok, report.error
    assert partition_name(NOW.date()) in report.partitions_created
    assert refused == []
    assert _count(pg_engine, "error_logs_default") == 0
    assert _count(pg_engine, partition_name(NOW.date())) == _count(pg_engine, "error_logs")


def test_a_day_left_detached_by_a_stopped_run_is_finished_by_the_next(pg_engine):
    clock = Clock(CUTOFF - timedelta(days=3))
    retention = _retention(pg_engine, clock)
    retention.run()
    _store(pg_engine, _days_spread((CUTOFF - timedelta(days=3)).replace(hour=0), 6, 4))
    expired, kept = (partition_name((CUTOFF - timedelta(days=n)).date()) for n in (2, -1))
    with pg_engine.begin() as conn:  # as if a run had stopped between detach and drop
        conn.execute(text(f"ALTER TABLE error_logs DETACH PARTITION {expired}"))
        conn.execute(text(f"ALTER TABLE error_logs DETACH PARTITION {kept}"))
    clock.now = NOW
    report = retention.run()
    assert report.ok, report.error
    assert kept in _attached(pg_engine)
    assert any(kept in note for note in report.notes)
    with pg_engine.connect() as conn:
        assert conn.execute(text("SELECT to_regclass(:n)"), {"n": expired}).scalar() is None
    assert all(e >= CUTOFF for e in _timestamps(pg_engine))


def _timestamps(engine: Engine) -> list[datetime]:
    with engine.connect() as conn:
        return [t.astimezone(UTC) for t in conn.execute(select(error_logs.c.timestamp)).scalars()]


_LEGACY_DDL = """
CREATE TABLE error_logs (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    error_id        VARCHAR(255) NOT NULL UNIQUE,
    error_type      VARCHAR(255),
    error_message   TEXT NOT NULL DEFAULT '',
    error_traceback TEXT,
    severity        VARCHAR(16) NOT NULL,
    category        VARCHAR(32) NOT NULL,
    source          VARCHAR(100) NOT NULL DEFAULT 'TickStockPL',
    component       VARCHAR(255),
    operation       VARCHAR(255),
    symbol          VARCHAR(64),
    context         JSONB NOT NULL,
    fingerprint     VARCHAR(40),
    "timestamp"     TIMESTAMP WITH TIME ZONE NOT NULL,
    created_at      TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now()
);
CREATE INDEX idx_error_logs_timestamp ON error_logs ("timestamp");
CREATE INDEX idx_error_logs_severity ON error_logs (severity);
"""


def test_an_unpartitioned_table_is_cleaned_by_batches_and_can_be_migrated(pg_engine):
    with pg_engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
        conn.exec_driver_sql(_LEGACY_DDL)
    create_schema(pg_engine)  # the monitor starts on it: kept as it is
    with pg_engine.connect() as conn:
        assert conn.execute(text("SELECT relkind FROM pg_class WHERE relname = 'error_logs'")
                            ).scalar() == "r"
    _store(pg_engine, _days_spread(CUTOFF - timedelta(days=5), 10, 6))
    store = ErrorStore(pg_engine)
    assert store.write_batch([event(error_id="e-0-0")]).duplicates == 1
    store.close()
    clock = Clock(NOW)
    retention = _retention(pg_engine, clock, batch_rows=4)
    report = retention.run()
    assert report.ok and report.layout == "plain"
    assert report.removed["error_logs"] == 30
    assert all(e >= CUTOFF for e in _timestamps(pg_engine))
    assert _count(pg_engine, "error_logs") == 30
    kept = _ids(pg_engine)

    message = retention.migrate()
    assert "partitioned" in message
    with pg_engine.connect() as conn:
        assert conn.execute(text("SELECT relkind FROM pg_class WHERE relname = 'error_logs'")
                            ).scalar() == "p"
        assert conn.execute(text("SELECT to_regclass('error_logs_legacy')")).scalar() is None
    assert _ids(pg_engine) == kept
    assert _count(pg_engine, "error_logs_default") == 0  # every kept day has its partition
    store = ErrorStore(pg_engine)
    assert store.write_batch([event(error_id=next(iter(kept)))]).duplicates == 1
    store.close()
    assert "already partitioned" in retention.migrate()


# -- dead letters, groups, alerts -------------------------------------------------------------

def test_groups_alerts_and_dead_letters_follow_the_same_retention(engine):
    old, recent = CUTOFF - timedelta(days=1), CUTOFF + timedelta(days=1)
    _store(engine, [event(error_id="still-here", fingerprint="fp-with-events",
                          timestamp=recent)])
    groups = metadata.tables["error_groups"]
    base = {"title": "t", "category": "pattern", "first_seen": old, "event_count": 1,
            "worst_severity": "error"}
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM error_groups"))
        for fingerprint, state, last_seen in (
                ("fp-old", "unresolved", old), ("fp-regressed", "regressed", old),
                ("fp-resolved", "resolved", old), ("fp-ignored", "ignored", old),
                ("fp-recent", "unresolved", recent), ("fp-with-events", "unresolved", old)):
            conn.execute(insert(groups).values(fingerprint=fingerprint, state=state,
                                               last_seen=last_seen, **base))
        symbols = metadata.tables["error_group_symbols"]
        conn.execute(insert(symbols).values(fingerprint="fp-old", symbol="AAPL",
                                            event_count=1, last_seen=old))
        conn.execute(insert(symbols).values(fingerprint="fp-resolved", symbol="AAPL",
                                            event_count=1, last_seen=old))
        if "alerts" in metadata.tables:
            alerts = metadata.tables["alerts"]
            for alert_id, state, ended in (("a-old", "resolved", old),
                                           ("a-recent", "resolved", recent),
                                           ("a-firing", "firing", None)):
                conn.execute(insert(alerts).values(id=alert_id, rule="r", alert_key="k",
                                                   state=state, started_at=old - TICK,
                                                   ended_at=ended))
    report = _retention(engine, Clock(NOW)).run()
    assert report.ok, report.error
    with engine.connect() as conn:
        assert set(conn.execute(select(groups.c.fingerprint)).scalars()) == {
            "fp-resolved", "fp-ignored", "fp-recent", "fp-with-events"}
        assert set(conn.execute(text("SELECT fingerprint FROM error_group_symbols")
                                ).scalars()) == {"fp-resolved"}
        if "alerts" in metadata.tables:
            assert set(conn.execute(text("SELECT id FROM alerts")).scalars()) == {
                "a-recent", "a-firing"}
    assert report.removed["error_groups"] == 2


def test_tables_added_by_other_features_are_skipped_when_missing(engine):
    with engine.begin() as conn:
        for table in ("error_group_symbols", "error_groups", "alerts", "alert_silences"):
            conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
    _store(engine, [event(error_id="old", timestamp=CUTOFF - TICK)])
    report = _retention(engine, Clock(NOW)).run()
    assert report.ok, report.error
    assert _ids(engine) == set()
    plan = _retention(engine, Clock(NOW)).plan()
    assert any("error_groups: no such table" in s for s in plan.skipped)


# -- the ingest keeps writing -----------------------------------------------------------------

def test_the_store_keeps_writing_while_days_are_dropped(pg_engine):
    clock = Clock(CUTOFF - timedelta(days=10))
    retention = _retention(pg_engine, clock, partitions_ahead=14)
    retention.run()
    clock.now = NOW
    written: list[str] = []
    refused: list[str] = []
    done = threading.Event()

    def ingest() -> None:
        store = ErrorStore(pg_engine)
        batch_no = 0
        while not done.is_set() or batch_no < 20:
            # Rows land in every day, the expiring ones too, as late events would.
            batch = [event(error_id=f"w{batch_no}-{i}",
                           timestamp=CUTOFF + timedelta(days=(i % 20) - 10, seconds=batch_no))
                     for i in range(50)]
            result = store.write_batch(batch)
            refused.extend(r.reason for r in result.refused)
            written.extend(e.error_id for e in result.new_events)
            batch_no += 1
        store.close()

    writer = threading.Thread(target=ingest)
    writer.start()
    time.sleep(0.2)
    report = retention.run()
    done.set()
    writer.join(60)
    assert report.ok, report.error
    assert report.partitions_dropped
    assert refused == []
    with pg_engine.connect() as conn:
        stored = dict(conn.execute(select(error_logs.c.error_id, error_logs.c.timestamp)).all())
    missing = [i for i in written if i not in stored]
    # Only expired rows may have gone, and only those the run saw.
    assert all(int(i.split("-")[1]) % 20 < 10 for i in missing)
    with pg_engine.connect() as conn:  # every stored row keeps its id: re-sends stay duplicates
        ids = set(conn.execute(text("SELECT error_id FROM error_ids")).scalars())
    assert set(stored) <= ids


# -- the schedule -----------------------------------------------------------------------------

def test_the_start_up_run_happens_only_when_the_last_run_is_over_a_day_old(engine):
    clock = Clock(NOW)
    _record_run(engine, NOW - timedelta(hours=23))
    job = RetentionJob(_retention(engine, clock), at="03:00", timezone="UTC")
    assert job.start() is False
    time.sleep(0.5)
    job.stop()
    assert job.runs == 0 and job.status()["startupRun"] is False
    clock.move(hours=2)  # now the last run is 25 h old
    job = RetentionJob(_retention(engine, clock), at="03:00", timezone="UTC",
                       startup_delay=timedelta(0))
    assert job.start() is True
    wait_for(lambda: job.runs == 1, message="the start-up run")
    status = job.status()
    job.stop()
    assert status["lastRun"] == "2024-11-30T05:00:00Z" and status["lastRunOk"] is True
    assert status["startupRun"] is True
    # ... and the next start knows it ran.
    job = RetentionJob(_retention(engine, clock), at="03:00", timezone="UTC")
    assert job.start() is False
    assert job.status()["lastRun"] == "2024-11-30T05:00:00Z"
    job.stop()


def test_the_next_run_is_at_retention_at_in_local_time(engine):
    new_york = ZoneInfo("America/New_York")
    _record_run(engine, datetime.now(UTC))
    job = RetentionJob(_retention(engine, Clock(datetime.now(UTC))), at="03:17",
                       timezone="America/New_York")
    before = datetime.now(UTC)
    assert job.start() is False
    upcoming = job.next_run()
    status = job.status()
    job.stop()
    assert upcoming is not None
    local = upcoming.astimezone(new_york)
    assert (local.hour, local.minute) == (3, 17)
    assert timedelta(0) < upcoming - before <= timedelta(hours=25)
    assert status["nextRun"] == upcoming.isoformat().replace("+00:00", "Z")
    # 03:16 in New York (EDT, UTC-4): today at 03:17; at 03:17 itself: tomorrow.
    assert next_run_after(datetime(2024, 10, 30, 7, 16, tzinfo=UTC), "03:17", new_york) == \
        datetime(2024, 10, 30, 7, 17, tzinfo=UTC)
    assert next_run_after(datetime(2024, 10, 30, 7, 17, tzinfo=UTC), "03:17", new_york) == \
        datetime(2024, 10, 31, 7, 17, tzinfo=UTC)


@pytest.mark.parametrize("value", ["25:00", "3", "03:60", "noon", ""])
def test_a_bad_retention_at_names_the_setting(value):
    with pytest.raises(SettingsError, match="RETENTION_AT"):
        load_settings({"RETENTION_AT": value}, env_file=None)


def test_retention_settings_are_read():
    settings = load_settings({"RETENTION_AT": "4:05", "RETENTION_ARCHIVE_DIR": "/tmp/a",
                              "RETENTION_BATCH_ROWS": "500"}, env_file=None)
    assert (settings.retention_at, settings.retention_archive_dir,
            settings.retention_batch_rows) == ("4:05", "/tmp/a", 500)
    assert RetentionPolicy.from_settings(settings).batch_rows == 500


def test_the_monitor_status_shows_the_retention_job(make_settings, sqlite_url):
    import app as app_module

    monitor = app_module.build(make_settings(database_url=sqlite_url))
    assert monitor.retention is not None
    monitor.retention.startup_delay = timedelta(0)
    monitor.start()
    try:
        client = monitor.dash_app.server.test_client()
        wait_for(lambda: client.get("/api/monitor/status").get_json()["retention"]["lastRun"],
                 message="the start-up run in the status")
        retention = client.get("/api/monitor/status").get_json()["retention"]
    finally:
        monitor.stop()
    assert retention["lastRunOk"] is True and retention["retentionDays"] == 30
    assert retention["startupRun"] is True  # a new store has never been cleaned
    assert retention["at"] == "03:00" and retention["nextRun"].endswith("Z")
    assert {"rowsRemoved", "durationSeconds", "lastRun", "nextRun", "removed"} <= set(retention)


# -- the command line -------------------------------------------------------------------------

def test_the_command_line_dry_run_now_and_restore(tmp_path):
    url = f"sqlite:///{tmp_path}/errors.db"
    from queries.engine import make_engine

    engine = make_engine(url)
    create_schema(engine)
    now = datetime.now(UTC)
    _store(engine, [event(error_id=f"old-{i}", timestamp=now - timedelta(days=40, hours=i))
                    for i in range(3)] + [event(error_id="new", timestamp=now)])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "RETENTION_"))}
    env.update({"DATABASE_URL": url, "RETENTION_ARCHIVE_DIR": str(tmp_path / "archive"),
                "PYTHONPATH": str(ROOT)})

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "retention", *args], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=60)

    dry = cli("--dry-run")
    assert dry.returncode == 0, dry.stderr
    day = (now - timedelta(days=40)).date().isoformat()
    assert "error_logs: 3 rows" in dry.stdout and day in dry.stdout
    assert _ids(engine) == {"old-0", "old-1", "old-2", "new"}
    done = cli("--now")
    assert done.returncode == 0, done.stderr
    assert "3 rows removed" in done.stdout
    assert _ids(engine) == {"new"}
    files = sorted(str(p) for p in (tmp_path / "archive").iterdir())
    assert files
    back = cli("--restore", *files)
    assert back.returncode == 0, back.stderr
    assert "3 restored" in back.stdout
    assert _ids(engine) == {"old-0", "old-1", "old-2", "new"}
    with gzip.open(files[0], "rt") as handle:
        assert json.loads(handle.readline())["error_id"].startswith("old-")
    engine.dispose()


def test_three_processes_with_a_run_due_run_it_once_that_day(engine, make_settings, db_url):
    """Issue 16: singleton jobs stay singleton across ingest processes on one database."""
    _store(engine, [event(error_id=f"old-{i}", timestamp=NOW - timedelta(days=40))
                    for i in range(5)])
    settings = make_settings(database_url=db_url)
    jobs = [RetentionJob.from_settings(engine, settings, clock=lambda: NOW) for _ in range(3)]
    reports = [job.run_scheduled() for job in jobs]
    ran = [r for r in reports if r is not None]
    assert len(ran) == 1 and ran[0].ok and ran[0].removed["error_logs"] == 5
    standing_by = [job.status()["standby"] for job in jobs if job.status()["standby"]]
    assert len(standing_by) == 2 and all("was taken by" in text for text in standing_by)
    with engine.connect() as conn:
        runs = conn.execute(select(func.count()).select_from(maintenance_runs)).scalar_one()
    assert runs == 1
    # The next day is a new period: one of them runs it again.
    later = [RetentionJob.from_settings(engine, settings, clock=lambda: NOW + timedelta(days=1))
             for _ in range(2)]
    assert sum(job.run_scheduled() is not None for job in later) == 1


def test_ended_runs_and_jobs_past_retention_go_but_running_ones_stay(engine):
    from queries.schema import import_jobs, job_error_links, job_runs

    old = NOW - timedelta(days=40)
    with engine.begin() as conn:
        for run_id, state in (("old-done", "completed"), ("old-running", "running"),
                              ("new-done", "completed")):
            seen = old if run_id.startswith("old") else NOW
            conn.execute(insert(job_runs).values(run_id=run_id, state=state, first_seen_at=seen,
                                                 last_event_at=seen, phases={}))
        for job_id, status in (("old-failed", "failed"), ("old-submitted", "submitted")):
            conn.execute(insert(import_jobs).values(
                job_id=job_id, status=status, first_seen_at=old, last_seen_at=old,
                progress_changed_at=old))
        conn.execute(insert(job_error_links).values(kind="run", ref_id="old-done",
                                                    error_id="e-1", linked_at=old))
    report = _retention(engine, Clock(NOW)).run()
    assert report.ok, report.error
    with engine.connect() as conn:
        assert set(conn.execute(select(job_runs.c.run_id)).scalars()) == {"old-running",
                                                                          "new-done"}
        assert set(conn.execute(select(import_jobs.c.job_id)).scalars()) == {"old-submitted"}
        assert conn.execute(select(func.count()).select_from(job_error_links)).scalar_one() == 0
