"""The counts from the count tables equal COUNT(*) over error_logs, for any window, on both
stores: after inserts with duplicates, back-dated and late rows, after retention deletes and
partition drops, after a restore, across a restart and after the one-off backfill."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine

from groups.hook import GroupsHook
from groups.reads import _hourly, group_detail, list_groups
from queries.count_tables import drop_count_tables
from queries.counts import cover, dimension_counts, group_slot_counts, matrix_counts
from queries.engine import make_engine
from queries.health import health_status
from queries.reads import error_statistics, serious_counts
from queries.schema import create_schema, error_logs
from queries.store import ErrorStore
from queries.trends import BUCKET_SECONDS, HourlyRollup, build_trend
from retention.partitions import ensure_days, list_partitions
from retention.policy import RetentionPolicy
from retention.run import Retention
from tests.factories import event

# Mid-minute, mid-hour: every window has ragged edges.
NOW = datetime(2026, 3, 10, 12, 34, 56, 789012, tzinfo=UTC)
SEVERITIES = ("warning", "error", "critical", "info")
CATEGORIES = ("pattern", "database", "network", "redis", "unknown")
SYMBOLS = ("AAPL", "MSFT", None, "TSLA", "")
FINGERPRINTS = ("fp-a", "fp-b", "fp-c", None)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass(frozen=True)
class Row:
    received_at: datetime
    timestamp: datetime
    severity: str
    category: str
    symbol: str | None
    component: str | None
    error_type: str | None
    fingerprint: str | None


def _random_events(rng: random.Random, n: int, days: float, prefix: str) -> list:
    """Errors over the last `days`, with back-dated (producer clock hours behind), late
    (received long after they happened), test rows and exact second/minute edges."""
    out = []
    for i in range(n):
        received = NOW - timedelta(seconds=rng.uniform(-30, days * 86400))
        if i % 17 == 0:  # on a bucket edge exactly
            received = received.replace(second=0, microsecond=0)
        skew = timedelta(0)
        if i % 7 == 0:
            skew = -timedelta(hours=rng.uniform(1, 40))  # back-dated: an old timestamp
        elif i % 11 == 0:
            skew = timedelta(minutes=rng.uniform(1, 90))  # producer ahead
        out.append(event(
            error_id=f"{prefix}{i}", received_at=received, timestamp=received + skew,
            severity=rng.choice(SEVERITIES),
            category="test" if i % 23 == 0 else rng.choice(CATEGORIES),
            is_test=i % 23 == 0,
            symbol=rng.choice(SYMBOLS), component=rng.choice(("C1", "C2", None)),
            error_type=rng.choice(("T1", "T2", "T3", None)),
            fingerprint=rng.choice(FINGERPRINTS)))
    return out


def _store(engine: Engine, events: list, hooks: tuple = ()) -> int:
    store = ErrorStore(engine, hooks)
    try:
        inserted = 0
        for start in range(0, len(events), 150):
            result = store.write_batch(events[start:start + 150])
            assert not result.refused
            inserted += result.inserted
        return inserted
    finally:
        store.close()


def _rows(engine: Engine) -> list[Row]:
    """The counted rows as they are stored: the reference every read is compared with."""
    c = error_logs.c
    with engine.connect() as conn:
        return [Row(*r) for r in conn.execute(
            select(c.received_at, c.timestamp, c.severity, c.category, c.symbol, c.component,
                   c.error_type, c.fingerprint).where(c.is_test.is_(False)))]


def _direct_statistics(engine: Engine, since: datetime) -> tuple[dict[str, int], dict[str, int]]:
    """COUNT(*) ... GROUP BY over error_logs: what the reads did before the count tables."""
    c = error_logs.c
    where = (c.received_at >= since, c.is_test.is_(False))
    with engine.connect() as conn:
        by_sev = dict(conn.execute(select(c.severity, func.count()).where(*where)
                                   .group_by(c.severity)).all())
        by_cat = dict(conn.execute(select(c.category, func.count()).where(*where)
                                   .group_by(c.category)).all())
    return by_sev, by_cat


def _window(rng: random.Random) -> tuple[datetime, datetime]:
    """A random window: any length from a second to 12 days, ragged or on an edge."""
    length = timedelta(seconds=rng.choice((1, 59, 60, 61, 3599, 3600, 7200, 86400,
                                           rng.uniform(1, 12 * 86400))))
    start = NOW - timedelta(seconds=rng.uniform(-120, 11 * 86400))
    if rng.random() < 0.2:
        start = start.replace(minute=0, second=0, microsecond=0)
    return start, start + length


def _check_every_read(engine: Engine, rng: random.Random, windows: int = 25) -> None:
    rows = _rows(engine)
    assert rows, "the test needs rows"
    rollup = HourlyRollup(engine, Clock(NOW + timedelta(days=1)))
    with engine.connect() as conn:
        for _ in range(windows):
            start, end = _window(rng)
            inside = [r for r in rows if start <= r.received_at < end]
            # the severity x category cells, totals and by hour
            cells = matrix_counts(conn, start, end)
            expected = Counter((0, r.severity, r.category) for r in inside)
            assert cells == dict(expected), (start, end)
            by_hour = matrix_counts(conn, start, end, 3600)
            expected = Counter((int(r.received_at.timestamp()) // 3600 * 3600, r.severity,
                                r.category) for r in inside)
            assert by_hour == dict(expected), (start, end)
            # symbol, component and type of the shown severities
            dims = dimension_counts(conn, start, end, ("symbol", "component", "error_type"))
            for dim in ("symbol", "component", "error_type"):
                expected = Counter((getattr(r, dim) or "") for r in inside
                                   if r.severity != "info")
                assert dims[dim] == dict(expected), (dim, start, end)
            # the Overview's cards
            counts = rollup.severity_counts(start, end)
            for severity in ("warning", "error", "critical"):
                assert counts[severity] == sum(1 for r in inside if r.severity == severity)
            # the group strips, on the producer's time, slots from any start
            slots = rng.choice((1, 5, 24))
            fps = ["fp-a", "fp-b", "fp-c"]
            strips = group_slot_counts(conn, fps, start, slots)
            for fp in fps:
                expected = [0] * slots
                for r in rows:
                    if r.fingerprint == fp:
                        k = int((r.timestamp - start) // timedelta(hours=1))
                        if 0 <= k < slots and r.timestamp >= start:
                            expected[k] += 1
                assert strips[fp] == expected, (fp, start, slots)
    # statistics and health: open windows (every row received since)
    for hours in (1, 24, 168, 720, rng.randint(1, 300)):
        stats = error_statistics(engine, hours, now=NOW)
        by_sev, by_cat = _direct_statistics(engine, NOW - timedelta(hours=hours))
        assert stats["bySeverity"] == {"warning": 0, "error": 0, "critical": 0, **by_sev}
        assert stats["byCategory"] == by_cat
        assert stats["total"] == sum(by_sev.values())
    for minutes in (5, rng.randint(1, 600)):
        since = NOW - timedelta(minutes=minutes)
        by_sev, _ = _direct_statistics(engine, since)
        assert serious_counts(engine, since) == (by_sev.get("critical", 0),
                                                 by_sev.get("error", 0))
    # the trends, every bucket size
    for _ in range(4):
        start, end = _window(rng)
        for bucket in ("minute", "hour", "day"):
            if (end - start) / timedelta(seconds=BUCKET_SECONDS[bucket]) > 1500:
                continue
            trend = build_trend(rollup, start, end, bucket)
            shown = [r for r in rows if start <= r.received_at < end and r.severity != "info"]
            assert trend.total == len(shown)
            size = BUCKET_SECONDS[bucket]
            expected = Counter(int(r.received_at.timestamp()) // size * size for r in shown)
            got = {int(t.timestamp()): int(v) for t, v in trend.by_severity.sum(axis=1).items()
                   if v}
            assert got == dict(expected), (bucket, start, end)
            symbols = Counter(r.symbol for r in shown if r.symbol)
            top = dict(zip(trend.top["symbol"]["name"], trend.top["symbol"]["count"],
                           strict=True))
            assert top == {k: v for k, v in symbols.items() if k in top}
            assert len(top) == min(10, len(symbols))


def test_a_cover_is_whole_buckets_and_short_raw_edges() -> None:
    start = datetime(2026, 3, 10, 12, 34, 56, tzinfo=UTC)
    plan = cover(start, start + timedelta(days=3), (60, 3600, 86400))
    assert plan.buckets[0][0] == 86400  # the coarsest first
    assert all(hi is not None and hi - lo < timedelta(minutes=1) for lo, hi in plan.raw)
    assert cover(start.replace(second=0), start.replace(second=0) + timedelta(hours=1),
                 (60, 3600)).raw == ()
    open_ended = cover(start, None, (60, 3600, 86400))
    assert open_ended.buckets[0] == (86400, int(start.timestamp()) // 86400 + 1, None)


def test_every_count_equals_count_star_after_inserts_with_duplicates(engine) -> None:
    rng = random.Random(12)
    events = _random_events(rng, 900, 10, "a")
    assert _store(engine, events) == 900
    # Duplicates, in another batch and inside one: stored once, counted once.
    again = events[:200] + events[100:150]
    assert _store(engine, again) == 0
    _check_every_read(engine, rng)


def test_counts_stay_exact_after_retention_deletes_and_a_restore(engine, tmp_path) -> None:
    rng = random.Random(34)
    _store(engine, _random_events(rng, 700, 12, "r"))
    before = len(_rows(engine))
    folder = tmp_path / "archive"
    retention = Retention(engine, RetentionPolicy(days=6, batch_rows=50,
                                                  archive_dir=str(folder)), Clock(NOW))
    report = retention.run()
    assert report.ok, report.error
    assert 0 < len(_rows(engine)) < before
    _check_every_read(engine, rng)
    retention.restore(sorted(folder.iterdir()))
    assert len(_rows(engine)) == before
    _check_every_read(engine, rng)


def test_counts_stay_exact_when_days_are_made_and_dropped(pg_engine) -> None:
    rng = random.Random(56)
    _store(pg_engine, _random_events(rng, 800, 12, "p"))
    conn = pg_engine.raw_connection()
    try:
        cur = conn.cursor()
        cur.execute("SET TimeZone = 'UTC'")
        conn.commit()
        # The days of the rows get partitions: their rows move out of DEFAULT.
        made = ensure_days(conn, [(NOW - timedelta(days=n)).date() for n in range(14)])
        assert made
        assert len(list_partitions(conn)) > len(made)
    finally:
        conn.close()
    _check_every_read(pg_engine, rng)
    report = Retention(pg_engine, RetentionPolicy(days=5), Clock(NOW)).run()
    assert report.ok, report.error
    assert report.partitions_dropped  # whole days went, with DETACH and DROP
    assert report.partitions_trimmed
    _check_every_read(pg_engine, rng)


def test_counts_survive_a_restart_and_an_existing_store_is_backfilled_once(db_url) -> None:
    rng = random.Random(78)
    engine = make_engine(db_url)
    create_schema(engine)
    _store(engine, _random_events(rng, 600, 10, "b"))
    # As an older version left it: rows, and no count tables or triggers.
    with engine.begin() as conn:
        drop_count_tables(conn)
    engine.dispose()
    for _ in range(2):  # the upgrade, then a plain restart: counted once
        engine = make_engine(db_url)
        create_schema(engine)
        _check_every_read(engine, rng, windows=10)
        engine.dispose()
    engine = make_engine(db_url)
    _store(engine, _random_events(rng, 200, 3, "after"))
    _check_every_read(engine, rng, windows=10)
    engine.dispose()


def test_a_row_stored_late_counts_at_once(engine) -> None:
    rollup = HourlyRollup(engine, Clock(NOW))
    before = rollup.severity_counts(NOW - timedelta(hours=48))
    _store(engine, [event(error_id="late", severity="critical",
                          received_at=NOW - timedelta(hours=30, minutes=10),
                          timestamp=NOW - timedelta(hours=30, minutes=10))])
    assert rollup.severity_counts(NOW - timedelta(hours=48))["critical"] == \
        before["critical"] + 1
    assert build_trend(rollup, NOW - timedelta(hours=48), NOW).total == before["total"] + 1


def test_group_strips_and_health_read_the_counts(engine) -> None:
    hook = GroupsHook(clock=lambda: NOW)
    rng = random.Random(90)
    events = _random_events(rng, 300, 2, "g")
    _store(engine, events, (hook,))
    rows = _rows(engine)
    groups = list_groups(engine, now=NOW)
    assert groups
    for group in groups:
        fp = group["fingerprint"]
        # The strip: the last 24 clock hours, the current one last (with what a producer
        # ahead of this clock already stamped into it).
        start = NOW.replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)
        expected = [0] * 24
        for r in rows:
            if r.fingerprint == fp and start <= r.timestamp:
                k = int((r.timestamp - start) // timedelta(hours=1))
                if k < 24:
                    expected[k] += 1
        assert group["hourly"] == expected
        detail = group_detail(engine, fp, now=NOW)
        first = datetime.fromisoformat(detail["hourly"]["start"].replace("Z", "+00:00"))
        counts = detail["hourly"]["counts"]
        expected = [0] * len(counts)
        for r in rows:
            if r.fingerprint == fp and first <= r.timestamp:
                k = int((r.timestamp - first) // timedelta(hours=1))
                if k < len(counts):
                    expected[k] += 1
        assert counts == expected
    health = health_status(engine, True, True, now=NOW)
    recent = [r for r in rows if r.received_at >= NOW - timedelta(minutes=5)]
    assert health.critical_errors == sum(1 for r in recent if r.severity == "critical")
    assert health.errors == sum(1 for r in recent if r.severity == "error")
    with engine.connect() as conn:
        assert _hourly(conn, [], NOW, NOW) == {}
        assert conn.execute(text("SELECT count(*) FROM error_counts WHERE n <= 0")).scalar() == 0


def test_a_window_up_to_now_counts_all_received_since_its_start(engine) -> None:
    """A window ending now (the Overview cards, Trends' preset ranges) reads its still-open
    buckets whole: a flood in the current ten minutes is counted from the count tables, and
    a row a peer stamped a second ahead of this clock is counted, not left for later."""
    rollup = HourlyRollup(engine, Clock(NOW))
    start = NOW - timedelta(hours=24)
    placed = ([NOW - timedelta(seconds=s) for s in range(1, 400)]  # the open minute and 10 min
              + [start + timedelta(seconds=s) for s in (0, 5, 61, 601)]  # the ragged first edge
              + [start - timedelta(seconds=1), start - timedelta(hours=3)]  # before: not counted
              + [NOW + timedelta(seconds=1)])  # a peer's clock a second ahead
    _store(engine, [event(error_id=f"open{i}", received_at=at, timestamp=at,
                          severity=("error", "critical", "warning")[i % 3],
                          category=("network", "pattern")[i % 2], symbol=f"S{i % 4}")
                    for i, at in enumerate(placed)])
    since = [r for r in _rows(engine) if r.received_at >= start]
    assert len(since) == len(placed) - 2
    trend = build_trend(rollup, start, None)
    assert trend.total == len(since)
    assert int(trend.by_category.to_numpy().sum()) == len(since)
    expected = Counter(r.symbol for r in since)
    assert dict(zip(trend.top["symbol"]["name"], trend.top["symbol"]["count"],
                    strict=True)) == expected
    counts = rollup.severity_counts(start, NOW)
    assert counts["total"] == len(since)
    assert counts["critical"] == sum(1 for r in since if r.severity == "critical")
    # An end in the past stays a closed window: the row ahead of the clock is not in it.
    assert build_trend(rollup, start, NOW - timedelta(seconds=2)).total == \
        sum(1 for r in since if r.received_at < NOW - timedelta(seconds=2))
