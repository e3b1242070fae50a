"""The optical module with KMP: an echoing IR head on a pty, bytes trickling one at a time."""

from __future__ import annotations

import contextlib
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway import config
from gateway.app import Gateway
from gateway.model import utc_now
from gateway.transport import Link, SerialSettings, open_link, open_pty
from modules.codecs.kmp import commands as kmp
from modules.codecs.kmp.registers import DEFAULT_382_REGISTERS
from modules.kmp.session import KmpMaster
from modules.optical.emulator import serve_kmp
from modules.optical.meter_model import Simulated382
from tests.support.gateway import background, number, offline_text, running, until

ZONE = ZoneInfo("Europe/Copenhagen")
BYTE_DELAY_S = 0.0005  # every reply byte written on its own


def settings_for(tmp_path: Path, module: str) -> config.Settings:
    """A gateway with one meter, no outputs, and the given [[modules]] text."""
    meter = '[[meters]]\nid = "main"\n'
    return config.loads(
        offline_text(tmp_path / "data", meter + module, gateway=f'timezone = "{ZONE.key}"\n')
    )


def optical(port: str, extra: str = "", protocol: str = "kmp", interval_s: float = 0.3) -> str:
    """An optical [[modules]] entry."""
    return (
        f'[[modules]]\ntype = "optical"\nname = "ir"\nmeter = "main"\nport = "{port}"\n'
        f'protocol = "{protocol}"\ninterval_s = {interval_s}\n' + extra
    )


def has(gateway: Gateway, *codes: str) -> bool:
    """True when the meter's engine holds every one of these registers."""
    registers = gateway.engines["main"].registers
    return all(code in registers for code in codes)


async def test_kmp_through_an_echoing_head_fills_the_engine(tmp_path: Path) -> None:
    meter = Simulated382(zone=ZONE)
    async with (
        open_pty(str(tmp_path / "ttyIR")) as (device, path),
        background(serve_kmp(device, meter, echo=True, byte_delay_s=BYTE_DELAY_S)),
        running(settings_for(tmp_path, optical(path))) as gateway,
    ):
        wanted = ("1-0:1.8.0", "1-0:2.8.0", "1-0:1.7.0", "1-0:32.7.0", "1-0:71.7.0", "1-0:61.7.0")
        await until(lambda: has(gateway, *wanted))
        registers = gateway.engines["main"].registers
        health = gateway.health["ir"]
    a_plus = registers["1-0:1.8.0"]
    # The high-resolution register (0x000D, Wh steps) stands in for the kWh one.
    assert a_plus.unit == "kWh" and a_plus.value != int(a_plus.value)
    assert Decimal("12345.678") <= number(a_plus) <= meter.energy_import_kwh
    assert registers["1-0:2.8.0"].value == Decimal("321.000")
    assert registers["1-0:1.7.0"].unit == "W"  # the meter says kW; the engine keeps W
    assert 50 <= number(registers["1-0:1.7.0"]) <= 20_000
    assert 215 <= number(registers["1-0:32.7.0"]) <= 245
    assert registers["1-0:32.7.0"].unit == "V" and registers["1-0:71.7.0"].unit == "A"
    assert health.frames_failed == 0 and health.restarts == 0
    # Every poll read the default 382 set; the clock was read once at start.
    assert meter.asked[0x000D] >= 1 and meter.asked[1002] == 1


async def test_each_register_group_is_read_at_its_own_interval(tmp_path: Path) -> None:
    meter = Simulated382(zone=ZONE)
    groups = (
        '[[modules.kmp.groups]]\nname = "live"\nregisters = ["power_import", 0x041E]\n'
        "interval_s = 0.2\n"
        '[[modules.kmp.groups]]\nname = "totals"\nregisters = ["energy_import_hires", "13"]\n'
        "interval_s = 30.0\n"
    )
    async with (
        open_pty(str(tmp_path / "ttyIR")) as (device, path),
        background(serve_kmp(device, meter, echo=True)),
        running(settings_for(tmp_path, optical(path, groups))) as gateway,
    ):
        await until(lambda: meter.asked.get(0x03FF, 0) >= 6)
        assert has(gateway, "1-0:1.8.0", "1-0:1.7.0", "1-0:32.7.0")
    assert meter.asked[0x041E] >= 6
    assert meter.asked[0x000D] == 1, "the totals group waits its 30 s"
    assert 0x0002 not in meter.asked and 0x0434 not in meter.asked, "only what the groups list"


async def test_clock_drift_is_an_event_and_samples_carry_meter_time(tmp_path: Path) -> None:
    meter = Simulated382(zone=ZONE, clock_offset_s=-300.0)
    drift = "[modules.kmp]\nclock_drift_threshold_s = 60.0\nclock_interval_s = 0.5\n"
    async with (
        open_pty(str(tmp_path / "ttyIR")) as (device, path),
        background(serve_kmp(device, meter, echo=True)),
        running(settings_for(tmp_path, optical(path, drift))) as gateway,
    ):
        await until(lambda: has(gateway, "1-0:1.7.0") and meter.asked.get(1002, 0) >= 3)
        at = gateway.engines["main"].registers["1-0:1.7.0"].at
        events = [event for _, event in gateway.store.events("main", kind="clock_drift")]
    assert len(events) == 1, "one event per excursion, not one per clock read"
    assert -302 <= events[0].data["drift_s"] <= -298
    assert events[0].data["module"] == "ir"
    assert timedelta(seconds=295) < utc_now() - at < timedelta(seconds=310)


