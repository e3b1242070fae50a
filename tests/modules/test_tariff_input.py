"""Tariff from GPIO lines: the real adapter on the software GPIO chip, into the engine."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path

import pytest

from gateway import config
from gateway.app import Gateway
from modules.s0.software import SoftwareChip

_CHIPS = itertools.count()


@pytest.fixture
def chip() -> Iterator[SoftwareChip]:
    instance = SoftwareChip(f"tariff-test-{next(_CHIPS)}", ("t0", "t1"))
    try:
        yield instance
    finally:
        instance.close()


def settings_text(tmp_path: Path, chip: SoftwareChip, active: str = "high") -> str:
    return f"""
[gateway]
data_dir = "{tmp_path}"
[mqtt]
enabled = false
[http]
enabled = false
[[meters]]
id = "main"
[meters.tariff]
source = "meter"
[[modules]]
type = "sim"
name = "sim1"
meter = "main"
speed = 600.0
interval_s = 0.05
[[modules]]
type = "tariff_input"
name = "tariff"
meter = "main"
chip = "{chip.path}"
lines = ["t0", "t1"]
active = "{active}"
debounce_s = 0.0
"""


@asynccontextmanager
async def running(text: str) -> AsyncIterator[Gateway]:
    gateway = Gateway(config.loads(text), outputs=lambda _g: ())
    task = asyncio.create_task(gateway.serve())
    try:
        await asyncio.wait_for(gateway.ready.wait(), 10)
        yield gateway
    finally:
        gateway.request_stop()
        await asyncio.wait_for(task, 15)


async def until(predicate: Callable[[], object], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.01)


def register(gateway: Gateway, code: str) -> Decimal:
    found = gateway.engines["main"].registers.get(code)
    return Decimal(0) if found is None else Decimal(found.value)


async def test_lines_select_the_tariff_that_takes_the_energy(
    tmp_path: Path, chip: SoftwareChip
) -> None:
    async with running(settings_text(tmp_path, chip)) as gateway:
        await until(lambda: register(gateway, "1-0:1.8.1") > 0)
        assert register(gateway, "0-0:96.14.0") == 1
        chip.set_level("t0", True)
        await until(lambda: register(gateway, "0-0:96.14.0") == 2)
        t2 = register(gateway, "1-0:1.8.2")
        await until(lambda: register(gateway, "1-0:1.8.2") > t2)
        t1_frozen = register(gateway, "1-0:1.8.1")
        chip.set_level("t1", True)
        await until(lambda: register(gateway, "0-0:96.14.0") == 4)
        await until(lambda: register(gateway, "1-0:1.8.4") > 0)
        assert register(gateway, "1-0:1.8.1") == t1_frozen, "T1 stopped counting at the switch"


async def test_active_low_lines_and_the_level_at_start(tmp_path: Path, chip: SoftwareChip) -> None:
    chip.set_level("t1", True)  # inactive for active-low
    chip.set_level("t0", False)  # active: bit 0 set
    async with running(settings_text(tmp_path, chip, active="low")) as gateway:
        await until(lambda: register(gateway, "0-0:96.14.0") == 2)
