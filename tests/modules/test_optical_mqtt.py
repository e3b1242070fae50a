"""End to end: `simulate kmp|iec62056-21` on an echoing pty -> `meter-gateway run` -> mosquitto."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support.mqtt import Collector, Received
from tests.support.processes import GATEWAY, Broker, gateway

pytestmark = [pytest.mark.network, pytest.mark.slow]

STATE = "meter-gateway/home/main/state"


@contextmanager
def emulator(argv: list[str], ready: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`meter-gateway simulate ...` as a subprocess, waited for until ``ready`` exists."""
    with log.open("ab") as out:
        process = subprocess.Popen([str(GATEWAY), "simulate", *argv], stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 10
        while not ready.exists():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the emulator never opened its pty"
            time.sleep(0.05)
        yield process
    finally:
        process.terminate()
        process.wait(10)


def write_config(tmp_path: Path, port: int, module: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(
        f'[gateway]\ndata_dir = "{tmp_path / "data"}"\ntimezone = "Europe/Copenhagen"\n'
        "persist_interval_s = 0.5\n"
        f'[mqtt]\nhost = "localhost"\nport = {port}\n'
        "[http]\nenabled = false\n[zeroconf]\nenabled = false\n"
        '[[meters]]\nid = "main"\n' + module
    )
    return path


def readings(message: Received) -> dict[str, Any]:
    """The state's readings by OBIS code."""
    return {r["obis"]: r for r in message.json()["readings"].values() if r["obis"]}


# Linux ptys take no 7E1: the IEC sign-on speed runs at 8N1 there.
@pytest.mark.parametrize(
    ("protocol", "line"),
    [("kmp", ""), ("iec62056-21", 'bytesize = 8\nparity = "N"\n')],
    ids=["kmp", "iec62056-21"],
)
def test_readings_reach_mqtt(tmp_path: Path, broker: Broker, protocol: str, line: str) -> None:
    tty = tmp_path / "ttyIR"
    argv = [protocol, "--pty", str(tty), "--echo", "--byte-delay-s", "0.0005"]
    argv += ["--timezone", "Europe/Copenhagen"]
    module = (
        '[[modules]]\ntype = "optical"\nname = "ir"\nmeter = "main"\n'
        f'port = "{tty}"\nprotocol = "{protocol}"\ninterval_s = 0.5\n' + line
    )
    config = write_config(tmp_path, broker.port, module)
    subscriber = Collector(broker.port, (STATE,))
    try:
        with (
            emulator(argv, tty, tmp_path / "emulator.log"),
            gateway(config, log=tmp_path / "gateway.log"),
        ):

            def arrived(messages: list[Received]) -> bool:
                states = [m for m in messages if m.topic == STATE]
                return bool(states) and {"1-0:1.8.0", "1-0:32.7.0"} <= readings(states[-1]).keys()

            subscriber.wait(arrived, timeout_s=20)
    finally:
        subscriber.close()
    state = readings(subscriber.on(STATE)[-1])
    assert state["1-0:1.8.0"]["unit"] == "kWh" and state["1-0:1.8.0"]["value"] >= 12345.678
    assert 215 <= state["1-0:32.7.0"]["value"] <= 245
    assert state["1-0:1.7.0"]["unit"] == "W"
