"""The batched insert on PostgreSQL and SQLite: duplicates, refused rows, dead letters."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, text

from queries.records import Rejection
from queries.schema import error_logs, rejected_messages
from queries.store import ErrorStore, StoreUnavailable
from tests.factories import event


def _rows(engine, table=error_logs):
    with engine.connect() as conn:
        return conn.execute(select(table)).all()


def _poison(engine) -> None:
    """Make the database refuse any row whose message is POISON, as a constraint would."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE error_logs ADD CONSTRAINT no_poison "
                              "CHECK (error_message <> 'POISON')"))
        else:
            conn.execute(text(
                "CREATE TRIGGER no_poison BEFORE INSERT ON error_logs "
                "WHEN NEW.error_message = 'POISON' BEGIN SELECT RAISE(ABORT, 'poison'); END"))


def test_batch_is_stored_with_every_column(engine):
    store = ErrorStore(engine)
    moment = datetime(2024, 10, 30, 12, 0, 0, 123456, tzinfo=UTC)
    result = store.write_batch([event(error_id="one", timestamp=moment,
                                      context={"symbol": "AAPL", "n": 3}, symbol="AAPL")])
    assert (result.inserted, result.duplicates, result.refused) == (1, 0, [])
    row = _rows(engine)[0]
    assert row.error_id == "one"
    assert row.context == {"symbol": "AAPL", "n": 3}
    stored = row.timestamp if row.timestamp.tzinfo else row.timestamp.replace(tzinfo=UTC)
    assert stored == moment
    assert row.id is not None and row.created_at is not None
    store.close()


def test_missing_fields_are_null_and_awkward_text_comes_back_as_sent(engine):
    store = ErrorStore(engine)
    awkward = 'quote " comma , newline\n\r backslash \\N tab\t and \'single\''
    store.write_batch([
        event(error_id="bare", error_traceback=None, component=None, operation=None,
              symbol=None),
        event(error_id="awkward", error_message=awkward, error_traceback=awkward,
              component="", symbol="BRK.B"),
    ])
    store.close()
    rows = {row.error_id: row for row in _rows(engine)}
    bare = rows["bare"]
    # NULL, not '': on PostgreSQL (COPY) exactly as on SQLite.
    assert (bare.error_traceback, bare.component, bare.operation, bare.symbol) == (
        None, None, None, None)
    shown = rows["awkward"]
    assert shown.error_message == awkward and shown.error_traceback == awkward
    assert shown.component == "" and shown.symbol == "BRK.B"


def test_duplicate_error_id_is_stored_once(engine):
    store = ErrorStore(engine)
    first = store.write_batch([event(error_id="dup"), event(error_id="other")])
    again = store.write_batch([event(error_id="dup", error_message="re-sent")])
    within = store.write_batch([event(error_id="twice"), event(error_id="twice")])
    assert (first.inserted, first.duplicates) == (2, 0)
    assert (again.inserted, again.duplicates) == (0, 1)
    assert (within.inserted, within.duplicates) == (1, 1)
    messages = {r.error_id: r.error_message for r in _rows(engine)}
    assert len(messages) == 3
    assert messages["dup"] == "Pattern detection failed"  # the first copy wins
    store.close()


def test_a_poisoned_row_does_not_sink_its_batch(engine):
    _poison(engine)
    store = ErrorStore(engine)
    batch = [event(error_id=f"good-{i}") for i in range(100)]
    batch[37] = event(error_id="bad-37", error_message="POISON")
    batch[81] = event(error_id="bad-81", error_message="POISON")
    result = store.write_batch(batch)
    assert result.inserted == 98
    assert sorted(r.error_id for r in result.refused) == ["bad-37", "bad-81"]
    assert all("refused by the database" in r.reason for r in result.refused)
    assert all('"POISON"' in r.raw for r in result.refused)
    stored = {r.error_id for r in _rows(engine)}
    assert len(stored) == 98 and "bad-37" not in stored
    store.write_rejections(result.refused)
    assert {r.error_id for r in _rows(engine, rejected_messages)} == {"bad-37", "bad-81"}
    store.close()


def test_rejections_are_stored_with_reason_and_raw_text(engine):
    store = ErrorStore(engine)
    now = datetime.now(UTC)
    store.write_rejections([Rejection(raw="{not json\x00", reason="not valid JSON",
                                      received_at=now, raw_bytes=10)])
    (row,) = _rows(engine, rejected_messages)
    assert (row.raw, row.reason, row.raw_bytes) == ("{not json", "not valid JSON", 10)
    store.close()


def test_unreachable_database_raises_store_unavailable(tmp_path):
    from queries.engine import make_engine

    engine = make_engine("postgresql://postgres@127.0.0.1:1/nothing")
    store = ErrorStore(engine)
    with pytest.raises(StoreUnavailable):
        store.write_batch([event()])
    assert store.ping() is False
    engine.dispose()


def test_missing_table_is_an_outage_not_a_refusal(engine):
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE error_logs"))
    store = ErrorStore(engine)
    with pytest.raises(StoreUnavailable):
        store.write_batch([event()])
    store.close()


def test_count_is_exact_after_many_batches(engine):
    store = ErrorStore(engine)
    total = 0
    for batch_no in range(5):
        result = store.write_batch([event(error_id=f"b{batch_no}-{i}") for i in range(1000)])
        total += result.inserted
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(error_logs)).scalar_one() == 5000
    assert total == 5000
    store.close()


def test_hooks_see_only_new_events_and_a_failing_hook_costs_no_rows(engine):
    seen: list[list[str]] = []

    def record(_conn, _dialect, new) -> None:
        seen.append([e.error_id for e in new])

    store = ErrorStore(engine, hooks=[record])
    store.write_batch([event(error_id="a"), event(error_id="b")])
    result = store.write_batch([event(error_id="a"), event(error_id="c"), event(error_id="c")])
    assert seen == [["a", "b"], ["c"]]
    assert [e.error_id for e in result.new_events] == ["c"]
    store.close()

    def broken(conn, _dialect, _new) -> None:
        cur = conn.cursor()
        cur.execute("INSERT INTO no_such_table VALUES (1)")

    store = ErrorStore(engine, hooks=[broken])
    assert store.write_batch([event(error_id="d")]).inserted == 1
    assert {r.error_id for r in _rows(engine)} == {"a", "b", "c", "d"}
    store.close()
