"""Meters on real SQLite: what outputs may show (the durability contract) and the checkpoints."""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from gateway import config
from gateway.engine import ProfileFlag, ProfileRow, Update
from gateway.meters import Meters
from gateway.model import Reading, Sample
from gateway.store import Store, profile_in, registers_in

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TEXT = """
[gateway]
data_dir = "{data}"
[[meters]]
id = "kept"
[meters.tariff]
source = "command"
[[meters]]
id = "counted"
[[modules]]
type = "s0"
name = "pulses"
meter = "counted"
chip = "/dev/gpiochip0"
line = 17
pulses_per_kwh = 1000
"""


def settings(tmp_path: Path) -> config.Settings:
    return config.loads(TEXT.format(data=tmp_path))


def feed(meters: Meters, meter: str, at: datetime, kwh: str, watts: float = 1000.0) -> None:
    readings = (Reading("1-0:1.8.0", Decimal(kwh), "kWh"), Reading("1-0:1.7.0", watts, "W"))
    meters.note(meters.engines[meter].ingest(Sample(meter, "test", at, readings)))
    meters.heard(meter)


def shown(meters: Meters, meter: str, code: str = "1-0:1.8.0") -> object:
    register = meters.published(meter).get(code)
    return None if register is None else register.value


def test_meter_kept_totals_show_at_once_gateway_counted_ones_only_from_disk(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "gateway.db")
    try:
        meters = Meters(settings(tmp_path), store)
        feed(meters, "kept", START, "10.000")
        feed(meters, "counted", START, "5.000")
        assert shown(meters, "kept") == Decimal("10.000")
        assert shown(meters, "counted") is None, "nothing of it is on disk yet"
        assert shown(meters, "counted", "1-0:1.7.0") == 1000.0, "instantaneous values are live"
        meters.flush(())
        feed(meters, "kept", START + timedelta(seconds=1), "10.001")
        feed(meters, "counted", START + timedelta(seconds=1), "5.001")
        assert shown(meters, "kept") == Decimal("10.001")
        assert shown(meters, "counted") == Decimal("5.000")
        assert "1-0:1.8.0" not in meters.live(meters.engines["counted"].tick(START)).registers
        meters.flush(())
        assert shown(meters, "counted") == Decimal("5.001")
    finally:
        store.close()


def test_after_an_unclean_stop_a_meters_totals_wait_until_it_is_heard(tmp_path: Path) -> None:
    store = Store(tmp_path / "gateway.db")
    meters = Meters(settings(tmp_path), store)
    feed(meters, "kept", START, "10.000")
    meters.flush(())
    store.close()
    store = Store(tmp_path / "gateway.db")
    try:
        again = Meters(settings(tmp_path), store, clean_start=False)
        assert not again.publishable("kept")
        assert shown(again, "kept") is None, "10.000 may be below what was shown before the cut"
        feed(again, "kept", START + timedelta(minutes=5), "10.100")
        assert again.publishable("kept")
        assert shown(again, "kept") == Decimal("10.100")
        clean = Meters(settings(tmp_path), store)
        assert shown(clean, "kept") == Decimal("10.000"), "an orderly stop wrote what was shown"
    finally:
        store.close()


def bodies(store: Store) -> dict[str, bytes]:
    # Through the store's own connection: it holds the database exclusively.
    return dict(store.connection.execute("SELECT meter, body FROM meter_checkpoint"))


def test_a_checkpoint_writes_only_the_meters_that_changed(tmp_path: Path) -> None:
    store = Store(tmp_path / "gateway.db")
    try:
        meters = Meters(settings(tmp_path), store)
        feed(meters, "kept", START, "10.000")
        feed(meters, "counted", START, "5.000")
        meters.flush(())
        before = bodies(store)
        total_before = registers_in(store.connection, "kept")["1-0:1.8.0"]
        # A reading of the power alone on one meter: the other meter's row is not rewritten,
        # and the unmoved total keeps its time.
        power = (Reading("1-0:1.7.0", 1500.0, "W"),)
        later = Sample("kept", "test", START + timedelta(seconds=1), power)
        meters.note(meters.engines["kept"].ingest(later))
        meters.note(Update("counted"))  # touched, but nothing in it moved
        meters.flush(())
        after = bodies(store)
        assert after["counted"] == before["counted"]
        assert after["kept"] != before["kept"]
        kept = registers_in(store.connection, "kept")
        assert kept["1-0:1.8.0"] == total_before, "an unmoved total keeps its value and time"
        assert kept["1-0:1.7.0"].value == 1500.0
        meters.flush(())  # nothing pending: no transaction at all
        assert bodies(store) == after
    finally:
        store.close()


