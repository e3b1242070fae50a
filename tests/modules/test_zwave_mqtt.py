"""End to end: `meter-gateway run`, a real mosquitto, and the Z-Wave stick emulator on a pty.

The learn_mode command goes in over MQTT; the controller includes the node, interviews it and
gets the same energy the gateway publishes in its state.
"""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal
from pathlib import Path

import pytest

from modules.codecs.zwave_meter import MeterGet, MeterReport
from modules.zwave.emulator import ControllerEmulator
from tests.modules.test_zwave import plugged
from tests.support.mqtt import Collector
from tests.support.processes import Broker, gateway

pytestmark = [pytest.mark.network]

BASE = "meter-gateway"


def write_config(tmp_path: Path, mqtt_port: int, tty: Path) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(
        f"""
[gateway]
data_dir = "{tmp_path / "data"}"
persist_interval_s = 0.5

[mqtt]
port = {mqtt_port}

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
interval_s = 0.5
speed = 60.0                       # A+ grows by a few Wh per sample: every value differs

[[modules]]
type = "zwave"
name = "zwave"
meter = "main"
port = "{tty}"
report_min_interval_s = 0.5
"""
    )
    return path


async def test_learn_mode_over_mqtt_and_the_same_energy_on_both_sides(
    tmp_path: Path, broker: Broker
) -> None:
    tty = tmp_path / "ttyZWAVE"
    emulator = ControllerEmulator()
    collector = Collector(broker.port, (f"{BASE}/#",))
    config = write_config(tmp_path, broker.port, tty)
    async with plugged(tty, emulator), contextlib.AsyncExitStack() as stack:
        await asyncio.to_thread(stack.enter_context, gateway(config, log=tmp_path / "gw.log"))
        stack.push_async_callback(asyncio.to_thread, collector.close)
        await asyncio.wait_for(emulator.started.wait(), 20)
        collector.publish(f"{BASE}/main/set/learn_mode", "PRESS")
        (reply,) = await collector.arrived(f"{BASE}/main/reply")
        assert reply.json()["ok"] and reply.json()["result"] == {"queued": True, "module": "zwave"}
        await asyncio.wait_for(emulator.interviewed.wait(), 20)
        assert emulator.memory.node_id == 2
        events = await collector.arrived(f"{BASE}/main/event", count=2)
        assert {"zwave_learn_mode", "zwave_included"} <= {e.json()["kind"] for e in events}
        # A+ over Z-Wave is one of the A+ values published around the moment it was read.
        topic = f"{BASE}/main/state"
        await collector.arrived(topic, count=2)
        seen = len(collector.on(topic))
        report = await emulator.ask(MeterGet(0, 1, True), MeterReport)
        await collector.arrived(topic, count=seen + 2)
        around = collector.on(topic)[seen - 2 :]
        published = {Decimal(str(m.json()["readings"]["energy_import"]["value"])) for m in around}
        assert report.value in published, (report.value, sorted(published))
        assert len(published) > 1  # the values did move while we looked
        assert emulator.unsolicited(), "the lifeline got nothing"
