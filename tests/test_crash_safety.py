"""Pull the plug: kill -9 at random moments never makes a register go backwards."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import time
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.store import registers_in
from tests.support.configs import sim_gateway_toml
from tests.support.on_disk import on_disk
from tests.support.processes import GATEWAY, gateway


def config_text(data: Path, persist_interval_s: float = 0.3) -> str:
    """A fast sim (an hour of meter time a second, sun included), persisting often."""
    return sim_gateway_toml(
        data, persist_interval_s=persist_interval_s, speed=3600.0, interval_s=0.02, pv_kwp=5.0
    )


TOTALS = ("1-0:1.8.0", "1-0:2.8.0", "1-0:3.8.0", "1-0:4.8.0")


def stored_import(db_path: Path) -> Decimal:
    """A+ as committed right now, or 0 before the gateway has created its store."""
    with on_disk(db_path) as db:
        try:
            total = registers_in(db, "main").get("1-0:1.8.0")
        except sqlite3.OperationalError:  # the schema is not there yet
            return Decimal(0)
    return Decimal(total.value) if total else Decimal(0)


def wait_for_import_above(db_path: Path, floor: Decimal, timeout_s: float = 60.0) -> None:
    """Block until the gateway has committed A+ above `floor`: a busy machine starts it late."""
    deadline = time.monotonic() + timeout_s
    while stored_import(db_path) <= floor:
        assert time.monotonic() < deadline, f"A+ never passed {floor} within {timeout_s} s"
        time.sleep(0.05)


def read_totals(db_path: Path) -> dict[str, Decimal]:
    with on_disk(db_path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        registers = registers_in(db, "main")
    return {code: Decimal(registers[code].value) for code in TOTALS if code in registers}


@pytest.mark.slow
def test_twenty_kill_nines_never_lose_ground(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(config_text(tmp_path))
    rng = random.Random(20)
    previous: dict[str, Decimal] = {}
    grew = 0
    for attempt in range(20):
        with gateway(config, log=tmp_path / "gateway.log") as process:
            # Kill only once this run has committed something of its own, then at a random
            # moment after: the kill must be able to land mid-write, and a slow start on a busy
            # machine must not turn the cycle into a kill before anything ran.
            wait_for_import_above(tmp_path / "gateway.db", previous.get("1-0:1.8.0", Decimal(0)))
            time.sleep(rng.uniform(0.0, 1.0))
            process.send_signal(signal.SIGKILL)
            process.wait(10)
        totals = read_totals(tmp_path / "gateway.db")
        for code, value in previous.items():
            assert totals[code] >= value, (
                f"run {attempt}: {code} went back {value} -> {totals[code]}"
            )
        grew += totals.get("1-0:1.8.0", Decimal(0)) > previous.get("1-0:1.8.0", Decimal(0))
        previous = totals
    assert grew >= 15, "the meter must actually advance between kills for the test to mean much"


def test_sigterm_flushes_and_exits_cleanly_within_ten_seconds(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(config_text(tmp_path, persist_interval_s=3600))
    log = tmp_path / "gateway.log"
    with gateway(config, log=log) as process:
        # The first-30-s fast persistence writes a value within a second of the first sample.
        wait_for_import_above(tmp_path / "gateway.db", Decimal(0))
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        assert time.monotonic() - started < 10
    # The store is whole and holds the registers after the ordered stop.
    assert read_totals(tmp_path / "gateway.db")["1-0:1.8.0"] > 0
    assert "stopping" in log.read_text()


def test_version_command() -> None:
    result = subprocess.run([str(GATEWAY), "version"], capture_output=True, text=True, check=True)
    assert result.stdout.startswith("meter-gateway ")
