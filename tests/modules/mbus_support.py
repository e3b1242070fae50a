"""Shared helpers for the M-Bus tests: an emulated bus on a pty and its gateway config."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from gateway import config
from gateway.transport import open_pty
from modules.mbus.emulator import Line, serve
from modules.mbus.slave import Bus
from tests.support.gateway import background, offline_text


@asynccontextmanager
async def emulated(path: Path, bus: Bus, line: Line | None = None) -> AsyncIterator[str]:
    """The bus behind a pty whose symlink is ``path``; leaving the block unplugs it."""
    async with open_pty(str(path)) as (link, tty), background(serve(bus, link, line)):
        yield tty


def settings(tmp_path: Path, module: str, meters: tuple[str, ...] = ("m1",)) -> config.Settings:
    """A config with MQTT, HTTP and zeroconf off, the given meters, and one mbus module."""
    meter_tables = "".join(f'[[meters]]\nid = "{meter}"\n' for meter in meters)
    return config.loads(offline_text(tmp_path, meter_tables + module))


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
