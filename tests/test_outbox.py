"""The outbox on real SQLite: memory first, spills in order, durability, the size bound."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.mqtt.outbox import ROW_OVERHEAD_B, Outbox, Policy
from gateway.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    instance = Store(tmp_path / "gateway.db")
    try:
        yield instance
    finally:
        instance.close()


def numbers(outbox: Outbox) -> list[int]:
    return [int(m.payload) for m in outbox.peek(0, 10_000)]


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def rows_on_disk(store: Store) -> int:
    with store.transaction() as db:
        return int(db.execute("SELECT count(*) FROM outbox").fetchone()[0])


def test_messages_come_back_in_order_and_leave_only_when_acked(store: Store) -> None:
    outbox = Outbox(store, max_bytes=10_000_000)
    ids = [outbox.append(f"t/{n % 3}", str(n).encode(), retain=n % 2 == 0) for n in range(10)]
    assert all(isinstance(i, int) for i in ids)
    batch = outbox.peek(0, 4)
    assert [int(m.payload) for m in batch] == [0, 1, 2, 3]
    assert [m.retain for m in batch] == [True, False, True, False]
    assert [m.topic for m in batch] == ["t/0", "t/1", "t/2", "t/0"]
    assert [int(m.payload) for m in outbox.peek(batch[-1].id, 100)] == list(range(4, 10))
    for message in batch[:3]:
        outbox.ack(message.id)
    assert outbox.depth == outbox.waiting == 7
    assert numbers(outbox) == list(range(3, 10))
    assert rows_on_disk(store) == 0, "a broker that keeps up never costs a disk write"


def test_only_messages_waiting_past_spill_after_go_to_disk_all_at_once(store: Store) -> None:
    clock = Clock()
    outbox = Outbox(store, max_bytes=10_000_000, spill_after_s=30.0, monotonic=clock)
    outbox.append("t", b"0")
    clock.now += 29.0
    outbox.append("t", b"1")
    assert not outbox.spill_due()
    clock.now += 1.0
    assert outbox.spill_due()
    assert outbox.spill() == 2
    assert rows_on_disk(store) == 2
    assert not outbox.spill_due()
    outbox.append("t", b"2")  # newer than every row: after them, from memory
    assert numbers(outbox) == [0, 1, 2]
    assert outbox.depth == 3 and outbox.on_disk == 2


def test_health_figures_count_what_waits_not_what_is_in_flight_or_deleted_later(
    store: Store,
) -> None:
    clock = Clock()
    outbox = Outbox(store, max_bytes=10_000_000, monotonic=clock)
    outbox.append("t", b"old")
    outbox.spill()  # on disk now, as after an outage
    clock.now += 5.0
    outbox.append("t", b"in flight")
    assert outbox.waiting == 2
    # The status shows the spilled message, not the one sent a moment ago.
    messages, size = outbox.backlog(1.0)
    assert messages == 1 and size == outbox.waiting_bytes - (len(b"in flight") + 1 + ROW_OVERHEAD_B)
    clock.now += 1.0
    assert outbox.backlog(1.0) == (2, outbox.waiting_bytes)
    for message in outbox.peek(0, 10):
        outbox.ack(message.id)
    # The acknowledged row is deleted at the next commit; until then it still takes its bytes on
    # disk, but nothing waits: messages and bytes agree.
    assert outbox.bytes > 0 and rows_on_disk(store) == 1
    assert (outbox.waiting, outbox.waiting_bytes) == (0, 0)
    assert outbox.backlog(1.0) == (0, 0)
    outbox.commit_acks()
    assert (outbox.bytes, outbox.waiting_bytes) == (0, 0)


def test_spilled_rows_survive_a_kill_and_go_first_after_the_restart(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"
    store = Store(path)
    outbox = Outbox(store, max_bytes=10_000_000)
    for n in range(5):
        outbox.append("t", str(n).encode())
    outbox.ack(outbox.peek(0, 1)[0].id)  # delivered from memory: never written
    outbox.spill()
    in_flight = outbox.peek(0, 1)[0]
    outbox.ack(in_flight.id)  # a PUBACK for a row already spilled deletes it from disk
    outbox.commit_acks()
    outbox.append("t", b"lost")  # memory only: a kill -9 now loses it
    size = outbox.bytes - (len(b"lost") + len(b"t") + ROW_OVERHEAD_B)
    spilled_last = outbox.peek(0, 100)[-2].id
    store._db.close()  # the process dies: no shutdown spill

    store = Store(path)
    try:
        again = Outbox(store, max_bytes=10_000_000)
        assert numbers(again) == [2, 3, 4]
        assert again.depth == 3
        assert again.bytes == size
        new = again.append("t", b"5")
        assert new is not None and new > spilled_last, "after every spilled row"
        assert numbers(again) == [2, 3, 4, 5]
    finally:
        store.close()


def test_a_spill_joins_the_callers_transaction(store: Store) -> None:
    outbox = Outbox(store, max_bytes=10_000_000)
    outbox.append("t", b"kept")
    outbox.spill()
    outbox.append("t", b"rolled back")
    with pytest.raises(RuntimeError), store.transaction():
        outbox.spill()
        raise RuntimeError("the checkpoint failed")
    assert outbox.on_disk == 1, "counters follow the rollback"
    assert rows_on_disk(store) == 1


def test_counters_follow_a_spill_the_full_disk_rolled_back(store: Store) -> None:
    outbox = Outbox(store, max_bytes=100_000_000)
    outbox.append("t", b"kept")
    outbox.spill()
    with store.transaction() as db:
        (pages,) = db.execute("PRAGMA page_count").fetchone()
        db.execute(f"PRAGMA max_page_count = {pages + 2}")  # SQLite's own "disk full"
    for _ in range(100):
        outbox.append("t", os.urandom(4000))  # incompressible: every row needs a page
    with pytest.raises(sqlite3.OperationalError, match="full"):
        outbox.spill()
    assert outbox.on_disk == 1  # no resync() by hand
    assert outbox.depth == 101, "what could not be spilled still waits in memory"
    assert [m.payload for m in outbox.peek(0, 1)] == [b"kept"]


def test_large_payloads_are_deflated_on_disk_and_come_back_exactly(store: Store) -> None:
    outbox = Outbox(store, max_bytes=10_000_000)
    payload = (
        b'{"readings":{'
        + b",".join(
            b'"v%d":{"value":%d.5,"unit":"kWh","at":"2025-01-01T00:00:00.000Z"}' % (n, n)
            for n in range(40)
        )
        + b"}}"
    )
    small = b"offline"
    outbox.append("big", payload)
    outbox.append("small", small)
    outbox.spill()
    assert [m.payload for m in outbox.peek()] == [payload, small]
    assert outbox.bytes < len(payload) // 3
    with store.transaction() as db:
        flags = [row[0] for row in db.execute("SELECT encoding FROM outbox ORDER BY id")]
    assert flags == [2, 0]


def test_drop_oldest_keeps_the_newest_within_the_bound(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"
    store = Store(path)
    row = len(b"000") + len(b"topic") + ROW_OVERHEAD_B
    outbox = Outbox(store, max_bytes=row * 10, policy="drop_oldest")
    for n in range(25):
        outbox.append("topic", b"%03d" % n)
        outbox.spill()
        assert outbox.bytes <= outbox.max_bytes
    assert numbers(outbox) == list(range(15, 25))
    assert outbox.dropped == 15
    store.close()
    store = Store(path)
    try:
        assert Outbox(store, max_bytes=row * 10).dropped == 15, "the count survives restarts"
    finally:
        store.close()


def test_drop_newest_refuses_what_does_not_fit(store: Store) -> None:
    row = len(b"000") + len(b"topic") + ROW_OVERHEAD_B
    outbox = Outbox(store, max_bytes=row * 10, policy="drop_newest")
    for n in range(12):
        outbox.append("topic", b"%03d" % n)
    assert outbox.spill() == 10
    assert numbers(outbox) == list(range(10))
    assert outbox.dropped == 2


def test_a_message_larger_than_the_bound_is_dropped_not_emptying_the_outbox(
    store: Store,
) -> None:
    outbox = Outbox(store, max_bytes=1000)
    outbox.append("t", b"1")
    outbox.spill()
    outbox.append("t", os.urandom(2000))
    outbox.spill()
    assert numbers(outbox) == [1]
    assert outbox.dropped == 1


def test_oldest_is_the_first_unacknowledged_message(store: Store) -> None:
    outbox = Outbox(store, max_bytes=1_000_000)
    assert outbox.oldest() is None
    first = outbox.append("t", b"1")
    outbox.append("t", b"2")
    oldest = outbox.oldest()
    assert oldest is not None
    assert first is not None
    outbox.spill()
    assert outbox.oldest() == oldest, "a spilled message keeps its time"
    outbox.ack(first)
    outbox.commit_acks()
    second = outbox.oldest()
    assert second is not None and second >= oldest


operations = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, 300)),
        st.tuples(st.just("ack"), st.integers(0, 5)),
        st.tuples(st.just("commit"), st.just(0)),
        st.tuples(st.just("spill"), st.just(0)),
    ),
    max_size=60,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=operations, policy=st.sampled_from(["drop_oldest", "drop_newest"]))
def test_any_sequence_keeps_order_bound_and_accounting(
    tmp_path: Path, ops: list[tuple[str, int]], policy: Policy
) -> None:
    store = Store(tmp_path / f"h{abs(hash((tuple(ops), policy)))}.db")
    try:
        outbox = Outbox(store, max_bytes=2_000, policy=policy)
        serial = 0
        for op, arg in ops:
            if op == "append":
                outbox.append("t", b"%06d" % serial + b"x" * arg)
                serial += 1
            elif op == "ack":
                for message in outbox.peek(0, arg):
                    outbox.ack(message.id)
            elif op == "spill":
                outbox.spill()
                assert outbox.on_disk == 0 or outbox.bytes <= outbox.max_bytes
            else:
                outbox.commit_acks()
            assert 0 <= outbox.waiting <= outbox.depth
        kept = [int(m.payload[:6]) for m in outbox.peek(0, 10_000)]
        assert kept == sorted(kept), "order is never changed"
        depth, on_disk = outbox.depth, outbox.on_disk
        outbox.resync()
        assert (outbox.depth, outbox.on_disk) == (depth, on_disk), "counters match the disk"
    finally:
        store.close()
