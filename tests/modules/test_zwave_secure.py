"""Secure inclusion of the zwave module's node, in a Gateway over a pty, against the emulator.

The emulated controller includes the node with S2 Authenticated (typing the PIN it reads from
the node's keys file, as a user reads it from the log), S2 Unauthenticated or S0, interviews it
encrypted, and decrypts every Meter Report; no Meter Report crosses the serial line in clear.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway.model import Command
from modules.codecs.zwave.api.transport import SendDataRequest
from modules.codecs.zwave.cc.base import CommandClassId
from modules.codecs.zwave.meter import MeterGet, MeterReport
from modules.zwave.emulator import ControllerEmulator
from modules.zwave.including import InclusionMode
from modules.zwave.security import Secrets, save_secrets
from tests.modules.test_zwave import WITH_PHASES, feed, plugged, write_config
from tests.support.gateway import running, until
from tests.support.processes import GATEWAY


def plain_meter_reports(emulator: ControllerEmulator) -> list[bytes]:
    """Meter Reports (bare or from an end point) the host handed the stick unencrypted."""
    clear = {CommandClassId.METER, CommandClassId.MULTI_CHANNEL}
    return [
        message.payload
        for message in emulator.host_messages
        if isinstance(message, SendDataRequest) and message.payload[0] in clear
    ]


@pytest.mark.parametrize(
    ("mode", "level"),
    [
        ("s2_authenticated", "s2_authenticated"),
        ("s2_unauthenticated", "s2_unauthenticated"),
        ("s0", "s0"),
    ],
)
async def test_secure_inclusion_and_encrypted_reports(
    tmp_path: Path, mode: InclusionMode, level: str
) -> None:
    port = tmp_path / "ttyZW"
    emulator = ControllerEmulator(security=mode)
    settings = write_config(tmp_path, port, sim=False)
    keys_file = tmp_path / "zwave-zw-keys.json"
    async with plugged(port, emulator), running(settings) as gateway:
        feed(gateway, a_plus="100.000", a_minus="5.000", p_plus="1000", p_minus="0")
        await until(emulator.started.is_set, 10, "the node announced")
        assert keys_file.stat().st_mode & 0o777 == 0o600
        keys = json.loads(keys_file.read_text())
        emulator.pin = keys["dsk"][:5]  # the user types the DSK's first group
        assert {0x9F, 0x98} <= set(emulator.node_info.supported if emulator.node_info else ())
        assert await gateway.execute(Command("main", "learn_mode", "c1"))
        await until(emulator.interviewed.is_set, 20, "the encrypted interview")
        includer = emulator.includer
        assert includer is not None and includer.done, includer and includer.failure
        assert includer.level.label == level
        assert CommandClassId.METER in includer.secure_classes
        # Secure now, the node information lists only what is answered in the clear.
        await until(
            lambda: (
                emulator.node_info is not None
                and CommandClassId.METER not in emulator.node_info.supported
            ),
            10,
            "the node information of a secure node",
        )
        assert emulator.node_info is not None
        assert emulator.node_info.supported[0] == CommandClassId.ZWAVEPLUS_INFO
        assert set(emulator.node_info.supported) <= {0x5E, 0x9F, 0x98}
        # Every Get of the interview was answered, decrypted, at the granted class.
        assert {r.security for r in emulator.reports} == {level}
        # The lifeline (set during the interview) gets changes, encrypted.
        feed(gateway, p_plus="2500")
        await until(
            lambda: any(
                r.report.scale == 2 and r.report.value == 2500 for r in emulator.unsolicited()
            ),
            10,
            "an encrypted unsolicited report",
        )
        assert {r.security for r in emulator.unsolicited()} == {level}
        # A Get sent in the clear is not answered by a securely included node; the encrypted
        # one after it is (the node handles frames in order, so the first was dropped).
        count = len(emulator.reports)
        emulator.send_command(MeterGet(0, 1, scale2_present=True), plain=True)
        answer = await emulator.ask(MeterGet(0, 1, scale2_present=True), MeterReport)
        assert answer.value == Decimal("100.000")
        assert len(emulator.reports) > count
        assert {r.security for r in emulator.reports} == {level}
        assert plain_meter_reports(emulator) == []
        detail = gateway.health["zw"].detail
        assert detail["security"][0] == level
        assert detail["dsk_after_pin"] == keys["dsk"][6:]  # the PIN is not in health
        kinds = [event.kind for _, event in gateway.store.events("main")]
        assert "zwave_secure_inclusion" in kinds
    # The keys file now holds the granted keys; a restarted gateway still reports encrypted.
    assert json.loads(keys_file.read_text())["granted"][0] == level
    async with plugged(port, emulator), running(settings) as gateway:
        before = len(emulator.unsolicited())
        feed(gateway, a_plus="100.000", a_minus="5.000", p_plus="4000", p_minus="0")
        await until(lambda: len(emulator.unsolicited()) > before, 15, "a report after restart")
        assert {r.security for r in emulator.unsolicited()[before:]} == {level}


async def test_authenticated_inclusion_with_a_wrong_pin_grants_nothing(tmp_path: Path) -> None:
    port = tmp_path / "ttyZW"
    emulator = ControllerEmulator(security="s2_authenticated")
    settings = write_config(tmp_path, port, sim=False)
    async with plugged(port, emulator), running(settings) as gateway:
        await until(emulator.started.is_set, 10, "the node announced")
        pin = json.loads((tmp_path / "zwave-zw-keys.json").read_text())["dsk"][:5]
        emulator.pin = f"{(int(pin) + 1) % 65536:05d}"
        assert await gateway.execute(Command("main", "learn_mode", "c1"))
        await until(emulator.included.is_set, 10, "the inclusion")
        await until(lambda: emulator.includer is not None, 10, "the key exchange")
        await until(
            lambda: (
                "zwave_secure_inclusion_failed"
                in [event.kind for _, event in gateway.store.events("main")]
                or emulator.secured.is_set()
            ),
            25,
            "the key exchange to end",
        )
        assert emulator.includer is not None and not emulator.includer.done
        assert gateway.health["zw"].detail["security"] == []


async def test_authenticated_inclusion_waits_for_a_pin_typed_late(tmp_path: Path) -> None:
    # The user reads the PIN from the log and types it a while later: the controller cannot
    # read the node's KEX Set echo before, and the node repeats it (every 10 s) until it can.
    port = tmp_path / "ttyZW"
    emulator = ControllerEmulator(security="s2_authenticated", pin_delay_s=1.0)
    settings = write_config(tmp_path, port, sim=False)
    async with plugged(port, emulator), running(settings) as gateway:
        feed(gateway, a_plus="100.000", a_minus="5.000", p_plus="1000", p_minus="0")
        await until(emulator.started.is_set, 10, "the node announced")
        emulator.pin = json.loads((tmp_path / "zwave-zw-keys.json").read_text())["dsk"][:5]
        assert await gateway.execute(Command("main", "learn_mode", "c1"))
        await until(emulator.interviewed.is_set, 40, "the interview after the late PIN")
        assert emulator.includer is not None and emulator.includer.done
        assert {r.security for r in emulator.reports} == {"s2_authenticated"}
        assert gateway.health["zw"].detail["security"] == [
            "s2_authenticated",
            "s2_unauthenticated",
        ]


async def test_no_security_offered_joins_in_the_clear_without_a_keys_file(tmp_path: Path) -> None:
    port = tmp_path / "ttyZW"
    emulator = ControllerEmulator()
    settings = write_config(tmp_path, port, sim=False, security=[])
    async with plugged(port, emulator), running(settings) as gateway:
        feed(gateway, a_plus="100.000", a_minus="5.000", p_plus="1000", p_minus="0")
        await until(emulator.started.is_set, 10, "the node announced")
        supported = emulator.node_info.supported if emulator.node_info else ()
        assert CommandClassId.SECURITY_2 not in supported
        assert CommandClassId.SECURITY not in supported
        assert await gateway.execute(Command("main", "learn_mode", "c1"))
        await until(emulator.interviewed.is_set, 20, "the interview")
        assert {r.security for r in emulator.reports} == {"none"}
        assert gateway.health["zw"].detail["dsk_after_pin"] is None
    assert not (tmp_path / "zwave-zw-keys.json").exists()


async def test_per_phase_end_points_answer_encrypted(tmp_path: Path) -> None:
    port = tmp_path / "ttyZW"
    emulator = ControllerEmulator(security="s2_unauthenticated")
    settings = write_config(tmp_path, port, display=WITH_PHASES)
    async with plugged(port, emulator), running(settings) as gateway:
        await until(lambda: "1-0:31.7.0" in gateway.engines["main"].registers)
        await until(emulator.started.is_set, 10, "the node announced")
        assert await gateway.execute(Command("main", "learn_mode", "c1"))
        await until(emulator.interviewed.is_set, 20, "the encrypted interview")
        assert emulator.end_point_secure == {1: (CommandClassId.METER,)}
        phase = [r for r in emulator.reports if r.end_point == 1]
        assert {r.report.scale for r in phase} == {4, 5}  # L1 voltage and current
        assert {r.security for r in emulator.reports} == {"s2_unauthenticated"}
        assert plain_meter_reports(emulator) == []


async def test_simulate_zwave_cli_includes_with_s2_authenticated(tmp_path: Path) -> None:
    # A keys file made beforehand is the node's: the CLI is given its PIN up front.
    secrets = Secrets.generate()
    save_secrets(tmp_path / "zwave-zw-keys.json", secrets)
    port = tmp_path / "ttyCLI"
    process = await asyncio.create_subprocess_exec(
        str(GATEWAY),
        *("simulate", "zwave", "--pty", str(port)),
        *("--security", "s2_authenticated", "--pin", secrets.pin),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await until(port.exists)
        async with running(write_config(tmp_path, port, sim=False)) as gateway:
            feed(gateway, a_plus="100.000", a_minus="5.000", p_plus="1000", p_minus="0")
            await until(lambda: gateway.health["zw"].state == "running", 10, "the module")
            assert await gateway.execute(Command("main", "learn_mode", "c1"))
            lines: list[dict[str, Any]] = []
            async with asyncio.timeout(20):
                while not any(line["name"] == "energy_import" for line in lines):
                    assert process.stdout is not None
                    lines.append(json.loads(await process.stdout.readline()))
            assert {line["security"] for line in lines} == {"s2_authenticated"}
            assert gateway.health["zw"].detail["security"][0] == "s2_authenticated"
    finally:
        process.terminate()
        await process.wait()
