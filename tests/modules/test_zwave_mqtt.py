"""End to end: `meter-gateway run`, a real mosquitto, and the Z-Wave stick emulator on a pty.

The learn_mode command goes in over MQTT; the controller includes the node, interviews it and
gets the same energy the gateway publishes in its state.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from modules.codecs.zwave.meter import MeterGet, MeterReport
from modules.zwave.emulator import ControllerEmulator
from tests.modules.test_zwave import plugged
from tests.support.configs import sim_gateway_toml
from tests.support.gateway import until
from tests.support.mqtt import Collector
from tests.support.processes import Broker, gateway

pytestmark = [pytest.mark.network]

BASE = "meter-gateway/home"  # <base_topic>/<gateway name>


def write_config(tmp_path: Path, mqtt_port: int, tty: Path) -> Path:
    path = tmp_path / "gateway.toml"
    zwave = f"""
[[modules]]
type = "zwave"
name = "zwave"
meter = "main"
port = "{tty}"
report_min_interval_s = 0.5
"""
    path.write_text(
        sim_gateway_toml(
            tmp_path / "data",
            persist_interval_s=0.5,
            mqtt_port=mqtt_port,
            mqtt="unsigned_commands = true  # the test broker is the test's own",
            # A+ grows by a few Wh per sample: every value differs.
            speed=60.0,
            interval_s=0.5,
            more=zwave,
        )
    )
    return path


def documents(subscriber: Collector, topic: str) -> list[Any]:
    """The JSON documents that arrived on ``<base>/<topic>``, in arrival order."""
    return [message.json() for message in subscriber.on(f"{BASE}/{topic}")]


async def arrived(subscriber: Collector, topic: str, count: int = 1) -> list[Any]:
    """``documents`` once ``count`` of them are there."""
    await subscriber.arrived(f"{BASE}/{topic}", count, timeout_s=20)
    return documents(subscriber, topic)


async def test_learn_mode_over_mqtt_and_the_same_energy_on_both_sides(
    tmp_path: Path, broker: Broker
) -> None:
    tty = tmp_path / "ttyZWAVE"
    emulator = ControllerEmulator()
    config = write_config(tmp_path, broker.port, tty)
    mqtt = Collector(broker.port, (f"{BASE}/#",))
    try:
        async with plugged(tty, emulator):
            with gateway(config, log=tmp_path / "gw.log"):
                await asyncio.wait_for(emulator.started.wait(), 20)
                await mqtt.apublish(f"{BASE}/main/set/learn_mode", "PRESS")
                (reply,) = await arrived(mqtt, "main/reply")
                assert reply["ok"] and reply["result"] == {"queued": True, "module": "zwave"}
                await asyncio.wait_for(emulator.interviewed.wait(), 20)
                assert emulator.memory.node_id == 2
                await until(
                    lambda: (
                        {"zwave_learn_mode", "zwave_included"}
                        <= {event["kind"] for event in documents(mqtt, "main/event")}
                    )
                )
                # A+ over Z-Wave is one of the A+ values published around the moment it was read.
                await arrived(mqtt, "main/state", 2)
                seen = len(documents(mqtt, "main/state"))
                report = await emulator.ask(MeterGet(0, 1, True), MeterReport)
                around = (await arrived(mqtt, "main/state", seen + 2))[seen - 2 :]
                published = {
                    Decimal(str(state["readings"]["energy_import"]["value"])) for state in around
                }
                assert report.value in published, (report.value, sorted(published))
                assert len(published) > 1  # the values did move while we looked
                assert emulator.unsolicited(), "the lifeline got nothing"
    finally:
        mqtt.close()
