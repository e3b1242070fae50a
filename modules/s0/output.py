"""S0 output: any meter's energy register repeated as pulses on a GPIO line.

Like the 382L's own S0 output (1000 imp/kWh, 30 ms pulses, DIN 43864), so a legacy counter
(a heat-pump controller, an old data logger) can count a meter that is read over M-Bus, wM-Bus
or P1. Each whole pulse of the register's growth is emitted once: the position is persisted, so
energy that accrued while the gateway was down is emitted after the restart. The module is a
sink: it is told when the meter's registers change instead of looking at them on a timer.
"""

from __future__ import annotations

import asyncio
import logging
import math
from decimal import ROUND_FLOOR, Decimal
from typing import Annotated, ClassVar

import msgspec

from gateway.adapter import ModuleContext
from gateway.config import ModuleConfig
from gateway.engine.commands import CommandSpec
from modules.s0 import gpio
from modules.s0.pulses import parse_kwh

__all__ = ["S0OutputAdapter", "S0OutputConfig"]

_LOGGER = logging.getLogger(__name__)

STATE_KEY = "emitted"
# Pulses owed are spread over the time the source took to produce them (a meter read every
# 10 s gets its 10 s worth of pulses evenly), but never over more than this.
MAX_SPREAD_S = 300.0


class _State(msgspec.Struct, frozen=True):
    pulses_per_kwh: int
    register: str
    position: int  # pulses emitted up to: floor(register kWh * pulses_per_kwh)


class S0OutputConfig(ModuleConfig, frozen=True, kw_only=True):
    """``[[modules]] type = "s0_out"``: a meter's register as S0 pulses on one GPIO line."""

    meter: str  # whose register is repeated
    line: str | int
    chip: str | None = None
    register: str = "1-0:1.8.0"  # A+
    pulses_per_kwh: Annotated[int, msgspec.Meta(gt=0)] = 1000
    # DIN 43864: pulse >= 30 ms, pause >= 30 ms; the 382L sends 30 ms +- 10 %.
    pulse_s: Annotated[float, msgspec.Meta(ge=0.001, le=1)] = 0.03
    min_pause_s: Annotated[float, msgspec.Meta(ge=0.001, le=10)] = 0.03
    active_low: bool = False  # active = line low (an opto-coupler's LED wired to 3.3 V)
    drive: gpio.Drive = "push_pull"
    # A larger step (meter exchange, a register set by hand) is skipped, not replayed.
    max_catch_up_kwh: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    # Pulses owed when the module starts (energy that accrued while it was down) are spread
    # over this; later ones over the time the register took to grow. (Named for the polling it
    # once also paced: the module is told of the register's changes now.)
    poll_interval_s: Annotated[float, msgspec.Meta(gt=0)] = 0.5
    save_interval_s: Annotated[float, msgspec.Meta(gt=0)] = 10.0


class S0OutputAdapter:
    """Emits one pulse per 1/pulses_per_kwh kWh that a meter's register grows."""

    Config = S0OutputConfig
    COMMANDS: ClassVar[tuple[CommandSpec, ...]] = ()

    def __init__(self, config: S0OutputConfig) -> None:
        self.config = config

    async def run(self, ctx: ModuleContext) -> None:
        """Follow the register until cancelled; the position is saved on the way out."""
        config = self.config
        position = self._restore(ctx)
        saved = position
        line = gpio.open_output(
            config.chip,
            config.line,
            consumer=f"meter-gateway/{ctx.name}",
            active_low=config.active_low,
            drive=config.drive,
        )
        loop = asyncio.get_running_loop()
        min_period_s = config.pulse_s + config.min_pause_s
        changes = ctx.subscribe(config.meter)
        try:
            _LOGGER.info(
                "s0 output %s: %s of meter %s as %d imp/kWh on %s",
                ctx.name,
                config.register,
                config.meter,
                config.pulses_per_kwh,
                line.description,
            )
            last_target: int | None = None
            last_change = loop.time()
            spread_s = config.poll_interval_s
            last_save = loop.time()
            while True:
                target = self._target(ctx)
                if target is not None and target != last_target:
                    now = loop.time()
                    if last_target is not None:
                        spread_s = min(now - last_change, MAX_SPREAD_S)
                    last_target, last_change = target, now
                    position = self._check(ctx, position, target)
                owed = 0 if target is None or position is None else target - position
                due = loop.time() - last_save >= config.save_interval_s
                if position is not None and position != saved and due:
                    self._save(ctx, position)
                    saved, last_save = position, loop.time()
                if owed <= 0:
                    # Until the register grows; an unsaved position only sets a deadline.
                    unsaved = position is not None and position != saved
                    left_s = config.save_interval_s - (loop.time() - last_save)
                    await changes.wait(max(left_s, 0.0) if unsaved else None)
                    continue
                assert position is not None
                period_s = max(min_period_s, spread_s / owed)
                # The active edge is what a counter counts: from here the pulse is emitted.
                line.set(True)
                position += 1
                try:
                    await asyncio.sleep(config.pulse_s)
                finally:
                    line.set(False)
                await asyncio.sleep(period_s - config.pulse_s)
        finally:
            line.close()
            if position is not None and position != saved:
                self._save(ctx, position)

    def _restore(self, ctx: ModuleContext) -> int | None:
        config = self.config
        blob = ctx.load_state(STATE_KEY)
        if not blob:
            return None
        try:
            state = msgspec.json.decode(blob, type=_State)
        except msgspec.DecodeError:
            return None
        if state.pulses_per_kwh != config.pulses_per_kwh or state.register != config.register:
            return None  # counting something else now: start afresh from the register
        return state.position

    def _target(self, ctx: ModuleContext) -> int | None:
        """The register's value in whole pulses."""
        register = ctx.registers(self.config.meter).get(self.config.register)
        kwh = parse_kwh(register.value) if register is not None else None
        if kwh is None:
            return None
        pulses = (kwh * self.config.pulses_per_kwh).to_integral_value(rounding=ROUND_FLOOR)
        return int(pulses)

    def _check(self, ctx: ModuleContext, position: int | None, target: int) -> int:
        """A first position, or a new one when the register cannot be followed pulse by pulse."""
        config = self.config
        if position is None:
            _LOGGER.info("s0 output %s: starting at %d pulses", ctx.name, target)
            self._save(ctx, target)
            return target
        owed = target - position
        most = math.floor(config.max_catch_up_kwh * config.pulses_per_kwh)
        if 0 <= owed <= most:
            return position
        kwh = Decimal(owed) / config.pulses_per_kwh
        detail = (
            f"{config.register} of {config.meter} went back by {-kwh} kWh"
            if owed < 0
            else f"{config.register} of {config.meter} jumped by {kwh} kWh, more than "
            f"max_catch_up_kwh ({config.max_catch_up_kwh})"
        )
        _LOGGER.warning("s0 output %s: %s; not replayed as pulses", ctx.name, detail)
        ctx.event("s0_output_skipped", f"{detail}: not replayed as pulses", kwh=str(kwh))
        self._save(ctx, target)
        return target

    def _save(self, ctx: ModuleContext, position: int) -> None:
        config = self.config
        state = _State(config.pulses_per_kwh, config.register, position)
        ctx.save_state(STATE_KEY, msgspec.json.encode(state))
