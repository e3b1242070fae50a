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

from tests.support.processes import GATEWAY, gateway

CONFIG = """
[gateway]
data_dir = "{data}"
persist_interval_s = 0.3
[mqtt]
enabled = false
[http]
enabled = false
[zeroconf]
enabled = false
[[meters]]
id = "main"
[[modules]]
type = "sim"
name = "sim1"
meter = "main"
speed = 3600.0
interval_s = 0.02
pv_kwp = 5.0
"""

TOTALS = ("1-0:1.8.0", "1-0:2.8.0", "1-0:3.8.0", "1-0:4.8.0")


def read_totals(db_path: Path) -> dict[str, Decimal]:
    db = sqlite3.connect(db_path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = db.execute(
            "SELECT obis, value FROM registers WHERE meter = 'main' AND obis IN (?,?,?,?)", TOTALS
        ).fetchall()
    finally:
        db.close()
    return {obis: Decimal(value) for obis, value in rows}


@pytest.mark.slow
def test_twenty_kill_nines_never_lose_ground(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(CONFIG.format(data=tmp_path))
    rng = random.Random(20)
    previous: dict[str, Decimal] = {}
    grew = 0
    for attempt in range(20):
        with gateway(config, log=tmp_path / "gateway.log") as process:
            time.sleep(rng.uniform(0.6, 1.6))
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
    config.write_text(
        CONFIG.format(data=tmp_path).replace(
            "persist_interval_s = 0.3", "persist_interval_s = 3600"
        )
    )
    log = tmp_path / "gateway.log"
    with gateway(config, log=log) as process:
        time.sleep(1.5)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        assert time.monotonic() - started < 10
    # With an hour between periodic flushes, only the shutdown flush can have written these.
    assert read_totals(tmp_path / "gateway.db")["1-0:1.8.0"] > 0
    assert "stopping" in log.read_text()


def test_version_command() -> None:
    result = subprocess.run([str(GATEWAY), "version"], capture_output=True, text=True, check=True)
    assert result.stdout.startswith("meter-gateway ")
