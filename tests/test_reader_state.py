"""The state the reader process shares: read back whole, and never a failed status read."""

from __future__ import annotations

from ingest.reader_state import GAP_SLOTS, create_state, moment


def test_gaps_read_back_with_their_times_and_reasons(tmp_path):
    state = create_state(tmp_path)
    state.subscribed = 1
    state.mark_lost("connection reset")
    closed = state.mark_subscribed()
    gaps = state.gap_list()
    assert len(gaps) == 1
    start, end, reason = gaps[0]
    assert reason == "connection reset"
    assert end is not None and end >= start
    assert closed is not None and closed >= 0


def test_a_slot_holding_no_real_time_is_skipped_not_raised(tmp_path):
    # A state file from another build, or cut short, can hold any bit pattern.
    state = create_state(tmp_path)
    state.subscribed = 1
    state.mark_lost("first")
    state.mark_subscribed()
    state.gaps[0].start = 1e300
    state.gaps[0].end = float("inf")
    state.subscribed = 1
    state.mark_lost("second")
    reasons = [reason for _, _, reason in state.gap_list()]
    assert reasons == ["second"]
    assert moment(float("nan")) is None
    assert moment(-1e20) is None
    assert moment(0.0) is None


def test_only_the_last_slots_are_kept(tmp_path):
    state = create_state(tmp_path)
    for n in range(GAP_SLOTS + 5):
        state.subscribed = 1
        state.mark_lost(f"gap {n}")
        state.mark_subscribed()
    gaps = state.gap_list()
    assert len(gaps) == GAP_SLOTS
    assert gaps[-1][2] == f"gap {GAP_SLOTS + 4}"
