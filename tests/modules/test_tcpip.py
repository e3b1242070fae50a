"""The tcpip module: KMP and IEC 62056-21 to a TCP peer on loopback; the peer restarting."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from gateway.transport import Link, serve_tcp
from modules.optical import emulator
from modules.optical.emulator import IecEmulator, serve_kmp
from modules.optical.meter_model import Simulated382
from tests.modules.test_optical import BYTE_DELAY_S, ZONE, has, settings_for
from tests.support.gateway import number, running, until
from tests.support.processes import free_port


def tcpip(port: int, protocol: str = "kmp") -> str:
    """A tcpip [[modules]] entry polling every 0.1 s."""
    return (
        '[[modules]]\ntype = "tcpip"\nname = "lan"\nmeter = "main"\nhost = "127.0.0.1"\n'
        f'port = {port}\nprotocol = "{protocol}"\ninterval_s = 0.1\n'
    )


async def test_kmp_from_a_tcp_peer_one_byte_at_a_time(tmp_path: Path) -> None:
    meter = Simulated382(zone=ZONE)
    port = free_port()

    async def handler(link: Link) -> None:
        await serve_kmp(link, meter, byte_delay_s=BYTE_DELAY_S)

    async with (
        await serve_tcp(port, handler),
        running(settings_for(tmp_path, tcpip(port))) as gateway,
    ):
        await until(lambda: has(gateway, "1-0:1.8.0", "1-0:1.7.0", "1-0:72.7.0"))
        registers = gateway.engines["main"].registers
    assert Decimal("12345.678") <= number(registers["1-0:1.8.0"]) <= meter.energy_import_kwh
    assert gateway.health["lan"].frames_failed == 0


async def test_iec_over_tcp_stays_at_the_sign_on_speed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(emulator, "IEC_REACTION_S", 0.01)
    meter = Simulated382(zone=ZONE)
    port = free_port()
    async with (
        await serve_tcp(port, IecEmulator(meter, echo=True).serve),
        running(settings_for(tmp_path, tcpip(port, "iec62056-21"))) as gateway,
    ):
        await until(lambda: has(gateway, "1-0:1.8.0", "1-0:3.8.0", "1-0:32.7.0"))
    # The far end's UART cannot follow a switch, so mode C is asked to stay at 300 baud.
    assert set(meter.option_selects) == {"000"}


async def test_the_peer_going_away_and_coming_back_recovers(tmp_path: Path) -> None:
    meter = Simulated382(zone=ZONE)
    port = free_port()
    connections: list[Link] = []

    async def handler(link: Link) -> None:
        connections.append(link)
        await serve_kmp(link, meter)

    server = await serve_tcp(port, handler)
    async with running(settings_for(tmp_path, tcpip(port))) as gateway:
        health = gateway.health["lan"]
        await until(lambda: health.frames_ok >= 2)
        server.close()
        await server.wait_closed()
        for link in connections:  # the peer drops its connection, as a rebooting IP module
            await link.close()
        await until(lambda: health.restarts >= 1 and not health.communicating, 15)
        frames = health.frames_ok
        async with await serve_tcp(port, handler):
            await until(lambda: health.frames_ok > frames + 2 and health.communicating, 20)
        kinds = [event.kind for _, event in gateway.store.events("main")]
    assert "communication_lost" in kinds and "communication_restored" in kinds
