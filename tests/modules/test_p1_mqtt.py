"""End to end: `meter-gateway simulate p1` pushing encrypted DLMS on a pty, `meter-gateway run`
reading it, a real mosquitto, and a subscriber reading the meter's state and events."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.configs import gateway_toml
from tests.support.mqtt import Collector
from tests.support.processes import GATEWAY, Broker, gateway

pytestmark = [pytest.mark.network, pytest.mark.slow]

GUEK = "000102030405060708090A0B0C0D0E0F"
GAK = "D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF"
STATE = "meter-gateway/home/han/state"
EVENT = "meter-gateway/home/han/event"


@contextmanager
def emulator(link: Path, *args: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`meter-gateway simulate p1 ...` on a pty behind ``link``; stopped afterwards."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(GATEWAY), "simulate", "p1", "--link", str(link), *args], stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + 10
        while not link.exists():
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"the emulator did not start: {log.read_text()}")
            time.sleep(0.05)
        yield process
    finally:
        process.terminate()
        process.wait(10)


def write_config(tmp_path: Path, port: int, link: Path, key: str) -> Path:
    path = tmp_path / "gateway.toml"
    han = f"""
[[modules]]
type = "p1"
name = "han1"
meter = "han"
port = "{link}"
format = "dlms"
key = "{key}"
auth_key = "{GAK}"
"""
    path.write_text(
        gateway_toml(
            tmp_path / "data",
            han,
            persist_interval_s=0.5,
            mqtt_port=port,
            mqtt="discovery = false",
            meters=("han",),
        )
    )
    return path


def test_encrypted_han_pushes_reach_mqtt(tmp_path: Path, broker: Broker) -> None:
    link = tmp_path / "ttyHAN"
    subscriber = Collector(broker.port, (STATE, EVENT))
    try:
        with (
            emulator(
                link,
                "--format",
                "dlms",
                "--key",
                GUEK,
                "--auth-key",
                GAK,
                "--interval",
                "0.3",
                log=tmp_path / "emulator.log",
            ),
            gateway(write_config(tmp_path, broker.port, link, GUEK), log=tmp_path / "gw.log"),
        ):
            subscriber.wait(
                lambda ms: any(
                    m.topic == STATE and "energy_import" in m.json()["readings"] for m in ms
                ),
                30,
            )
        state = [m for m in subscriber.on(STATE) if "energy_import" in m.json()["readings"]][-1]
        readings = state.json()["readings"]
        assert readings["energy_import"]["unit"] == "kWh"
        assert readings["energy_import"]["value"] > 3000  # the emulated meter's register
        assert readings["power_import"]["unit"] == "W"
        assert 0 < readings["voltage_l1"]["value"] < 260
        assert not [m for m in subscriber.on(EVENT) if m.json()["kind"] == "decryption_failed"]
    finally:
        subscriber.close()


def test_a_wrong_key_is_one_event_on_mqtt_and_no_state(tmp_path: Path, broker: Broker) -> None:
    link = tmp_path / "ttyHAN"
    subscriber = Collector(broker.port, (STATE, EVENT))
    try:
        with (
            emulator(
                link,
                "--format",
                "dlms",
                "--key",
                GUEK,
                "--auth-key",
                GAK,
                "--interval",
                "0.2",
                log=tmp_path / "emulator.log",
            ),
            gateway(write_config(tmp_path, broker.port, link, "11" * 16), log=tmp_path / "gw.log"),
        ):
            subscriber.wait(lambda ms: any(m.topic == EVENT for m in ms), 30)
            time.sleep(2.0)  # ten more frames under the wrong key
        kinds = [m.json()["kind"] for m in subscriber.on(EVENT)]
        assert kinds.count("decryption_failed") == 1
        states = [m.json()["readings"] for m in subscriber.on(STATE)]
        assert not any("energy_import" in readings for readings in states)
    finally:
        subscriber.close()
