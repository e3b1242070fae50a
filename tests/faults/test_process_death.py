"""Process death: kill -9 at random moments under load.

After every kill: SQLite's integrity check passes, no lifetime register is lower than before the
kill, and the next start says READY=1 (startup time is a figure, the bound here is generous).
"""

from __future__ import annotations

import random
import signal
import statistics
import time
from decimal import Decimal
from pathlib import Path

import pytest

from tests.faults.harness import (
    READY_TIMEOUT_S,
    cycles,
    figure,
    gateway_process,
    stored_totals,
)
from tests.support.configs import sim_gateway_toml
from tests.support.processes import Broker, free_port


@pytest.mark.slow
@pytest.mark.timeout(0)  # bounded by the cycle count; `make soak` runs 100 cycles
def test_kill_nine_under_load_never_loses_ground(tmp_path: Path, broker: Broker) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(
        sim_gateway_toml(
            tmp_path,
            persist_interval_s=0.3,
            mqtt_port=broker.port,
            http_port=free_port(),
            speed=3600.0,
            interval_s=0.02,
            pv_kwp=5.0,
        )
    )
    log = tmp_path / "gateway.log"
    rng = random.Random(17)
    rounds = cycles(quick=4)
    previous: dict[str, Decimal] = {}
    ready: list[float] = []
    grew = 0
    for attempt in range(rounds):
        with gateway_process(config, log) as started:
            ready.append(started.ready_s)
            time.sleep(rng.uniform(0.2, 1.5))
            started.process.send_signal(signal.SIGKILL)
            started.process.wait(10)
        totals = stored_totals(tmp_path / "gateway.db")
        for code, value in previous.items():
            assert totals[code] >= value, (
                f"kill {attempt}: {code} went back {value} -> {totals[code]}"
            )
        # Import or export: the sim's sun (the wall clock's time of day) decides which moves.
        grew += any(
            totals.get(code, Decimal(0)) > previous.get(code, Decimal(0))
            for code in ("1-0:1.8.0", "1-0:2.8.0")
        )
        previous = totals
    assert grew >= rounds // 2, "the meter must advance between kills for the test to mean much"
    assert max(ready) < READY_TIMEOUT_S
    figure("kill -9 cycles", rounds)
    figure("startup to READY=1 after kill -9, median s", round(statistics.median(ready[1:]), 3))
    figure("startup to READY=1 after kill -9, max s", round(max(ready[1:]), 3))
