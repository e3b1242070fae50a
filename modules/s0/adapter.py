"""S0 pulse input on a GPIO line: exact energy from the count, power from pulse intervals.

One module is one input (DIN 43864 S0: an open collector that closes for >= 30 ms per pulse);
several inputs on one gateway are several ``[[modules]]`` entries. The count survives restarts
(module state, written at a bounded rate and on stop, and the engine's own register: the larger
wins), and ``set_total`` makes the total match the meter's display.
"""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from typing import Annotated, ClassVar, Literal

import msgspec

from gateway.adapter import ModuleContext
from gateway.config import ModuleConfig
from gateway.engine import Register
from gateway.engine.commands import REMOTE, CommandSpec, ModuleArgs, Queued
from gateway.model import Command, Reading, Sample, utc_now
from modules.s0 import gpio
from modules.s0.pulses import (
    NS_PER_S,
    OBIS,
    Direction,
    Note,
    PulseMeter,
    Total,
    decode_totals,
    encode_totals,
    parse_kwh,
)

__all__ = ["S0Adapter", "S0Config"]

_LOGGER = logging.getLogger(__name__)

STATE_KEY = "totals"
# EN 50160 lets the supply voltage sit 10 % above nominal; only a rate beyond Imax at that
# voltage is impossible for the meter to have measured.
VOLTAGE_TOLERANCE = 1.1
# Glitches (pulses shorter than min_pulse_s) are counted; the log hears of them at most hourly.
GLITCH_REPORT_S = 3600.0

_Positive = Annotated[float, msgspec.Meta(gt=0)]
_NonNegative = Annotated[float, msgspec.Meta(ge=0)]


class S0Config(ModuleConfig, frozen=True, kw_only=True):
    """``[[modules]] type = "s0"``: one S0 input on one GPIO line."""

    meter: str
    line: str | int  # line name ("GPIO17") or offset on the chip
    chip: str | None = None  # gpiochipN, /dev/gpiochipN, N or a label; none: find the line by name
    edge: Literal["falling", "rising"] = "falling"  # the edge that starts a pulse
    bias: gpio.Bias = "pull_up"
    # Kernel debounce: S0 pulses and pauses last >= 30 ms (DIN 43864), so 10 ms is safe for both.
    debounce_s: Annotated[float, msgspec.Meta(ge=0, le=0.1)] = 0.01
    min_pulse_s: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.02  # 0: count every edge
    pulses_per_kwh: Annotated[int, msgspec.Meta(gt=0)] = 1000
    counts: Direction = "import"  # what a pulse adds to without a direction line
    direction_line: str | int | None = None  # a second input: pulses count as export while ...
    export_when: Literal["low", "high"] = "low"  # ... it is at this level
    initial_import_kwh: Decimal | None = None  # the display when counting began ("12345.678")
    initial_export_kwh: Decimal | None = None
    publish_interval_s: _Positive = 1.0
    save_interval_s: _Positive = 10.0
    power_timeout_s: _Positive = 300.0  # no pulse for this long: 0 W
    imax_a: _Positive = 105.0  # the meter's Imax, for implausible-rate events
    voltage_v: _Positive = 230.0
    phases: Literal[1, 2, 3] = 3

    def __post_init__(self) -> None:
        for key in ("initial_import_kwh", "initial_export_kwh"):
            value = getattr(self, key)
            if value is not None and parse_kwh(value) is None:
                raise ValueError(f"`{key}` must be a non-negative number of kWh")

    @property
    def directions(self) -> tuple[Direction, ...]:
        """The registers this input feeds."""
        return ("import", "export") if self.direction_line is not None else (self.counts,)

    @property
    def max_power_w(self) -> float:
        """The most the meter can measure."""
        return self.imax_a * self.voltage_v * VOLTAGE_TOLERANCE * self.phases


class SetTotalArgs(ModuleArgs, frozen=True):
    """``set_total``: make a total match the meter's display (kWh, exact)."""

    kwh: Decimal
    # import or export, or its energy register; default: the first configured direction
    register: Literal["import", "export", "1-0:1.8.0", "1-0:2.8.0"] | None = None

    def __post_init__(self) -> None:
        if not self.kwh.is_finite() or self.kwh < 0:
            raise ValueError("`kwh` must be a non-negative decimal number")