def test_a_tariff_switch_checkpoints_at_once_a_first_value_does_not(tmp_path: Path) -> None:
    store = Store(tmp_path / "gateway.db")
    try:
        meters = Meters(settings(tmp_path), store)
        engine = meters.engines["kept"]
        readings = (Reading("1-0:1.8.0", Decimal("1.000"), "kWh"),)
        first = engine.ingest(Sample("kept", "test", START, readings))
        assert not meters.due_checkpoint(first)
        meters.note(first)
        meters.flush(())
        switch, _ = engine.command("set_tariff", {"tariff": 2}, START + timedelta(seconds=1))
        assert meters.due_checkpoint(switch) == "soon", "gathered with the other meters'"
        counted = meters.engines["counted"].ingest(Sample("counted", "test", START, readings))
        assert meters.due_checkpoint(counted) == "now", "a first gateway-counted total"
    finally:
        store.close()


def test_intervals_carried_in_a_checkpoint_row_survive_a_kill_and_are_read_once(
    tmp_path: Path,
) -> None:
    """Profile intervals closed before a checkpoint ride in the meter's row; a restart from
    that row (a kill -9: no orderly stop) still reads each one once and carries them on."""
    path = tmp_path / "gateway.db"
    span = (START - timedelta(days=1), START + timedelta(days=1))
    child = os.fork()
    if child == 0:  # pragma: no cover - the child checkpoints, then dies as by kill -9
        try:
            store = Store(path)
            meters = Meters(settings(tmp_path), store)
            for minute in range(0, 50, 5):  # three quarter hours close
                feed(meters, "kept", START + timedelta(minutes=minute), f"{10 + minute / 100:.3f}")
                meters.flush(())
        finally:
            os.kill(os.getpid(), signal.SIGKILL)
    _, status = os.waitpid(child, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    # The store was never closed: SQLite replays its WAL.
    store = Store(path)
    try:
        before = list(store.profile("kept", None, *span))
        assert [row.start.minute for row in before] == [0, 15, 30]
        (filed,) = store.connection.execute("SELECT count(*) FROM interval_log").fetchone()
        assert filed == 0, "three intervals fit the row: no interval log page written yet"
        again = Meters(settings(tmp_path), store, clean_start=False)
        assert list(store.profile("kept", None, *span)) == before
        feed(again, "kept", START + timedelta(minutes=50), "10.500")
        feed(again, "kept", START + timedelta(minutes=61), "10.610")
        again.flush(())
        after = list(store.profile("kept", None, *span))
        assert after[:3] == before
        assert [row.start.minute for row in after] == [0, 15, 30, 45]
    finally:
        store.close()


def test_a_prune_of_every_meter_is_one_commit(tmp_path: Path) -> None:
    store = Store(tmp_path / "gateway.db")
    try:
        meters = Meters(settings(tmp_path), store)
        old = ProfileRow(
            START, START + timedelta(minutes=15), {"1-0:1.8.0": Decimal("1.000")}, ProfileFlag(0)
        )
        for meter in ("kept", "counted"):
            store.add_profile(meter, [old])
        statements: list[str] = []
        store.connection.set_trace_callback(statements.append)
        try:
            meters.prune(START + timedelta(days=3650))
        finally:
            store.connection.set_trace_callback(None)
        assert statements.count("COMMIT") == 1, "a commit each would cost the card once a meter"
        assert profile_in(store.connection, "kept") == profile_in(store.connection, "counted") == []
    finally:
        store.close()
