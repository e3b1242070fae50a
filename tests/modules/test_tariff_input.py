"""Tariff from GPIO lines: the real adapter on the software GPIO chip, into the engine."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.app import Gateway
from modules.s0.software import SoftwareChip
from tests.support.gateway import running, until

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
