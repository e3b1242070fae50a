"""External tariff control on GPIO lines, as the 382L's tariff modules (68 50 008: 2 tariffs,
68 50 018: 4 tariffs) take it from 230 VAC inputs.

One line selects T1/T2; two lines select T1..T4 as a binary number (the first line is bit 0).
Each level change becomes a Sample with the meter's active tariff (0-0:96.14.0); the meter
follows it when its ``[meters.tariff] source = "meter"``. The 230 VAC signal reaches the GPIO
through an opto-coupler (see README.md); the lines are read through modules/s0/gpio.py.
"""

from __future__ import annotations

import logging
from typing import ClassVar, Literal

from gateway.adapter import ModuleContext
from gateway.config import ModuleConfig
from gateway.engine.commands import CommandSpec
from gateway.model import Reading, Sample, utc_now
from modules.s0 import gpio

__all__ = ["TariffInputAdapter", "TariffInputConfig"]

_LOGGER = logging.getLogger(__name__)
ACTIVE_TARIFF = "0-0:96.14.0"


class TariffInputConfig(ModuleConfig, frozen=True):
    """``[[modules]] type = "tariff_input"``."""

    meter: str
    chip: str | None = None  # None: find the lines by name on any chip
    lines: tuple[str | int, ...] = ()  # 1 line: T1/T2; 2 lines: T1..T4 (first line = bit 0)
    active: Literal["high", "low"] = "high"  # the level that means "bit set"
    bias: gpio.Bias = "as_is"
    # A tariff signal switches a few times a day: a long debounce costs nothing and rides out
    # relay chatter on the 230 VAC side.
    debounce_s: float = 0.05

    def __post_init__(self) -> None:
        if len(self.lines) not in (1, 2):
            raise ValueError("`lines` takes one line (T1/T2) or two (T1..T4)")
        if len(set(self.lines)) != len(self.lines):
            raise ValueError("`lines` must be different lines")
        if not 0 <= self.debounce_s <= 1:
            raise ValueError("`debounce_s` must be between 0 and 1")


class TariffInputAdapter:
    """Reports the tariff the input lines select, at start and on every change."""

    Config = TariffInputConfig
    COMMANDS: ClassVar[tuple[CommandSpec, ...]] = ()

    def __init__(self, config: TariffInputConfig) -> None:
        self.config = config

    async def run(self, ctx: ModuleContext) -> None:
        """Hold the lines and follow them until cancelled."""
        config = self.config
        specs = {
            f"bit{index}": gpio.InputSpec(line, "both", config.bias, config.debounce_s)
            for index, line in enumerate(config.lines)
        }
        source = gpio.open_inputs(config.chip, specs, consumer=f"meter-gateway:{config.name}")
        try:
            levels = dict(source.levels)
            tariff = self._report(ctx, levels, None)
            _LOGGER.info("tariff input %s on %s: T%d", config.name, source.description, tariff)
            while True:
                for event in await source.read():
                    levels[event.key] = event.rising
                tariff = self._report(ctx, levels, tariff)
        finally:
            source.close()

    def _report(self, ctx: ModuleContext, levels: dict[str, bool], previous: int | None) -> int:
        tariff = 1 + sum(
            1 << index
            for index in range(len(self.config.lines))
            if levels[f"bit{index}"] == (self.config.active == "high")
        )
        if tariff != previous:
            reading = Reading(ACTIVE_TARIFF, tariff, None)
            ctx.submit(Sample(self.config.meter, self.config.name, utc_now(), (reading,)))
        return tariff
