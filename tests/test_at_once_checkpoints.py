"""Checkpoints on a real SQLite file: what cannot wait for the interval (a tariff switch) shares
one commit for every meter crossing the same instant (GATHER_AT_ONCE_S), a stop in between still
writes it, and what modules keep for the checkpoint rides in its commit."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from gateway.app import Gateway
from gateway.engine.book import ACTIVE_TARIFF
from gateway.model import Reading, Sample
from gateway.store import Store, registers_in
from tests.support.gateway import offline_text, running, until

METERS = [f"m{n}" for n in range(10)]
# A Monday; the schedule switches to tariff 2 at noon (UTC) every day.
NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
METER = """
[[meters]]
id = "{meter}"
[meters.debiting]
period = "none"
[[meters.tariff.seasons]]
weekday = [{{ at = "00:00", tariff = 1 }}, {{ at = "12:00", tariff = 2 }}]
"""


def settings_text(data: Path) -> str:
    body = "".join(METER.format(meter=meter) for meter in METERS)
    # The interval far away: only the at-once checkpoints of the switch write.
    return offline_text(data, body, persist_interval_s=3600, gateway='timezone = "UTC"\n')


def submit(gateway: Gateway, meter: str, at: datetime, kwh: str) -> None:
    readings = (Reading("1-0:1.8.0", Decimal(kwh), "kWh"), Reading("1-0:1.7.0", 500.0, "W"))
    gateway.submit("test", Sample(meter, "test", at, readings))


def tariffs_on_disk(store: Store) -> dict[str, object]:
    return {
        meter: register.value
        if (register := registers_in(store.connection, meter).get(ACTIVE_TARIFF))
        else None
        for meter in METERS
    }


async def cross_noon(gateway: Gateway) -> None:
    """Each meter's sample before noon, on disk; then each one's first after noon, one meter
    per turn of the event loop (as samples arrive)."""
    for meter in METERS:
        submit(gateway, meter, NOON - timedelta(seconds=30), "1.000")
    gateway.persist()
    assert set(tariffs_on_disk(gateway.store).values()) == {1}
    for meter in METERS:
        submit(gateway, meter, NOON + timedelta(seconds=30), "1.010")
        await asyncio.sleep(0)


class CheckpointCommits:
    """Counts the committed transactions that wrote meter checkpoints, from the statements the
    store's connection runs (SQLite's own trace)."""

    def __init__(self) -> None:
        self.count = 0
        self._writes_checkpoints = False

    def __call__(self, sql: str) -> None:
        statement = sql.lstrip().upper()
        if statement.startswith("INSERT INTO METER_CHECKPOINT"):
            self._writes_checkpoints = True
        elif statement.startswith(("COMMIT", "ROLLBACK")):
            self.count += statement.startswith("COMMIT") and self._writes_checkpoints
            self._writes_checkpoints = False


async def test_a_tariff_switch_of_ten_meters_is_one_commit(tmp_path: Path) -> None:
    async with running(settings_text(tmp_path)) as gateway:
        commits = CheckpointCommits()
        gateway.store.connection.set_trace_callback(commits)
        try:
            await cross_noon(gateway)
            await until(
                lambda: set(tariffs_on_disk(gateway.store).values()) == {2},
                what="every meter's switch on disk",
            )
        finally:
            gateway.store.connection.set_trace_callback(None)
        # One commit for the ten (one for each would be ten). A second only when the warm-up's
        # 1 s checkpoint fell due in the same turn of the loop as the first switch.
        assert 1 <= commits.count <= 2


async def test_a_switch_waiting_to_be_gathered_is_written_on_the_way_out(tmp_path: Path) -> None:
    async with running(settings_text(tmp_path)) as gateway:
        await cross_noon(gateway)
        # Stopped inside the gathering delay: the orderly stop writes it.
    store = Store(tmp_path / "gateway.db")
    try:
        assert set(tariffs_on_disk(store).values()) == {2}
    finally:
        store.close()


async def test_a_kept_module_state_rides_in_the_checkpoint_commit(tmp_path: Path) -> None:
    """A value a module keeps (a pulse count) costs no commit of its own, is read back at once,
    and waits through a store that cannot be written."""
    async with running(settings_text(tmp_path)) as gateway:
        statements: list[str] = []
        gateway.store.connection.set_trace_callback(statements.append)
        try:
            gateway.keep_state("pulses", "totals", b"41")
            gateway.keep_state("pulses", "totals", b"42")  # only the newest is written
            assert statements == [], "kept, not written"
            assert gateway.load_state("pulses", "totals") == b"42"
            submit(gateway, "m0", NOON, "1.000")
            gateway.store.connection.execute("PRAGMA query_only = 1")
            gateway.persist()  # refused: the value waits
            gateway.store.connection.execute("PRAGMA query_only = 0")
            statements.clear()
            gateway.persist()
        finally:
            gateway.store.connection.set_trace_callback(None)
        assert statements.count("COMMIT") == 1
        written = [s for s in statements if "module_state" in s or "meter_checkpoint" in s]
        assert any("module_state" in s for s in written)
        assert any("meter_checkpoint" in s for s in written)
        assert gateway.store.get_state("pulses", "totals") == b"42"
