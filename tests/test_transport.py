"""The transport helper over real ptys and loopback TCP."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.errors import CannotConnect, ConnectionLost
from gateway.transport import Link, SerialSettings, open_link, open_pty, serve_tcp
from tests.support.processes import free_port


async def test_serial_link_over_a_pty_both_ways(tmp_path: Path) -> None:
    async with (
        open_pty(str(tmp_path / "ttyMETER")) as (device, path),
        open_link(path, SerialSettings(baudrate=2400, parity="E")) as link,
    ):
        assert link.is_serial
        await link.write(b"\x10\x5b\xfe\x59\x16")
        assert await asyncio.wait_for(device.read_exactly(5), 5) == b"\x10\x5b\xfe\x59\x16"
        for byte in b"\xe5\x68":
            await device.write(bytes([byte]))  # one byte at a time, as a slow meter
        assert await asyncio.wait_for(link.read_exactly(2), 5) == b"\xe5\x68"
        link.set_baudrate(9600)


async def test_unplugging_the_device_is_connection_lost(tmp_path: Path) -> None:
    async with open_pty(str(tmp_path / "tty")) as (_device, path):
        link_cm = open_link(path)
        link = await link_cm.__aenter__()
    with pytest.raises(ConnectionLost):
        await asyncio.wait_for(link.read(), 5)
    await link_cm.__aexit__(None, None, None)


async def test_a_link_silent_too_long_is_connection_lost_naming_it(tmp_path: Path) -> None:
    async with (
        open_pty(str(tmp_path / "ttyHAN")) as (device, path),
        open_link(path) as link,
    ):
        await device.write(b"/ISK5")
        received = b""
        while len(received) < len(b"/ISK5"):  # a pty may hand the bytes over in pieces
            received += await link.read_within(5.0)
        assert received == b"/ISK5"
        with pytest.raises(ConnectionLost, match=r"ttyHAN: nothing received for 0\.2 s"):
            await link.read_within(0.2)


async def test_missing_tty_and_refused_tcp_cannot_connect(tmp_path: Path) -> None:
    with pytest.raises(CannotConnect, match="nope"):
        async with open_link(str(tmp_path / "nope")):
            pass
    with pytest.raises(CannotConnect, match=r"127\.0\.0\.1"):
        async with open_link(f"socket://127.0.0.1:{free_port()}"):
            pass


async def test_tcp_link_to_an_emulator_server() -> None:
    async def echo(link: Link) -> None:
        while True:
            await link.write(await link.read())

    port = free_port()
    server = await serve_tcp(port, echo)
    async with server, open_link(f"tcp://127.0.0.1:{port}") as link:
        await link.write(b"/?!\r\n")
        assert await asyncio.wait_for(link.readline(), 5) == b"/?!\r\n"
