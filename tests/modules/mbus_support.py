"""Shared helpers for the M-Bus tests: an emulated bus on a pty and a gateway in-process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from gateway import config
from gateway.app import Gateway
from gateway.errors import ConnectionLost
from gateway.transport import open_pty
from modules.mbus.emulator import Line, serve
from modules.mbus.slave import Bus


@asynccontextmanager
async def emulated(path: Path, bus: Bus, line: Line | None = None) -> AsyncIterator[str]:
    """The bus behind a pty whose symlink is ``path``; leaving the block unplugs it."""
    async with open_pty(str(path)) as (link, tty):
        task = asyncio.create_task(serve(bus, link, line))
        try:
            yield tty
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionLost):
                await task


def settings(tmp_path: Path, module: str, meters: tuple[str, ...] = ("m1",)) -> config.Settings:
    """A config with MQTT, HTTP and zeroconf off, the given meters, and one mbus module."""
    text = (
        f'[gateway]\ndata_dir = "{tmp_path}"\npersist_interval_s = 0.2\n'
        "[mqtt]\nenabled = false\n[http]\nenabled = false\n[zeroconf]\nenabled = false\n"
        + "".join(f'[[meters]]\nid = "{meter}"\n' for meter in meters)
        + module
    )
    return config.loads(text)


def module(port: Path | str, devices: str, **options: object) -> str:
    """An ``[[modules]]`` table for the bus at ``port`` (fast polls, small latency)."""
    values = {"baudrate": 9600, "latency_s": 0.02, **options}
    lines = "".join(f"{key} = {_toml(value)}\n" for key, value in values.items())
    return f'[[modules]]\ntype = "mbus"\nname = "bus1"\nport = "{port}"\n{lines}{devices}'


def device(meter: str, *, primary: int | None = None, secondary: str | None = None) -> str:
    """A ``[[modules.devices]]`` table polled every 0.3 s."""
    address = (
        f"primary_address = {primary}"
        if primary is not None
        else (f'secondary_address = "{secondary}"')
    )
    return f'[[modules.devices]]\nmeter = "{meter}"\n{address}\npoll_interval_s = 0.3\n'


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


@asynccontextmanager
async def running(settings: config.Settings) -> AsyncIterator[Gateway]:
    """A Gateway serving in this event loop until the block ends."""
    gateway = Gateway(settings, outputs=lambda _g: ())
    task = asyncio.create_task(gateway.serve())
    try:
        await asyncio.wait_for(gateway.ready.wait(), 10)
        yield gateway
    finally:
        gateway.request_stop()
        await asyncio.wait_for(task, 15)


async def until(predicate: Callable[[], object], timeout_s: float = 10.0) -> None:
    """Poll observable state until ``predicate`` holds."""
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.02)
