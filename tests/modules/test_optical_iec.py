"""The optical module with IEC 62056-21: sign-on, mode C baud switch, readout, meter time."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway.model import utc_now
from gateway.transport import Link, SerialSettings, open_link, open_pty
from modules.codecs.iec62056_21.messages import DataMessage, parse
from modules.iec62056_21.config import IecOptions
from modules.iec62056_21.session import meter_time, read_out
from modules.optical import emulator
from modules.optical.emulator import IecEmulator
from modules.optical.meter_model import Simulated382
from tests.modules.test_optical import (
    BYTE_DELAY_S,
    ZONE,
    has,
    optical,
    settings_for,
)
from tests.support.gateway import background, number, running, until

# Linux ptys refuse 7 data bits and parity: the tests run the sign-on speed at 8N1.
PTY_LINE = 'bytesize = 8\nparity = "N"\n'
PTY_SETTINGS = SerialSettings(300, 8, "N", 1)


@pytest.fixture(autouse=True)
def quick_meter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(emulator, "IEC_REACTION_S", 0.01)


class SpeedLog:
    """A link that remembers every speed it was switched to."""

    def __init__(self, link: Link) -> None:
        self._link = link
        self.speeds: list[int] = []

    def set_baudrate(self, baudrate: int) -> None:
        self.speeds.append(baudrate)
        self._link.set_baudrate(baudrate)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._link, name)


async def test_mode_c_switches_to_the_meters_speed_and_back(tmp_path: Path) -> None:
    meter = Simulated382(zone=ZONE)
    async with (
        open_pty(str(tmp_path / "tty")) as (device, path),
        background(IecEmulator(meter, echo=True, byte_delay_s=BYTE_DELAY_S).serve(device)),
        open_link(path, PTY_SETTINGS) as link,
    ):
        spy = SpeedLog(link)
        readout = await read_out(spy, IecOptions(), 300)  # type: ignore[arg-type]
    assert meter.option_selects == ["050"]
    assert spy.speeds == [300, 9600, 300]
    assert readout.baud == 9600 and readout.identification.manufacturer == "KAM"
    message = parse(readout.block)[0]
    assert isinstance(message, DataMessage) and message.bcc_ok
    assert {ds.address for ds in message.data_sets} >= {"1.8.0", "32.7.0", "0.9.1"}


@pytest.mark.parametrize(
    ("options", "selected", "speeds"),
    [
        (IecOptions(max_baudrate=4800), "040", [300, 4800, 300]),
        (IecOptions(baud_switch=False), "000", [300, 300]),
    ],
)
async def test_the_speed_asked_for_respects_the_options(
    tmp_path: Path, options: IecOptions, selected: str, speeds: list[int]
) -> None:
    meter = Simulated382(zone=ZONE)
    async with (
        open_pty(str(tmp_path / "tty")) as (device, path),
        background(IecEmulator(meter).serve(device)),
        open_link(path, PTY_SETTINGS) as link,
    ):
        spy = SpeedLog(link)
        await read_out(spy, options, 300)  # type: ignore[arg-type]
    assert meter.option_selects == [selected]
    assert spy.speeds == speeds


async def test_mode_c_readout_through_an_echoing_head_fills_the_engine(tmp_path: Path) -> None:
    meter = Simulated382(zone=ZONE, clock_offset_s=-600.0)
    module = optical("{path}", PTY_LINE, protocol="iec62056-21", interval_s=0.2)
    async with open_pty(str(tmp_path / "ttyIR")) as (device, path):
        served = IecEmulator(meter, echo=True, byte_delay_s=BYTE_DELAY_S).serve(device)
        async with (
            background(served),
            running(settings_for(tmp_path, module.format(path=path))) as gateway,
        ):
            await until(lambda: gateway.health["ir"].frames_ok >= 2)
            registers = gateway.engines["main"].registers
    assert Decimal("12345.678") <= number(registers["1-0:1.8.0"]) <= meter.energy_import_kwh
    assert registers["1-0:3.8.0"].unit == "kvarh"
    assert number(registers["1-0:3.8.0"]) >= Decimal("2468.000")
    assert registers["1-0:1.7.0"].unit == "W"
    assert 215 <= number(registers["1-0:52.7.0"]) <= 245
    # The readout's 0.9.1/0.9.2 stamp the sample: the meter runs ten minutes behind.
    lag = utc_now() - registers["1-0:1.8.0"].at
    assert timedelta(seconds=590) < lag < timedelta(seconds=615)
    assert set(meter.option_selects) == {"050"}


async def test_mode_a_meter_reads_out_without_option_select(tmp_path: Path) -> None:
    meter = Simulated382(zone=ZONE)
    async with (
        open_pty(str(tmp_path / "ttyIR")) as (device, path),
        background(IecEmulator(meter, mode="A", byte_delay_s=BYTE_DELAY_S).serve(device)),
        running(settings_for(tmp_path, optical(path, PTY_LINE, protocol="iec62056-21"))) as gateway,
    ):
        await until(lambda: has(gateway, "1-0:1.8.0", "1-0:2.8.0", "1-0:31.7.0"))
    assert meter.option_selects == []


class NoisyLink:
    """The meter end of a noisy IR path: the second readout loses a bit."""

    def __init__(self, link: Link) -> None:
        self._link = link
        self.readouts = 0

    async def read(self) -> bytes:
        return await self._link.read()

    async def write(self, data: bytes) -> None:
        if data[:1] == b"\x02":
            self.readouts += 1
            if self.readouts == 2:
                data = data[:10] + bytes([data[10] ^ 0x04]) + data[11:]
        await self._link.write(data)


async def test_a_bad_bcc_is_counted_and_the_next_readout_used(tmp_path: Path) -> None:
    meter = Simulated382(zone=ZONE)
    async with open_pty(str(tmp_path / "ttyIR")) as (device, path):
        noisy = NoisyLink(device)
        async with (
            background(IecEmulator(meter).serve(noisy)),  # type: ignore[arg-type]
            running(
                settings_for(
                    tmp_path, optical(path, PTY_LINE, protocol="iec62056-21", interval_s=0.1)
                )
            ) as gateway,
        ):
            health = gateway.health["ir"]
            await until(lambda: health.frames_ok >= 2 and noisy.readouts >= 3, 15)
    assert health.frames_failed == 1 and "BCC" in (health.last_error or "")
    assert health.restarts == 0


def test_meter_time_from_the_readout() -> None:
    block = b"\x020.9.1(231500)\r\n0.9.2(1240301)\r\n1.8.0(1.000*kWh)\r\n!\r\n\x03"
    message = parse(block + bytes([_bcc(block[1:])]))[0]
    assert isinstance(message, DataMessage)
    at = meter_time(message, ZONE)
    assert at is not None and at.isoformat() == "2024-03-01T22:15:00+00:00"
    assert meter_time(DataMessage(lines=()), ZONE) is None


def _bcc(data: bytes) -> int:
    check = 0
    for byte in data:
        check ^= byte
    return check
