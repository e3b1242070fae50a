"""The wM-Bus command line: `simulate wmbus`, `listen`, an exec: source, and MQTT end to end."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from modules.wmbus.emulator import DEMO_KEY
from tests.modules.test_wmbus import running, write_config
from tests.support.gateway import until
from tests.support.mqtt import Collector
from tests.support.processes import GATEWAY, Broker, free_port, gateway, wait_for_port


@contextmanager
def simulator(*args: str) -> Iterator[int]:
    """`meter-gateway simulate wmbus --tcp PORT ...` in the background; yields the port."""
    port = free_port()
    process = subprocess.Popen(
        [str(GATEWAY), "simulate", "wmbus", "--tcp", str(port), *args],
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield port
    finally:
        process.terminate()
        process.wait(10)


def listen(*args: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [str(GATEWAY), "listen", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_listen_decodes_known_meters_and_marks_unknown_ones() -> None:
    with simulator("--receiver", "cul", "--interval", "0.05", "--copies", "2") as port:
        device = f"socket://127.0.0.1:{port}"
        key = f"12345678={DEMO_KEY.hex()}"
        lines = listen(device, "--receiver", "cul", "--key", key, "--count", "3")
        strangers = listen(device, "--receiver", "cul", "--count", "2")
    heard = [line for line in lines if line["kind"] != "summary"]
    decoded = [line for line in heard if line["kind"] == "decoded"]
    assert len(decoded) == 3
    assert {line["kind"] for line in heard} == {"decoded", "duplicate"}
    codes = {value["code"] for value in decoded[-1]["values"]}
    assert {"1-0:1.8.0", "1-0:2.8.0", "1-0:1.7.0", "1-0:2.7.0"} <= codes
    assert decoded[0]["rssi_dbm"] == -67.0 and decoded[0]["meter"] == "12345678"
    (summary,) = [line for line in lines if line["kind"] == "summary"]
    assert summary["telegrams"] == 3 and summary["duplicates"] >= 2
    unknown = [line for line in strangers if line["kind"] == "unknown"]
    assert len(unknown) == 2
    assert unknown[0]["error"]["code"] == "no_key"
    assert unknown[0]["id"] == "12345678" and unknown[0]["medium"] == "electricity"


async def test_rtl_wmbus_lines_from_a_command(tmp_path: Path) -> None:
    command = f"exec:{GATEWAY} simulate wmbus --receiver rtlwmbus --interval 0.05 --count 5"
    settings = write_config(tmp_path, command, "rtlwmbus", modes="[]")
    async with running(settings) as gateway_:
        await until(lambda: len(gateway_.samples) >= 5, timeout_s=15)
    first = gateway_.samples[:5]
    assert all(s.rssi is not None and s.rssi > 0 for s in first)  # rtl_wmbus's own level
    totals = [s.readings[0].value for s in first]
    assert totals == sorted(totals)


@pytest.mark.network
def test_telegrams_reach_mqtt_through_meter_gateway_run(tmp_path: Path, broker: Broker) -> None:
    with simulator("--receiver", "hex", "--interval", "0.1", "--speed", "20") as port:
        config = tmp_path / "gateway.toml"
        config.write_text(
            f'[gateway]\ndata_dir = "{tmp_path / "data"}"\npersist_interval_s = 0.5\n'
            f'[mqtt]\nhost = "localhost"\nport = {broker.port}\n'
            "[http]\nenabled = false\n[zeroconf]\nenabled = false\n"
            '[[meters]]\nid = "main"\n'
            '[[modules]]\ntype = "wmbus"\nname = "radio"\nmeter = "main"\n'
            f'device = "socket://127.0.0.1:{port}"\nreceiver = "hex"\n'
            f'[[modules.meters]]\nid = "12345678"\nkey = "{DEMO_KEY.hex()}"\n'
        )
        subscriber = Collector(broker.port, ("meter-gateway/home/main/state",))
        try:
            with gateway(config, log=tmp_path / "gateway.log"):
                subscriber.wait(
                    lambda ms: any(
                        float(m.json()["readings"].get("energy_import", {}).get("value", 0)) > 0
                        for m in ms
                    ),
                    30,
                )
        finally:
            subscriber.close()
    state = subscriber.on("meter-gateway/home/main/state")[-1].json()["readings"]
    assert state["energy_import"]["unit"] == "kWh"
    assert state["energy_import"]["obis"] == "1-0:1.8.0"
    assert state["power_import"]["value"] > 0
    assert state["rssi_dbm"]["value"] == -67.0


def test_listen_reads_a_pipe_to_its_end() -> None:
    simulate = subprocess.Popen(
        [str(GATEWAY), "simulate", "wmbus", "--count", "2", "--interval", "0.05"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    done = subprocess.run(
        [str(GATEWAY), "listen", "stdin", "--receiver", "hex", "--json"],
        stdin=simulate.stdout,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    simulate.wait(10)
    assert simulate.stdout is not None
    simulate.stdout.close()
    assert done.returncode == 0, done.stderr
    kinds = [json.loads(line)["kind"] for line in done.stdout.splitlines()]
    assert kinds == ["unknown", "unknown", "summary"]
