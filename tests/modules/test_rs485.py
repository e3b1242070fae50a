"""The rs485 module: the protocol dispatch table, line settings, KMP and IEC over a serial line."""

from __future__ import annotations

import contextlib
from decimal import Decimal
from pathlib import Path

import pytest

from gateway import config
from gateway.adapter import ModuleContext
from gateway.errors import ConfigError
from gateway.model import Reading, Sample, utc_now
from gateway.transport import Link, SerialSettings, open_pty
from modules.optical import emulator
from modules.optical.emulator import IecEmulator, serve_kmp
from modules.optical.meter_model import Simulated382
from modules.rs485.adapter import Rs485Config
from modules.sessions import SESSIONS, LinkConfig, SessionSpec
from tests.modules.test_optical import (
    BYTE_DELAY_S,
    ZONE,
    has,
    settings_for,
)
from tests.support.gateway import background, running, until


def rs485(port: str, protocol: str = "kmp", extra: str = "") -> str:
    """An rs485 [[modules]] entry polling every 0.1 s."""
    return (
        f'[[modules]]\ntype = "rs485"\nname = "bus"\nmeter = "main"\nport = "{port}"\n'
        f'protocol = "{protocol}"\ninterval_s = 0.1\n' + extra
    )


async def test_kmp_over_a_serial_data_module(tmp_path: Path) -> None:
    meter = Simulated382(zone=ZONE)
    async with (
        open_pty(str(tmp_path / "ttyRS485")) as (device, path),
        background(serve_kmp(device, meter, byte_delay_s=BYTE_DELAY_S)),
        running(settings_for(tmp_path, rs485(path))) as gateway,
    ):
        await until(lambda: has(gateway, "1-0:1.8.0", "1-0:2.8.0", "1-0:52.7.0"))
        registers = gateway.engines["main"].registers
    assert registers["1-0:2.8.0"].value == Decimal("321.000")
    assert gateway.health["bus"].frames_failed == 0


async def test_iec_over_a_serial_line_survives_a_replug(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(emulator, "IEC_REACTION_S", 0.01)
    tty = str(tmp_path / "ttyRS485")
    meter = Simulated382(zone=ZONE)
    module = rs485(tty, "iec62056-21", 'bytesize = 8\nparity = "N"\n')  # ptys take no 7E1
    async with contextlib.AsyncExitStack() as stack:
        plugged = contextlib.AsyncExitStack()
        device, _path = await plugged.enter_async_context(open_pty(tty))
        await plugged.enter_async_context(background(IecEmulator(meter).serve(device)))
        gateway = await stack.enter_async_context(running(settings_for(tmp_path, module)))
        health = gateway.health["bus"]
        await until(lambda: has(gateway, "1-0:1.8.0", "1-0:4.8.0"))
        await plugged.aclose()
        await until(lambda: health.restarts >= 1 and not health.communicating, 15)
        frames = health.frames_ok
        async with open_pty(tty) as (device, _path), background(IecEmulator(meter).serve(device)):
            await until(lambda: health.frames_ok > frames + 1 and health.communicating, 20)
        kinds = [event.kind for _, event in gateway.store.events("main")]
    assert "communication_lost" in kinds and "communication_restored" in kinds


def test_line_settings_default_to_the_protocols_and_can_be_overridden() -> None:
    kmp = Rs485Config(type="rs485", name="bus", meter="main", port="/dev/ttyUSB0")
    assert kmp.serial_settings() == SerialSettings(9600, 8, "N", 2, rs485=False)
    iec = Rs485Config(
        type="rs485",
        name="bus",
        meter="main",
        port="/dev/ttyUSB0",
        protocol="iec62056-21",
        baudrate=9600,
        rs485=True,
    )
    assert iec.serial_settings() == SerialSettings(9600, 7, "E", 1, rs485=True)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('protocol = "modbus"', "unknown protocol 'modbus'"),
        ("interval_s = 0", "interval_s must be positive"),
        ('[modules.kmp]\ngroups = [{name = "a", registers = ["nope"]}]', "unknown KMP register"),
        ('[modules.kmp]\ngroups = [{name = "a", registers = [1002]}]', "clock"),
        ("[modules.iec]\nmax_baudrate = 115200", "max_baudrate"),
        ("[modules.kmp]\naddress = 300", "not a byte"),
    ],
)
def test_config_mistakes_name_the_module(tmp_path: Path, line: str, message: str) -> None:
    text = (
        f'[gateway]\ndata_dir = "{tmp_path}"\n[[meters]]\nid = "main"\n'
        '[[modules]]\ntype = "rs485"\nname = "bus"\nmeter = "main"\nport = "/dev/ttyUSB0"\n'
        + line
        + "\n"
    )
    with pytest.raises(ConfigError, match=message) as caught:
        config.loads(text)
    assert "modules[0]" in str(caught.value)


async def fake_session(link: Link, config: LinkConfig, ctx: ModuleContext) -> None:
    """A protocol plugged in through the table: one line exchanged, one sample submitted."""
    await link.write(b"HELLO\n")
    answer = await link.readline()
    ctx.submit(
        Sample(
            config.meter,
            config.name,
            utc_now(),
            (Reading("1-0:1.8.0", Decimal(answer.decode()), "kWh"),),
        )
    )
    await link.readline()  # until the line goes away


async def test_a_new_protocol_is_one_entry_in_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = SessionSpec(f"{__name__}:fake_session", SerialSettings(19200, 8, "N", 1), "a test")
    monkeypatch.setitem(SESSIONS, "hello", spec)

    async def device_side(link: Link) -> None:
        assert await link.readline() == b"HELLO\n"
        await link.write(b"42.5\n")
        await link.read()

    async with (
        open_pty(str(tmp_path / "tty")) as (device, path),
        background(device_side(device)),
        running(settings_for(tmp_path, rs485(path, "hello"))) as gateway,
    ):
        await until(lambda: has(gateway, "1-0:1.8.0"))
        assert gateway.engines["main"].registers["1-0:1.8.0"].value == Decimal("42.5")
