"""The zwave module's serial link: NAK, CAN, lost ACKs, bad checksums, unplug and replug."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from modules.codecs.zwave.api.node import MemoryGetIdRequest, SetLearnModeRequest
from modules.codecs.zwave.cc.version import VersionGet, VersionReport
from modules.codecs.zwave.meter import MeterGet, MeterReport
from modules.zwave import adapter, host
from modules.zwave import emulator as emulator_module
from modules.zwave.emulator import ControllerEmulator, StickMemory
from tests.modules.test_zwave import (
    feed,
    include,
    included,
    kinds_of,
    plugged,
    write_config,
)
from tests.support.gateway import running, until


async def test_nak_can_and_a_lost_ack_are_retransmitted_with_backoff(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    async with included(tmp_path) as (gateway, emulator):
        for fault, at_least_s in (("nak", 1.1), ("can", 1.1), ("lose", 1.6 + 1.1)):
            setattr(emulator.faults, fault, 1)
            started = loop.time()
            report = await emulator.ask(MeterGet(0, 1, True), MeterReport)
            assert loop.time() - started >= at_least_s - 0.05, fault
            assert report.value == 100 and getattr(emulator.faults, fault) == 0
        assert gateway.health["zw"].restarts == 0


async def test_bad_checksums_from_the_stick_are_refused_and_three_reset_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only the host is under test here: the emulated stick may resend without the spec's pauses.
    monkeypatch.setattr(emulator_module, "retransmit_delay_s", lambda attempt: 0.05 * attempt)
    async with included(tmp_path) as (gateway, emulator):
        emulator.faults.corrupt = 1
        await emulator.ask(VersionGet(), VersionReport)  # its first copy was refused with NAK
        assert gateway.health["zw"].frames_failed >= 1 and emulator.soft_resets == 1
        emulator.faults.corrupt = 3
        emulator.send_command(VersionGet())
        await until(lambda: emulator.soft_resets == 2 and gateway.health["zw"].communicating)
        assert "checksum errors" in (gateway.health["zw"].last_error or "")
        await emulator.ask(VersionGet(), VersionReport)


async def test_an_unplugged_stick_is_recovered_with_its_network_and_lifeline(
    tmp_path: Path,
) -> None:
    port = tmp_path / "ttyZW"
    memory = StickMemory()
    settings = write_config(tmp_path, port, sim=False)
    first = ControllerEmulator(memory)
    async with running(settings) as gateway:
        async with plugged(port, first):
            feed(gateway, a_plus="100.000", a_minus="5.000", p_plus="1000", p_minus="0")
            await include(gateway, first)
            await until(first.unsolicited)
            restarts = gateway.health["zw"].restarts
        await until(lambda: gateway.health["zw"].restarts > restarts)  # unplugged
        assert not gateway.health["zw"].communicating
        await asyncio.sleep(0.3)
        second = ControllerEmulator(memory)  # the same stick plugged in again
        async with plugged(port, second):
            await until(second.unsolicited, 15)
            assert second.soft_resets == 1 and memory.node_id == 2
            assert not any(isinstance(m, SetLearnModeRequest) for m in second.host_messages)
            assert {r.node_id for r in second.unsolicited()} == {1}
            report = await second.ask(MeterGet(2, 1, True), MeterReport)
            assert report.value == 1000
        kinds = kinds_of(gateway)
        assert "communication_lost" in kinds and "communication_restored" in kinds


async def test_a_hung_stick_is_noticed_in_silence_and_recovered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The spec's 1.6 s ACK wait and 1.1..3.1 s pauses, shortened so the test stays quick.
    monkeypatch.setattr(host, "ACK_TIMEOUT_S", 0.2)
    monkeypatch.setattr(host, "retransmit_delay_s", lambda attempt: 0.05 * attempt)
    monkeypatch.setattr(adapter, "STICK_CHECK_S", 0.5)
    async with included(tmp_path) as (gateway, emulator):
        restarts = gateway.health["zw"].restarts
        emulator.faults.lose = 10**6  # the stick hangs: nothing is acknowledged or answered
        await until(lambda: gateway.health["zw"].restarts > restarts)
        assert "not acknowledged after 3 retransmissions" in (gateway.health["zw"].last_error or "")
        probe = MemoryGetIdRequest().encode()
        assert emulator.lost_frames[:4] == [probe] * 4  # the first try and 3 retransmissions
        emulator.faults.lose = 0  # unplugged and plugged in again by hand: it answers again
        await until(lambda: emulator.soft_resets >= 2 and gateway.health["zw"].communicating)
        report = await emulator.ask(MeterGet(2, 1, True), MeterReport)
        assert report.value == 1000
