"""The writer thread: small batches soon, floods in large batches, outages retried."""

from __future__ import annotations

import time

from sqlalchemy import func, select

from ingest.batch_writer import BatchWriter
from queries.engine import make_engine
from queries.schema import create_schema, error_logs, rejected_messages
from queries.store import ErrorStore
from tests.conftest import wait_for
from tests.factories import event


def _count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(error_logs)).scalar_one()


def test_a_single_event_is_stored_well_within_a_second(engine):
    writer = BatchWriter(ErrorStore(engine), max_rows=5000, max_wait=0.1)
    writer.start()
    try:
        started = time.monotonic()
        writer.submit([event()])
        wait_for(lambda: writer.stored == 1, timeout=2)
        assert time.monotonic() - started < 0.5
    finally:
        writer.stop()
    assert _count(engine) == 1


def test_a_flood_is_written_in_large_batches(engine):
    writer = BatchWriter(ErrorStore(engine), max_rows=2000, max_wait=0.2)
    for start in range(0, 20000, 500):
        writer.submit([event(error_id=f"f{i}") for i in range(start, start + 500)])
    writer.start()
    try:
        wait_for(lambda: writer.stored == 20000, timeout=30)
    finally:
        writer.stop()
    assert writer.batches <= 12  # 20,000 rows at up to 2,000 a batch
    assert _count(engine) == 20000


def test_stop_flushes_everything_pending(engine):
    writer = BatchWriter(ErrorStore(engine), max_rows=100, max_wait=5.0)
    writer.start()
    writer.submit([event(error_id=f"s{i}") for i in range(250)])
    writer.stop()
    assert writer.pending == 0
    assert _count(engine) == 250


def test_events_wait_while_the_store_is_missing_and_are_written_when_it_is_back(
        tmp_path):
    url = f"sqlite:///{tmp_path}/later.db"
    engine = make_engine(url)  # no tables yet: every write fails as an outage
    writer = BatchWriter(ErrorStore(engine), max_rows=100, max_wait=0.05)
    writer.start()
    try:
        writer.submit([event(error_id=f"w{i}") for i in range(30)])
        wait_for(lambda: writer.store_ok is False, message="the writer to see the outage")
        assert writer.pending == 30 and writer.stored == 0
        create_schema(engine)
        wait_for(lambda: writer.stored == 30, timeout=20, message="the retry to store all")
        assert writer.store_ok is True
    finally:
        writer.stop()
    assert _count(engine) == 30
    engine.dispose()


def test_checkpoints_follow_commits_in_order_while_batches_overlap(
        engine):
    """The stager COPYs the next batch while the writer commits the last: a checkpoint must
    still never be reported before every event up to it is committed, nor out of order."""
    reported: list[tuple[int, int]] = []  # (position, rows committed when it was reported)

    def on_commit(position: int) -> None:
        reported.append((position, _count(engine)))

    writer = BatchWriter(ErrorStore(engine), max_rows=700, max_wait=0.02, on_commit=on_commit)
    assert len(writer.stores) == (2 if engine.dialect.name == "postgresql" else 1)
    writer.start()
    try:
        submitted = 0
        for chunk in range(40):
            events = [event(error_id=f"o{chunk}-{i}") for i in range(250)]
            submitted += len(events)
            writer.submit(events, position=submitted)
            if chunk % 7 == 0:
                time.sleep(0.03)  # some batches small, some full
        wait_for(lambda: reported and reported[-1][0] == submitted, timeout=30,
                 message="the last checkpoint")
    finally:
        writer.stop()
    positions = [position for position, _ in reported]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    for position, rows in reported:
        assert rows >= position, f"checkpoint {position} reported with only {rows} rows in"
    assert writer.batches >= 10  # the overlap was exercised, not one batch at the end
    assert _count(engine) == 10000 and writer.pending == 0


def test_a_poisoned_row_in_a_staged_batch_is_dead_lettered_and_the_rest_stored(
        engine):
    """The constraint refuses the row at the INSERT, after the stager COPYed its batch: the
    writer must fall back to finding the row, dead-letter it, and still report the checkpoint."""
    from tests.test_store import _poison, _rows

    _poison(engine)
    reported: list[int] = []
    writer = BatchWriter(ErrorStore(engine), max_rows=300, max_wait=0.02,
                         on_commit=reported.append)
    writer.start()
    try:
        for chunk in range(6):
            events = [event(error_id=f"p{chunk}-{i}") for i in range(200)]
            events[123] = event(error_id=f"bad-{chunk}", error_message="POISON")
            writer.submit(events, position=(chunk + 1) * 200)
        wait_for(lambda: reported and reported[-1] == 1200, timeout=30,
                 message="the checkpoint after the last chunk")
    finally:
        writer.stop()
    assert writer.stored == 1194 and writer.refused == 6 and writer.dead_letters_stored == 6
    assert _count(engine) == 1194
    assert {r.error_id for r in _rows(engine, rejected_messages)} == {
        f"bad-{chunk}" for chunk in range(6)}


def test_a_steady_stream_is_committed_within_the_batch_wait_while_checkpoints_are_pending(
        engine):
    """Ten events every 5 ms, each chunk with its spool position, as the pipeline submits
    them at 2,000 msg/s: each must be committed about `max_wait` after it came, however the
    stager's waits fall between the commits of the batches in flight."""
    committed_at: dict[int, float] = {}
    writer = BatchWriter(ErrorStore(engine), max_rows=5000, max_wait=0.1,
                         on_commit=lambda position: committed_at.setdefault(
                             position, time.monotonic()))
    writer.start()
    submitted_at: dict[int, float] = {}
    try:
        for position in range(1, 401):
            submitted_at[position] = time.monotonic()
            writer.submit([event(error_id=f"t{position}-{i}") for i in range(10)],
                          position=position)
            time.sleep(0.005)
        wait_for(lambda: 400 in committed_at, timeout=10, message="the last checkpoint")
    finally:
        writer.stop()
    # A checkpoint covers every position before it: each position is in once a later one is.
    delays = sorted(min(at for reported, at in committed_at.items() if reported >= position)
                    - submitted_at[position] for position in submitted_at)
    assert delays[-1] < 0.4, f"slowest commit {delays[-1]:.3f} s after submit"
    assert _count(engine) == 4000