async def test_no_drift_event_within_the_threshold(tmp_path: Path) -> None:
    meter = Simulated382(zone=ZONE, clock_offset_s=10.0)
    async with (
        open_pty(str(tmp_path / "ttyIR")) as (device, path),
        background(serve_kmp(device, meter, echo=True)),
        running(settings_for(tmp_path, optical(path))) as gateway,
    ):
        await until(lambda: has(gateway, "1-0:1.7.0"))
        assert not gateway.store.events("main", kind="clock_drift")


class LossyLink:
    """The meter end of a noisy IR path: every third reply arrives with one byte flipped."""

    def __init__(self, link: Link) -> None:
        self._link = link
        self.writes = 0

    async def read(self) -> bytes:
        return await self._link.read()

    async def write(self, data: bytes) -> None:
        if data[:1] == b"\x40":  # a reply frame, not the echo
            self.writes += 1
            if self.writes % 3 == 0:
                data = data[:4] + bytes([data[4] ^ 0x01]) + data[5:]
        await self._link.write(data)


async def test_garbled_replies_are_retried_and_counted(tmp_path: Path) -> None:
    meter = Simulated382(zone=ZONE)
    async with open_pty(str(tmp_path / "ttyIR")) as (device, path):
        lossy = LossyLink(device)
        async with (
            background(serve_kmp(lossy, meter, echo=False)),  # type: ignore[arg-type]
            running(settings_for(tmp_path, optical(path))) as gateway,
        ):
            await until(lambda: gateway.health["ir"].frames_ok >= 4)
            health = gateway.health["ir"]
            assert health.frames_failed >= 2
            assert "CRC" in (health.last_error or "")
            assert health.restarts == 0, "a bad frame is retried, the link stays up"
            assert has(gateway, "1-0:1.8.0", "1-0:32.7.0")


async def test_unplugging_and_replugging_the_head_recovers(tmp_path: Path) -> None:
    tty = str(tmp_path / "ttyIR")
    meter = Simulated382(zone=ZONE)
    async with contextlib.AsyncExitStack() as stack:
        plugged = contextlib.AsyncExitStack()
        device, _path = await plugged.enter_async_context(open_pty(tty))
        await plugged.enter_async_context(background(serve_kmp(device, meter, echo=True)))
        gateway = await stack.enter_async_context(
            running(settings_for(tmp_path, optical(tty, interval_s=0.1)))
        )
        health = gateway.health["ir"]
        await until(lambda: health.frames_ok >= 2)
        await plugged.aclose()  # the head is pulled out: its tty goes away under the module
        await until(lambda: health.restarts >= 1 and not health.communicating, 15)
        frames = health.frames_ok
        async with (
            open_pty(tty) as (device, _path),
            background(serve_kmp(device, meter, echo=True)),
        ):
            await until(lambda: health.frames_ok > frames + 2 and health.communicating, 20)
        kinds = [event.kind for _, event in gateway.store.events("main")]
    assert "communication_lost" in kinds and "communication_restored" in kinds


@pytest.mark.parametrize("byte_delay_s", [0.0, BYTE_DELAY_S])
async def test_request_and_reply_over_the_pty(tmp_path: Path, byte_delay_s: float) -> None:
    """The master alone: GetSerialNo and a register read across the 8-register limit."""
    meter = Simulated382(zone=ZONE, serial=12_345_678)
    async with (
        open_pty(str(tmp_path / "tty")) as (device, path),
        background(serve_kmp(device, meter, echo=True, byte_delay_s=byte_delay_s)),
        open_link(path, SerialSettings(9600, 8, "N", 2)) as link,
    ):
        master = KmpMaster(link, address=0x3F)
        assert await master.serial_number() == 12_345_678
        asked = (*DEFAULT_382_REGISTERS, 0x1234)  # 19 ids: three requests; 0x1234 is unknown
        response = await master.registers(asked)
    assert [value.register for value in response.values] == list(DEFAULT_382_REGISTERS)
    assert response.get(0x041E) is not None and response.get(0x1234) is None


async def test_a_late_reply_to_another_request_is_not_taken(tmp_path: Path) -> None:
    stale = kmp.GetRegisterResponse((kmp.RegisterValue(0x0001, 2, Decimal(7)),))
    right = kmp.GetRegisterResponse((kmp.RegisterValue(0x041E, 33, Decimal(231)),))

    async def meter(link: Link) -> None:
        for reply in (stale, right):
            await link.read()
            await link.write(kmp.encode(reply))
        await link.read()

    bad: list[str] = []
    async with (
        open_pty(str(tmp_path / "tty")) as (device, path),
        background(meter(device)),
        open_link(path, SerialSettings(9600, 8, "N", 2)) as link,
    ):
        master = KmpMaster(link, address=0x3F, on_bad_frame=lambda err, _raw: bad.append(err.code))
        response = await master.registers([0x041E])
    assert response == right
    assert bad == ["unexpected_reply"]
