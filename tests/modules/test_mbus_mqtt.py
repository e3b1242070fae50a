"""End to end: `meter-gateway simulate mbus` on a pty, `meter-gateway run` reading it, mosquitto."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.configs import gateway_toml
from tests.support.mqtt import Collector, Received
from tests.support.processes import GATEWAY, Broker, gateway

pytestmark = [pytest.mark.network, pytest.mark.slow]

BASE = "meter-gateway/home"  # <base_topic>/<gateway name>


def write_config(tmp_path: Path, port: int, tty: Path) -> Path:
    path = tmp_path / "gateway.toml"
    bus = f"""
[[modules]]
type = "mbus"
name = "mbus1"
port = "{tty}"
baudrate = 9600
latency_s = 0.05
[[modules.devices]]
meter = "m1"
primary_address = 1
poll_interval_s = 0.5
[[modules.devices]]
meter = "m2"
secondary_address = "61000003"
poll_interval_s = 0.5
"""
    path.write_text(
        gateway_toml(
            tmp_path / "data", bus, persist_interval_s=0.5, mqtt_port=port, meters=("m1", "m2")
        )
    )
    return path


def readings(message: Received) -> dict[str, Any]:
    state: dict[str, Any] = message.json()["readings"]
    return state


def complete(messages: list[Received], meter: str) -> bool:
    return any(
        m.topic == f"{BASE}/{meter}/state"
        and {"energy_import", "voltage_l1", "mbus:fabrication_no"} <= readings(m).keys()
        for m in messages
    )


def test_two_meters_on_an_emulated_bus_reach_mqtt(tmp_path: Path, broker: Broker) -> None:
    tty = tmp_path / "ttyMBUS"
    command = [str(GATEWAY), "simulate", "mbus", "--pty", str(tty), "--meters", "2"]
    command += ["--secondary", "38200001,61000003", "--records-per-telegram", "6"]
    emulator = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    collector = Collector(broker.port, (f"{BASE}/+/state",))
    try:
        assert emulator.stdout is not None
        announced = emulator.stdout.readline().decode()
        assert "2 meter(s)" in announced and str(tty) in announced
        config = write_config(tmp_path, broker.port, tty)
        with gateway(config, log=tmp_path / "gateway.log"):
            collector.wait(lambda ms: complete(ms, "m1") and complete(ms, "m2"), timeout_s=20)
    finally:
        emulator.terminate()
        emulator.wait(10)
        if emulator.stdout is not None:
            emulator.stdout.close()
        collector.close()
    last = {meter: readings(collector.on(f"{BASE}/{meter}/state")[-1]) for meter in ("m1", "m2")}
    assert last["m1"]["mbus:fabrication_no"]["value"] == "38200001"
    assert last["m2"]["mbus:fabrication_no"]["value"] == "61000003"
    for state in last.values():
        assert state["energy_import"]["unit"] == "kWh"
        assert state["energy_import"]["obis"] == "1-0:1.8.0"
        assert float(state["energy_import"]["value"]) >= 4321
        assert 200 < float(state["voltage_l1"]["value"]) < 260
