"""A relay or contactor on a GPIO line as the breaker's actuator, with read-back and a button.

The output line holds the position the engine's breaker wants; an auxiliary contact on an input
line (where wired) reads back where the contactor really is, and a push button on another input
line is the meter's local button. Without read-back, a successful write is the confirmation.
Stopping the module releases the line, which then sits inactive: choose ``active`` so that the
inactive position is the one wanted when the gateway is not running. Never a safety function.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Annotated, ClassVar, Literal

import msgspec

from gateway.adapter import Actuator, ModuleContext
from gateway.config import ModuleConfig
from gateway.engine.commands import CommandSpec
from gateway.errors import CommandError, ConnectionLost
from gateway.model import Command, Position
from modules.relay.feedback import check_wiring, desired_position
from modules.s0 import gpio

__all__ = ["RelayAdapter", "RelayConfig"]

_LOGGER = logging.getLogger(__name__)

# A press closer than this to the previous one is contact bounce the kernel debounce let pass,
# or a double tap: one press, one command.
BUTTON_GUARD_S = 0.3

_Debounce = Annotated[float, msgspec.Meta(ge=0, le=0.1)]


class RelayConfig(ModuleConfig, frozen=True, kw_only=True):
    """``[[modules]] type = "relay"``: a relay/contactor output, optional read-back and button."""

    meter: str  # the meter whose breaker this is; name it in [meters.breaker] actuator
    chip: str | None = None  # gpiochipN, /dev/gpiochipN, N or a label; none: find lines by name
    line: str | int  # the output driving the relay (line name "GPIO17" or offset)
    active_low: bool = False  # the relay board switches on a low level (many opto-isolated boards)
    drive: gpio.Drive = "push_pull"
    active: Literal["open", "closed"] = "open"  # the breaker position while the relay is energized
    feedback_line: str | int | None = None  # an auxiliary contact of the contactor, read back
    feedback_closed_level: Literal["low", "high"] = "low"  # its level when the breaker is closed
    feedback_bias: gpio.Bias = "pull_up"
    feedback_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=60)] = 0.5
    button_line: str | int | None = None  # a push button: the meter's local button
    button_pressed_level: Literal["low", "high"] = "low"
    button_bias: gpio.Bias = "pull_up"
    debounce_s: _Debounce = 0.02  # kernel debounce on both input lines

    def __post_init__(self) -> None:
        lines = [self.line, self.feedback_line, self.button_line]
        used = [str(line) for line in lines if line is not None]
        if len(set(used)) != len(used):
            raise ValueError("`line`, `feedback_line` and `button_line` must be different lines")


class RelayAdapter:
    """Drives the relay to where the breaker should be and reports where it is."""

    Config = RelayConfig
    COMMANDS: ClassVar[
        tuple[CommandSpec, ...]
    ] = ()  # switched by SwitchRequests, never by a client

    def __init__(self, config: RelayConfig) -> None:
        self.config = config
        self._feedback_high: bool | None = None
        self._feedback_changed = asyncio.Event()
        self._switching = False
        self._reported: Position | None = None
        self._last_press_ns: int | None = None
        self._presses = 0

    async def run(self, ctx: ModuleContext) -> None:
        """Hold the breaker's position, switch on each SwitchRequest, read back, pass on
        presses."""
        config = self.config
        check_wiring(ctx)
        consumer = f"meter-gateway/{ctx.name}"
        output = gpio.open_output(
            config.chip,
            config.line,
            consumer=consumer,
            active_low=config.active_low,
            drive=config.drive,
        )
        inputs: gpio.PulseSource | None = None
        try:
            specs = self._input_specs()
            if specs:
                inputs = gpio.open_inputs(config.chip, specs, consumer=consumer)
                if "feedback" in inputs.levels:
                    self._feedback_high = inputs.levels["feedback"]
            start = desired_position(ctx) or "closed"  # a new breaker starts connected
            _LOGGER.info(
                "relay %s: %s drives the breaker of %s (%s while energized)%s%s; holding %s",
                ctx.name,
                output.description,
                config.meter,
                config.active,
                ", read back" if config.feedback_line is not None else "",
                ", button" if config.button_line is not None else "",
                start,
            )
            async with asyncio.TaskGroup() as group:
                if inputs is not None:
                    group.create_task(self._inputs(ctx, inputs), name=f"{ctx.name}-inputs")
                group.create_task(self._commands(ctx, output, start), name=f"{ctx.name}-commands")
        except ExceptionGroup as group:
            # A line that went away ends the run; report that, not the group around it.
            first: BaseException = group
            while isinstance(first, BaseExceptionGroup):
                first = first.exceptions[0]
            raise first from None
        finally:
            if inputs is not None:
                inputs.close()
            output.close()

    def _input_specs(self) -> dict[str, gpio.InputSpec]:
        config = self.config
        specs: dict[str, gpio.InputSpec] = {}
        if config.feedback_line is not None:
            specs["feedback"] = gpio.InputSpec(
                config.feedback_line, "both", config.feedback_bias, config.debounce_s
            )
        if config.button_line is not None:
            edge: gpio.Edges = "falling" if config.button_pressed_level == "low" else "rising"
            specs["button"] = gpio.InputSpec(
                config.button_line, edge, config.button_bias, config.debounce_s
            )
        return specs

    async def _commands(self, ctx: Actuator, output: gpio.OutputLine, start: Position) -> None:
        await self._switch(ctx, output, start)
        while True:
            wanted = await ctx.switch_requests.get()
            # Switches queued while the last one settled: only where the breaker is now matters.
            while not ctx.switch_requests.empty():
                wanted = ctx.switch_requests.get_nowait()
            await self._switch(ctx, output, wanted.position)

    async def _switch(self, ctx: Actuator, output: gpio.OutputLine, target: Position) -> None:
        """Drive the line; with read-back, wait for the contactor to get there and say so."""
        config = self.config
        self._switching = True
        try:
            try:
                output.set(target == config.active)
            except ConnectionLost as err:
                ctx.switch_failed(
                    target, f"could not drive {output.description} to {target}: {err}"
                )
                raise
            if self._feedback_high is None:
                self._report(ctx, target)  # nothing to read back: the written level is all
                return
            deadline = time.monotonic() + config.feedback_timeout_s
            while self._feedback() != target and (left := deadline - time.monotonic()) > 0:
                self._feedback_changed.clear()
                try:
                    # Contactors close in tens of ms; the timeout bounds a stuck one.
                    async with asyncio.timeout(left):
                        await self._feedback_changed.wait()
                except TimeoutError:
                    break
            seen = self._feedback()
            assert seen is not None
            self._report(ctx, seen)
            if seen != target:
                ctx.switch_failed(
                    target,
                    f"the read-back still says {seen} {config.feedback_timeout_s:g} s after"
                    f" switching {target} (stuck contactor, wiring, or feedback_closed_level)",
                    reported=seen,
                )
        finally:
            self._switching = False

    async def _inputs(self, ctx: ModuleContext, inputs: gpio.PulseSource) -> None:
        while True:
            for event in await inputs.read():
                if event.key == "feedback":
                    self._feedback_high = event.rising
                    self._feedback_changed.set()
                elif event.key == "button":
                    await self._press(ctx, event.timestamp_ns)
            position = self._feedback()
            if position is not None and not self._switching and position != self._reported:
                # Nobody told it to move: a hand on the contactor or a tripped coil supply.
                self._report(ctx, position)

    async def _press(self, ctx: ModuleContext, at_ns: int) -> None:
        last = self._last_press_ns
        self._last_press_ns = at_ns
        if last is not None and at_ns - last < BUTTON_GUARD_S * 1e9:
            return
        self._presses += 1
        command = Command(
            self.config.meter,
            "button",
            f"{ctx.name}-{self._presses}-{uuid.uuid4().hex[:8]}",
            source=f"button:{ctx.name}",
        )
        try:
            result = await ctx.execute(command)
        except CommandError as err:
            _LOGGER.info("relay %s: button press refused: %s", ctx.name, err)
            ctx.event("button_refused", f"push button: {err}", code=err.code)
            return
        _LOGGER.info("relay %s: button press: breaker %s", ctx.name, result.get("state"))

    def _feedback(self) -> Position | None:
        if self._feedback_high is None:
            return None
        closed_high = self.config.feedback_closed_level == "high"
        return "closed" if self._feedback_high == closed_high else "open"

    def _report(self, ctx: Actuator, position: Position) -> None:
        self._reported = position
        ctx.report_position(position)
