"""The mbus adapter against the emulated 382L bus over a real pty, into an in-process Gateway."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from modules.mbus.emulator import build_bus
from tests.modules.mbus_support import device, emulated, module, running, settings, until


async def test_values_of_a_primary_meter_reach_the_engine(tmp_path: Path) -> None:
    bus = build_bus(1, address=5)
    port = tmp_path / "ttyMBUS"
    async with emulated(port, bus):
        config = settings(tmp_path, module(port, device("m1", primary=5)))
        async with running(config) as gateway:
            registers = gateway.engines["m1"].registers
            await until(lambda: "1-0:1.8.0" in registers and "mbus:fabrication_no" in registers)
            assert registers["1-0:1.8.0"].value == Decimal("4321.00")
            assert registers["1-0:1.8.0"].unit == "kWh"
            assert 200 < registers["1-0:32.7.0"].value < 260
            assert registers["mbus:fabrication_no"].value == "38200001"
            assert registers["1-0:1.8.0"].at.second == 0, "stamped with the meter's clock"
            assert gateway.health["bus1"].state == "running"