class S0Adapter:
    """Counts S0 pulses from a GPIO line into the meter's A+ (or A-) register."""

    Config = S0Config
    COMMANDS: ClassVar[tuple[CommandSpec, ...]] = (
        CommandSpec(
            "set_total",
            "Set an S0 meter's total to what its display shows.",
            REMOTE,
            SetTotalArgs,
            Queued,
        ),
    )

    def __init__(self, config: S0Config) -> None:
        self.config = config

    async def run(self, ctx: ModuleContext) -> None:  # noqa: PLR0912, PLR0915 - set-up, counting and the save share the lines
        """Count until cancelled; the count is saved on the way out."""
        config = self.config
        totals = self._restore(ctx)
        source = gpio.open_inputs(config.chip, self._specs(), consumer=f"meter-gateway/{ctx.name}")
        try:
            meter = self._meter(source, totals)
        except BaseException:
            source.close()
            raise
        published: tuple[Decimal | None, ...] = ()
        try:
            _LOGGER.info(
                "s0 %s: counting %s on %s at %d imp/kWh (%s)",
                ctx.name,
                "/".join(config.directions),
                source.description,
                config.pulses_per_kwh,
                self._describe(meter),
            )
            loop = asyncio.get_running_loop()
            next_publish = loop.time()
            last_save = loop.time()
            glitches_reported, last_glitch_report = 0, float("-inf")
            while True:
                wait_s = next_publish - loop.time()
                if wait_s > 0:
                    try:
                        # An S0 line may be silent for hours; the wait only paces publishing.
                        async with asyncio.timeout(wait_s):
                            events = await source.read()
                    except TimeoutError:
                        events = []
                    _report(ctx, source.description, meter.feed(events))
                while not ctx.commands.empty():
                    command = ctx.commands.get_nowait()
                    if self._command(ctx, meter, command):
                        # The display is the truth: let the engine take the new total even
                        # when it is lower than, or far above, the one it holds.
                        await ctx.execute(
                            Command(config.meter, "accept_registers", f"{command.id}-accept")
                        )
                        next_publish = loop.time()
                now = loop.time()
                if now >= next_publish:
                    published = self._publish(ctx, meter, source.now_ns())
                    next_publish += config.publish_interval_s
                    if next_publish <= now:  # fell behind: no burst of catch-up samples
                        next_publish = now + config.publish_interval_s
                if meter.changed and now - last_save >= config.save_interval_s:
                    self._save(ctx, meter)
                    last_save = now
                if (
                    meter.glitches > glitches_reported
                    and now - last_glitch_report >= GLITCH_REPORT_S
                ):
                    ctx.event(
                        "pulse_glitches",
                        f"{source.description}: {meter.glitches - glitches_reported} pulses "
                        f"shorter than {config.min_pulse_s * 1000:.0f} ms ignored",
                        glitches=meter.glitches - glitches_reported,
                    )
                    glitches_reported, last_glitch_report = meter.glitches, now
        finally:
            try:
                # Edges the kernel already reported are pulses the meter counted: keep them.
                _report(ctx, source.description, meter.feed(source.read_nowait()))
            finally:
                source.close()
            if self._totals_of(meter) != published:
                self._publish(ctx, meter, source.now_ns())
            if meter.changed:
                self._save(ctx, meter)

    # setup -------------------------------------------------------------------------------------

    def _specs(self) -> dict[str, gpio.InputSpec]:
        config = self.config
        both = config.min_pulse_s > 0
        specs = {
            "pulse": gpio.InputSpec(
                config.line, "both" if both else config.edge, config.bias, config.debounce_s
            )
        }
        if config.direction_line is not None:
            specs["direction"] = gpio.InputSpec(
                config.direction_line, "both", config.bias, config.debounce_s
            )
        return specs

    def _restore(self, ctx: ModuleContext) -> dict[Direction, Total]:
        """Persisted count or the engine's register, whichever is larger; else the config's."""
        config = self.config
        ppk = config.pulses_per_kwh
        totals = decode_totals(ctx.load_state(STATE_KEY), ppk)
        registers = ctx.registers()
        initial = {"import": config.initial_import_kwh, "export": config.initial_export_kwh}
        for direction in config.directions:
            total = totals[direction]
            ours = total.kwh(ppk)
            engine = _kwh(registers.get(OBIS[direction][0]))
            if engine is not None and (ours is None or engine > ours):
                if ours is not None:
                    _LOGGER.info(
                        "s0 %s: the meter's %s register (%s kWh) is ahead of the saved count "
                        "(%s kWh); continuing from it",
                        ctx.name,
                        direction,
                        engine,
                        ours,
                    )
                totals[direction] = Total(engine)
            elif ours is None and initial[direction] is not None:
                totals[direction] = Total(initial[direction], total.count)
            elif ours is None:
                _LOGGER.warning(
                    "s0 %s: the %s total is unknown; publishing power only until a set_total "
                    "command (or initial_%s_kwh) says what the meter shows",
                    ctx.name,
                    direction,
                    direction,
                )
        return totals

    def _meter(self, source: gpio.PulseSource, totals: dict[Direction, Total]) -> PulseMeter:
        config = self.config
        active_rising = config.edge == "rising"
        return PulseMeter(
            pulses_per_kwh=config.pulses_per_kwh,
            started_ns=source.now_ns(),
            totals=totals,
            active_rising=active_rising,
            both_edges=config.min_pulse_s > 0,
            min_pulse_ns=round(config.min_pulse_s * NS_PER_S),
            counts=config.counts,
            export_when_high=(config.export_when == "high")
            if config.direction_line is not None
            else None,
            direction_high=source.levels.get("direction", True),
            pulse_active_at_start=source.levels["pulse"] == active_rising,
            timeout_ns=round(config.power_timeout_s * NS_PER_S),
            max_power_w=config.max_power_w,
        )

    # running -----------------------------------------------------------------------------------

    def _publish(
        self, ctx: ModuleContext, meter: PulseMeter, now_ns: int
    ) -> tuple[Decimal | None, ...]:
        readings: list[Reading] = []
        for direction in self.config.directions:
            energy_code, power_code = OBIS[direction]
            kwh = meter.totals[direction].kwh(meter.pulses_per_kwh)
            if kwh is not None:  # never 0 for unknown: unknown is "unavailable"
                readings.append(Reading(energy_code, kwh, "kWh"))
            watts = meter.power_w(direction, now_ns)
            if watts is not None:
                readings.append(Reading(power_code, round(watts, 1), "W"))
        if readings:
            ctx.submit(Sample(self.config.meter, ctx.name, utc_now(), tuple(readings)))
        return self._totals_of(meter)

    def _totals_of(self, meter: PulseMeter) -> tuple[Decimal | None, ...]:
        return tuple(meter.totals[d].kwh(meter.pulses_per_kwh) for d in self.config.directions)

    def _save(self, ctx: ModuleContext, meter: PulseMeter, *, at_once: bool = False) -> None:
        # The count rides in the gateway's next checkpoint, with the meter's registers: a commit
        # of its own every save_interval_s would write the SD card's pages again and again
        # while pulses come (README "Durability"). A set_total is rare: written at once.
        totals = encode_totals(meter.totals, meter.pulses_per_kwh)
        if at_once:
            ctx.save_state(STATE_KEY, totals)
        else:
            ctx.keep_state(STATE_KEY, totals)
        meter.changed = False

    def _command(self, ctx: ModuleContext, meter: PulseMeter, command: Command) -> bool:
        """Apply ``set_total``; True when the totals changed."""
        if command.name != "set_total":
            return False
        args = command.args
        direction = _direction(args.get("register", self.config.directions[0]))
        kwh = parse_kwh(args.get("kwh"))
        refusal = None
        if direction is None or direction not in self.config.directions:
            refusal = (
                f"`register` must be one of {', '.join(self.config.directions)} "
                f"(got {args.get('register')!r})"
            )
        elif kwh is None:
            refusal = f"`kwh` must be a non-negative decimal number (got {args.get('kwh')!r})"
        if refusal is not None or direction is None or kwh is None:
            _LOGGER.warning("s0 %s: set_total refused: %s", ctx.name, refusal)
            ctx.event("command_refused", f"set_total: {refusal}", command=command.id)
            return False
        before = meter.totals[direction].kwh(meter.pulses_per_kwh)
        meter.set_total(direction, kwh)
        self._save(ctx, meter, at_once=True)
        _LOGGER.info("s0 %s: %s total set to %s kWh (was %s)", ctx.name, direction, kwh, before)
        ctx.event(
            "total_set",
            f"{OBIS[direction][0]} set to {kwh} kWh (was {before}) by {command.source}",
            obis=OBIS[direction][0],
            previous=None if before is None else str(before),
            value=str(kwh),
            command=command.id,
        )
        return True

    def _describe(self, meter: PulseMeter) -> str:
        parts = []
        for direction in self.config.directions:
            kwh = meter.totals[direction].kwh(meter.pulses_per_kwh)
            parts.append(f"{direction} {'unknown' if kwh is None else f'{kwh} kWh'}")
        return ", ".join(parts)


def _report(ctx: ModuleContext, description: str, notes: list[Note]) -> None:
    for note in notes:
        _LOGGER.warning("s0 %s: %s", ctx.name, note.detail)
        ctx.event(note.kind, f"{description}: {note.detail}", **note.data)


def _kwh(register: Register | None) -> Decimal | None:
    if register is None:
        return None
    return parse_kwh(register.value)


def _direction(value: object) -> Direction | None:
    for direction, (energy_code, _) in OBIS.items():
        if value in (direction, energy_code):
            return direction
    return None
