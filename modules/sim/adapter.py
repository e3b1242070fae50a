"""The simulated 382L as a module: integrates the household model into meter registers."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import ClassVar

from gateway.adapter import ModuleContext
from gateway.config import ModuleConfig
from gateway.engine import Register
from gateway.engine.commands import CommandSpec
from gateway.model import Reading, Sample, utc_now
from modules.sim.household import Household, Snapshot

__all__ = ["SimAdapter", "SimConfig"]

_LOGGER = logging.getLogger(__name__)

# The 382L's registers resolve 1 Wh (0.001 kWh); the meter never rounds a register up.
_REGISTER_STEP = Decimal("0.001")
_TOTALS = ("1-0:1.8.0", "1-0:2.8.0", "1-0:3.8.0", "1-0:4.8.0")


class SimConfig(ModuleConfig, frozen=True):
    """``[[modules]] type = "sim"``."""

    meter: str
    speed: float = 1.0  # simulated seconds per real second
    interval_s: float = 1.0  # real seconds between samples
    pv_kwp: float = 0.0  # rooftop PV; > 0 makes the meter export around noon
    base_load_w: float = 180.0
    seed: int = 382


class SimAdapter:
    """A 382L that measures a simulated household."""

    Config = SimConfig
    COMMANDS: ClassVar[tuple[CommandSpec, ...]] = ()

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self._model = Household(
            seed=config.seed, base_load_w=config.base_load_w, pv_kwp=config.pv_kwp
        )

    async def run(self, ctx: ModuleContext) -> None:
        """Produce one sample per interval until cancelled."""
        zone = ctx.settings.zone
        registers = ctx.registers()
        totals_wh = [_wh(registers.get(code)) for code in _TOTALS]
        # Never step the meter clock back behind what it already reported (after a restart of an
        # accelerated simulation, simulated time is ahead of the wall clock).
        last = max((reg.at for reg in registers.values()), default=None)
        meter_time = max(utc_now(), last) if last else utc_now()
        step = timedelta(seconds=self.config.interval_s * self.config.speed)
        _LOGGER.info(
            "sim meter %s starts at %s with A+ %.3f kWh (x%.0f speed)",
            self.config.meter,
            meter_time.isoformat(timespec="seconds"),
            totals_wh[0] / 1000,
            self.config.speed,
        )
        while True:
            # A reading at once (a newcomer sees values at start), then one per interval, the
            # energy of each step integrated from the load at its start.
            snapshot = self._model.at(meter_time.astimezone(zone))
            ctx.submit(
                Sample(
                    meter=self.config.meter,
                    source=self.config.name,
                    at=meter_time,
                    readings=_readings(snapshot, totals_wh),
                )
            )
            await asyncio.sleep(self.config.interval_s)
            # A real 382L's clock is set by its head end: when the system clock is set forward
            # (NTP after a boot without RTC), the simulated meter's clock follows it.
            meter_time = max(meter_time + step, utc_now())
            hours = step.total_seconds() / 3600
            power, reactive = snapshot.power_w, snapshot.reactive_var
            totals_wh[0] += max(power, 0.0) * hours
            totals_wh[1] += max(-power, 0.0) * hours
            totals_wh[2] += max(reactive, 0.0) * hours
            totals_wh[3] += max(-reactive, 0.0) * hours


def _wh(register: Register | None) -> float:
    if register is None or isinstance(register.value, str):
        return 0.0
    return float(register.value) * 1000.0


def _kwh(wh: float) -> Decimal:
    return (Decimal(repr(wh)) / 1000).quantize(_REGISTER_STEP, rounding=ROUND_FLOOR)


def _readings(snapshot: Snapshot, totals_wh: list[float]) -> tuple[Reading, ...]:
    readings = [
        Reading("1-0:1.8.0", _kwh(totals_wh[0]), "kWh"),
        Reading("1-0:2.8.0", _kwh(totals_wh[1]), "kWh"),
        Reading("1-0:3.8.0", _kwh(totals_wh[2]), "kvarh"),
        Reading("1-0:4.8.0", _kwh(totals_wh[3]), "kvarh"),
        Reading("1-0:1.7.0", round(max(snapshot.power_w, 0.0), 1), "W"),
        Reading("1-0:2.7.0", round(max(-snapshot.power_w, 0.0), 1), "W"),
        Reading("1-0:3.7.0", round(max(snapshot.reactive_var, 0.0), 1), "var"),
        Reading("1-0:4.7.0", round(max(-snapshot.reactive_var, 0.0), 1), "var"),
        Reading("1-0:14.7.0", round(snapshot.frequency_hz, 3), "Hz"),
    ]
    apparent = sum(abs(complex(p.power_w, p.reactive_var)) for p in snapshot.phases)
    readings.append(
        Reading("1-0:13.7.0", round(abs(snapshot.power_w) / apparent, 3) if apparent else 1.0, None)
    )
    for phase, (power_c, voltage_c, current_c) in zip(
        snapshot.phases, ((21, 32, 31), (41, 52, 51), (61, 72, 71)), strict=True
    ):
        readings += [
            Reading(f"1-0:{power_c}.7.0", round(max(phase.power_w, 0.0), 1), "W"),
            Reading(f"1-0:{power_c + 1}.7.0", round(max(-phase.power_w, 0.0), 1), "W"),
            Reading(f"1-0:{voltage_c}.7.0", round(phase.voltage_v, 1), "V"),
            Reading(f"1-0:{current_c}.7.0", round(phase.current_a, 2), "A"),
        ]
    return tuple(readings)
