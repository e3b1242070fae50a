"""S0 end to end through a real mosquitto: pulses in, state out, set_total over MQTT.

The gateway runs in-process (with its real MQTT bridge) because the software GPIO chip lives
in the test's process; the broker and the subscriber are real.
"""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway import config
from gateway.app import Gateway
from modules.s0.pulses import NS_PER_S
from modules.s0.software import SoftwareChip
from tests.support.configs import gateway_toml
from tests.support.mqtt import Collector, until
from tests.support.processes import Broker

pytestmark = pytest.mark.network

BASE = "meter-gateway/home"  # <base_topic>/<gateway name>
STATE = f"{BASE}/main/state"


def settings_for(tmp_path: Path, port: int) -> config.Settings:
    s0 = """
[[modules]]
type = "s0"
name = "s0main"
meter = "main"
chip = "software:mqtt"
line = "S0"
publish_interval_s = 0.05
"""
    return config.loads(
        gateway_toml(
            tmp_path,
            s0,
            name="home",
            persist_interval_s=0.2,
            mqtt_port=port,
            mqtt="unsigned_commands = true  # the test broker is the test's own",
        )
    )


def readings(collector: Collector) -> list[dict[str, Any]]:
    return [json.loads(m.payload)["readings"] for m in collector.on(STATE) if m.payload]


async def test_pulses_reach_mqtt_and_set_total_comes_back(tmp_path: Path, broker: Broker) -> None:
    collector = Collector(broker.port, (f"{BASE}/#",))
    chip = SoftwareChip("mqtt", ["S0"])
    gateway = Gateway(settings_for(tmp_path, broker.port))
    task = asyncio.create_task(gateway.serve())
    try:
        await asyncio.wait_for(gateway.ready.wait(), 10)
        start = time.monotonic_ns()
        for i in range(3):  # 5 Hz: 18 kW
            chip.pulse("S0", at_ns=start + i * NS_PER_S // 5)
        await until(
            lambda: any(
                r.get("power_import", {}).get("value") == 18000.0 for r in readings(collector)
            ),
            what="18 kW in the state",
        )
        assert all("energy_import" not in r for r in readings(collector)), (
            "an unknown total is never published"
        )
        await collector.apublish(f"{BASE}/main/set/set_total", json.dumps({"kwh": "9876.5"}))
        await until(
            lambda: any(
                r.get("energy_import", {}).get("value") == 9876.5 for r in readings(collector)
            ),
            what="the total in the state",
        )
        chip.pulse("S0")
        await until(
            lambda: readings(collector)[-1].get("energy_import", {}).get("value") == 9876.501,
            what="one more pulse",
        )
        last = json.loads(collector.on(STATE)[-1].payload, parse_float=Decimal)
        assert last["readings"]["energy_import"]["value"] == Decimal("9876.501")
        assert last["readings"]["energy_import"]["unit"] == "kWh"
        await until(
            lambda: any(
                json.loads(m.payload)["kind"] == "total_set"
                for m in collector.on(f"{BASE}/main/event")
            ),
            what="the total_set event",
        )
    finally:
        gateway.request_stop()
        await asyncio.wait_for(task, 15)
        collector.close()
        chip.close()
