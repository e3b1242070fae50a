"""One modelled meter, the single writer of its state: registers, tariffs, peak power, load
profile, analysis logger, debiting periods, supply monitors and display.

Pure: every call takes the time from its sample or argument, so tests drive months in seconds.
Energy is Decimal kWh end to end: tariff splits and profile intervals add up exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from math import copysign
from typing import Any, ClassVar, cast
from zoneinfo import ZoneInfo

import msgspec

from gateway import obis
from gateway.engine import commands
from gateway.engine.book import (
    A_MINUS,
    A_PLUS,
    ACTIVE_TARIFF,
    BREAKER_FEEDBACK,
    HOUR_COUNTER,
    QUADRANT,
    TARIFF_SPLIT,
)
from gateway.engine.breaker import Breaker
from gateway.engine.clock import ENERGY_STEP
from gateway.engine.display import Display
from gateway.engine.intervals import Intervals
from gateway.engine.monitor import VOLTAGE_CODES, SupplyMonitor
from gateway.engine.prepayment import Prepayment
from gateway.engine.protection import SMART_CODES, Protection
from gateway.engine.records import ProfileFlag, Register
from gateway.engine.settings import EngineSettings
from gateway.engine.state import EngineState
from gateway.engine.tariff import TariffSchedule
from gateway.engine.update import Update
from gateway.errors import CommandError
from gateway.model import Event, Reading, Sample, Value

__all__ = ["MeterEngine", "Register", "Update"]


class MeterEngine:
    """The register set and logs of one meter; lifetime totals never go backwards."""

    def __init__(
        self,
        meter_id: str,
        restored: Iterable[Register] = (),
        *,
        settings: EngineSettings | None = None,
        zone: ZoneInfo | None = None,
        state: bytes | None = None,
    ) -> None:
        self.meter_id = meter_id
        self.settings = settings or EngineSettings()
        self.zone = zone or ZoneInfo("UTC")
        self._registers: dict[str, Register] = {reg.obis: reg for reg in restored}
        # Each register's fields beside it, where compiled code reads them directly (a
        # msgspec Struct's are looked up by name, ~160 instructions a read, and a sample
        # read ~140 of them); ``put`` and ``ingest`` keep the two in step, and nothing else
        # writes ``_registers``.
        self._held: dict[str, _Held] = {
            code: _Held(register) for code, register in self._registers.items()
        }
        # Lifetime registers by code, in the order they appeared: the cursor (state.last) is
        # taken from them after every sample without walking every register.
        self._lifetime: dict[str, None] = dict.fromkeys(
            code for code in self._registers if obis.is_cumulative(code)
        )
        # Their values held as Decimal, kept up to date by ``put``: the cursor is a copy of
        # it, not a walk over the lifetime registers after every sample.
        self._lifetime_values: dict[str, Decimal] = {
            code: value
            for code in self._lifetime
            if isinstance(value := self._registers[code].value, Decimal)
        }
        # What each OBIS spelling and unit an adapter sends turns into (_Spelling), worked
        # out once per spelling and unit, not once per reading; by spelling, then unit: two
        # lookups of strings cost less than making and hashing a (spelling, unit) tuple.
        self._spellings: dict[str, dict[str | None, _Spelling]] = {}
        self._spelling_count = 0
        # The last sample's spellings in order, and its dicts' keys: a meter sends the same
        # readings in the same order sample after sample, so a reading is checked against
        # its place (two compares, not two lookups) and the dicts are copies of these, their
        # size known (no resizing as they fill). See ``_canonical_values``.
        self._layout: list[_Spelling] = []
        self._values_keys: dict[str, Any] = {}
        self._numbers_keys: dict[str, Any] = {}
        self._lifetime_codes: dict[str, None] = {}
        self._layout_alarms = False  # any of its codes an alarm flag
        self.state = EngineState.decode(state)
        self.tariffs = TariffSchedule(self.settings.tariff, self.zone)
        self.monitor = SupplyMonitor(meter_id, self.settings.limits)
        self.breaker = Breaker(meter_id, self.settings.breaker, self.state.breaker)
        self.prepayment = Prepayment(
            meter_id,
            self.settings.prepayment,
            self.state.prepayment,
            self.zone,
            self.tariffs.is_holiday,
        )
        self.intervals = Intervals(self)
        self.protection = Protection(self)
        # The codes whose readings the engine compares as floats (``numbers``): the analysis
        # logger's, the monitor's, smart disconnect's and the quadrant's. Other readings are
        # not made floats (a Decimal's float goes through its text).
        self._numbers_read = frozenset(
            (*self.intervals.analysis_codes, *VOLTAGE_CODES, *SMART_CODES, *_QUADRANT_CODES)
        )
        lists = self.state.display_lists
        self.display = Display(
            self.settings.display,
            auto=tuple(lists.get("auto", ())),
            manual=tuple(lists.get("manual", ())),
            battery=tuple(lists.get("battery", ())),
            mode=self.state.display_mode,
            index=self.state.display_index,
            last_push=self.state.display_last_push,
        )

    @property
    def registers(self) -> Mapping[str, Register]:
        """Every register the meter has, by normalized OBIS code (or stable name)."""
        return self._registers

    def state_blob(self) -> bytes:
        """The cursor to persist alongside the registers."""
        self.intervals.settle()
        display = self.display
        self.state.display_mode = display.mode
        self.state.display_index = display.index
        self.state.display_last_push = display.last_push
        self.state.display_lists = {
            name: list(codes)
            for name, codes in (
                ("auto", display.auto),
                ("manual", display.manual),
                ("battery", display.battery),
            )
            if codes != getattr(self.settings.display, name)
        }
        return self.state.encode()

    def active_tariff(self, at: datetime) -> int:
        """The tariff in force at an instant, from the configured source."""
        if self.settings.tariff.source == "schedule":
            return self.tariffs.active(at)
        return self.state.external_tariff or self.settings.tariff.default

    # samples -----------------------------------------------------------------------------------

    def ingest(self, sample: Sample) -> Update:  # noqa: PLR0912, PLR0915 - one sample's pass, step by step
        """Apply one consistent batch of readings."""
        update = Update(self.meter_id)
        at = sample.at
        state = self.state
        values, numbers, lifetime = self._canonical_values(sample)
        if values.keys() <= {BREAKER_FEEDBACK}:
            # An actuator's report says nothing about the meter: its time must not move the
            # meter's clock, intervals or counters.
            if BREAKER_FEEDBACK in values:
                position = values[BREAKER_FEEDBACK][0]
                update.events.extend(self.breaker.feedback(str(position), at))
                stamp = max(at, state.last_at or at)
                self.put(update, BREAKER_FEEDBACK, position, None, stamp)
                self.protection.publish(stamp, update)
            return update
        tariff_before = self.active_tariff(state.last_at or at)
        if ACTIVE_TARIFF in values and self.settings.tariff.source == "meter":
            reported = _as_int(values[ACTIVE_TARIFF][0])
            if reported is not None and 1 <= reported <= 4:  # noqa: PLR2004 - tariffs 1 to 4
                state.external_tariff = reported
        cumulative = self._accept_cumulative(sample, values, lifetime, update)
        # Only energy readings move the meter's cursor: interval boundaries are interpolated
        # between energy samples, so a power-only or tariff-only sample must not stand in.
        advances = bool(cumulative)
        clock_back = advances and state.last_at is not None and at < state.last_at
        if clock_back:
            assert state.last_at is not None
            update.events.append(
                self.event(
                    at,
                    "clock_adjusted",
                    f"meter time went back from {state.last_at.isoformat()} to {at.isoformat()}",
                    previous=state.last_at.isoformat(),
                )
            )
        prepaid = self.settings.prepayment.enabled
        tariff_registers_before = (
            [self.decimal(code) for code in _IMPORT_TARIFFS] if prepaid else []
        )
        registers, changed, held_by = self._registers, update.registers, self._held
        alarms = self._layout_alarms  # the layout is this sample's (``_canonical_values``)
        for code, (value, unit) in values.items():
            if code in lifetime:
                continue
            held = held_by.get(code)
            if alarms and code.startswith("alarm"):
                update.events.extend(
                    self._alarm(at, code, value, None if held is None else held.register)
                )
            # ``put``, inlined for a register the meter has: every reading of every sample.
            if held is None:
                self.put(update, code, value, unit, at)
            elif held.value != value or held.unit != unit:
                register = Register(code, value, unit, at, at)
                changed[code] = registers[code] = held.register = register
                held.value, held.unit, held.at, held.since = value, unit, at, at
            elif at > held.at:
                register = Register(code, value, unit, at, held.since)
                changed[code] = registers[code] = held.register = register
                held.value, held.at = value, at
        self._split_tariffs(at, cumulative, values, update, tariff_before)
        for code, (value, unit) in cumulative.items():
            self.put(update, code, value, unit, at)
        if advances and clock_back:
            state.next_debiting = None
            self.intervals.start(at, ProfileFlag.CLOCK_ADJUSTED | ProfileFlag.PARTIAL)
        elif advances and state.last_at is None:
            self.intervals.start(at)
        elif advances and state.last_at is not None and at > state.last_at:
            self.intervals.cross(at, update)
            gap = (at - state.last_at).total_seconds()
            # A meter that reports its own hour counter is believed; otherwise count ourselves.
            if gap <= self.settings.limits.max_sample_gap_s and HOUR_COUNTER not in values:
                state.operating_s += gap
                hours = (Decimal(state.operating_s) / 3600).quantize(_HUNDREDTH, ROUND_FLOOR)
                self.put(update, HOUR_COUNTER, hours, "h", at)
        self.intervals.accumulate(numbers)
        # The monitor reads the phase voltages only.
        voltages = {code: numbers[code] for code in VOLTAGE_CODES if code in numbers}
        monitor_events = self.monitor.check(at, voltages) if voltages else []
        update.events.extend(monitor_events)
        if prepaid:
            spent = {
                t: after - before
                for t, code, before in zip(
                    range(1, 5), _IMPORT_TARIFFS, tariff_registers_before, strict=True
                )
                if before is not None
                and (after := self.decimal(code)) is not None
                and after > before
            }
            update.events.extend(self.prepayment.consume(spent, at))
        self.protection.observe(at, numbers, monitor_events, update)
        if BREAKER_FEEDBACK in values:
            update.events.extend(self.breaker.feedback(str(values[BREAKER_FEEDBACK][0]), at))
        self._set_quadrant(at, numbers, update)
        self.put(update, ACTIVE_TARIFF, self.active_tariff(at), None, at)
        self.protection.publish(at, update)
        if not advances:
            return update
        state.last_at = at
        state.last = self.lifetime_values()
        return update

    def lifetime_values(self) -> dict[str, Decimal]:
        """The lifetime registers' values now (those held as Decimal), by code."""
        return self._lifetime_values.copy()

    def clock_stepped(self, expected: datetime, actual: datetime) -> Update:
        """The gateway's clock was set (NTP stepped it, someone set it): log a clock_adjusted
        event and flag the profile interval in progress, as the 382L does. Registers are the
        meter's and do not move; a sample that now looks older than the last one is handled
        by ``ingest`` (a new, flagged interval), never as a decrease."""
        update = Update(self.meter_id)
        update.events.append(
            self.event(
                actual,
                "clock_adjusted",
                f"system clock set by {(actual - expected).total_seconds():+.0f} s"
                f" (it read {expected.isoformat(timespec='seconds')})",
                previous=expected.isoformat(),
            )
        )
        self.state.profile_flags |= int(ProfileFlag.CLOCK_ADJUSTED)
        return update

    def tick(self, now: datetime) -> Update:
        """Time-driven changes without a sample (a debiting stop when the meter is silent)."""
        update = Update(self.meter_id)
        state = self.state
        if (
            state.next_debiting is not None
            and state.last_at is not None
            and now >= state.next_debiting > state.last_at
            and (now - state.last_at).total_seconds() <= self.settings.limits.max_sample_gap_s
        ):
            # The meter was talking until just before the stop: its registers are current.
            self.intervals.debiting_stop(
                state.next_debiting, dict(state.last), update, estimated=False
            )
        update.events.extend(self.breaker.tick(now))
        self.protection.enforce_prepayment(now, update)
        self.protection.publish(now, update)
        return update

    # commands ----------------------------------------------------------------------------------

    def command(
        self, name: str, args: Mapping[str, Any] | msgspec.Struct, now: datetime
    ) -> tuple[Update, dict[str, Any]]:
        """Apply a command of the table in ``gateway.engine.commands`` (arguments as a mapping
        or already typed); raise CommandError (changing nothing) when it is refused."""
        spec = commands.COMMANDS.get(name)
        if spec is None or spec.engine is None:
            raise CommandError("unknown_command", f"no engine command {name!r}")
        update, result = spec.engine(self, commands.parse_args(spec, args), now)
        return update, commands.as_mapping(result)

    COMMANDS: ClassVar[tuple[str, ...]] = tuple(
        sorted(name for name, spec in commands.COMMANDS.items() if spec.engine)
    )

    def display_state(self, now: datetime, *, powered: bool = True) -> dict[str, Any]:
        """What the LCD shows now."""
        return self.display.state(
            now, self._registers, tariff=self.active_tariff(now), powered=powered
        )

    # internals: registers ----------------------------------------------------------------------

    def _canonical_values(
        self, sample: Sample
    ) -> tuple[dict[str, tuple[Value, str | None]], dict[str, float], dict[str, None]]:
        """The sample's readings by register code in canonical units, the numeric ones the
        engine compares as floats (``_numbers_read``: what the analysis logger, the monitor,
        the breaker and the quadrant read), and the codes that are lifetime registers (in
        the readings' order)."""
        readings, layout = sample.readings, self._layout
        if len(readings) == len(layout):
            values: dict[str, Any] = self._values_keys.copy()
            numbers: dict[str, Any] = self._numbers_keys.copy()
            same = True
            for index in range(len(readings)):
                reading, spelling = readings[index], layout[index]
                unit = reading.unit
                if reading.obis != spelling.raw or (
                    unit is not spelling.sent_unit and unit != spelling.sent_unit
                ):
                    same = False
                    break
                self._file(values, numbers, spelling, reading.value, unit)
            if same:
                return values, numbers, self._lifetime_codes
        return self._canonical_values_afresh(readings)

    def _canonical_values_afresh(
        self, readings: tuple[Reading, ...]
    ) -> tuple[dict[str, tuple[Value, str | None]], dict[str, float], dict[str, None]]:
        """``_canonical_values`` for a sample that differs from the last one in its readings'
        spellings, units or order; it becomes the layout the next samples are checked by."""
        values: dict[str, Any] = {}
        numbers: dict[str, Any] = {}
        lifetime: dict[str, None] = {}
        layout: list[_Spelling] = []
        spellings = self._spellings
        for reading in readings:
            raw, unit = reading.obis, reading.unit
            spelling = spellings.get(raw, {}).get(unit)
            if spelling is None:  # a spelling not seen before: once per spelling and unit
                spelling = self._learn_spelling(raw, unit)
            layout.append(spelling)
            if spelling.cumulative:
                lifetime[spelling.code] = None
            self._file(values, numbers, spelling, reading.value, unit)
        self._layout = layout
        self._values_keys = dict.fromkeys(values)
        self._numbers_keys = dict.fromkeys(numbers)
        self._lifetime_codes = lifetime
        self._layout_alarms = any(code.startswith("alarm") for code in values)
        return values, numbers, lifetime

    def _file(  # noqa: PLR0912 - a branch per kind of value, inline for speed
        self,
        values: dict[str, Any],
        numbers: dict[str, Any],
        spelling: _Spelling,
        value: Value,
        unit: str | None,
    ) -> None:
        """One reading into the sample's values (and numbers, when the engine compares it).

        ``numbers`` may hold a key with None from the layout: a reading that is no number
        this time removes it, so that numbers holds exactly this sample's numbers."""
        code = spelling.code
        kind = type(value)  # not narrowing ``value``: compiled, a narrowed float is unboxed
        exact: Decimal | None
        if kind is float:
            if value == spelling.last_float and value:  # not zero: 0.0 and -0.0 are equal
                exact = spelling.last_exact
            else:
                exact = _EXACT.get(value)
                if exact is None:
                    exact = _exact(cast(float, value))
                spelling.last_float, spelling.last_exact = value, exact
            if not spelling.scale:
                # float(Decimal(repr(x))) is x: the float sent is the float kept.
                values[code] = (exact, spelling.unit)
                if spelling.numeric:
                    numbers[code] = value
                return
        elif kind is Decimal:
            exact = cast(Decimal, value)
        elif kind is int:
            exact = Decimal(cast(int, value))  # the same as Decimal(str(value)), without text
        elif isinstance(value, str):
            exact = None
        else:
            try:  # _decimal, inlined
                exact = Decimal(str(value))
            except InvalidOperation:
                exact = None
        if exact is None:
            values[code] = (value, unit)
            if spelling.numeric and code in numbers and numbers[code] is None:
                del numbers[code]
            return
        if spelling.scale:
            exact = exact.scaleb(spelling.scale)
        values[code] = (exact, spelling.unit)
        if spelling.numeric:
            numbers[code] = float(exact)

    def _learn_spelling(self, raw: str, unit: str | None) -> _Spelling:
        spellings = self._spellings
        if self._spelling_count >= _MAX_SPELLINGS:  # a meter sending ever new codes
            spellings.clear()
            self._spelling_count = 0
        spelling = spellings.setdefault(raw, {})[unit] = _spelling(raw, unit, self._numbers_read)
        self._spelling_count += 1
        return spelling

    def _accept_cumulative(
        self,
        sample: Sample,
        values: dict[str, tuple[Value, str | None]],
        lifetime: dict[str, None],
        update: Update,
    ) -> dict[str, tuple[Value, str | None]]:
        """Lifetime registers that pass the guards: no decrease, no implausible jump."""
        state = self.state
        held_by, rejecting = self._held, state.rejecting
        accepted: dict[str, tuple[Value, str | None]] = {}
        for code in lifetime:
            reading = values[code]
            value, unit = reading
            if isinstance(value, str):
                continue
            held = held_by.get(code)
            previous = None if held is None else held.register
            refusal = None
            if held is not None and not state.rebase and not isinstance(held.value, str):
                if value < held.value:
                    refusal = ("register_decrease", f"{code} went from {held.value} to {value}")
                elif value != held.value and self._implausible(
                    code, held, value, sample.at
                ):  # no change is never a jump: the limit is at least two steps
                    refusal = (
                        "implausible_jump",
                        f"{code} jumped from {held.value} to {value} {unit or ''}".rstrip()
                        + f" since {held.at.isoformat()}",
                    )
            if refusal is None:
                if rejecting:
                    rejecting.pop(code, None)
                accepted[code] = reading
                continue
            kind, detail = refusal
            if rejecting.get(code) != kind:  # once per episode, not once per telegram
                rejecting[code] = kind
                update.events.append(
                    self.event(
                        sample.at,
                        kind,
                        f"{detail} (from {sample.source}); kept {previous.value}"
                        if previous
                        else detail,
                        obis=code,
                        previous=str(previous.value) if previous else None,
                        got=str(value),
                    )
                )
        if state.rebase:
            state.rebase = False
        return accepted

    def _implausible(self, code: str, previous: _Held, value: Value, at: datetime) -> bool:
        if code not in (A_PLUS, A_MINUS) or isinstance(previous.value, str) or at <= previous.at:
            return False  # with the clock set back there is no time span to judge a rate by
        hours = max((at - previous.at).total_seconds(), 1.0) / 3600
        most_kwh = Decimal(self.settings.limits.max_power_w / 1000 * hours) + 2 * ENERGY_STEP
        return Decimal(value) - Decimal(previous.value) > most_kwh

    def decimal(self, code: str) -> Decimal | None:
        """A numeric register as Decimal, or None."""
        held = self._held.get(code)
        if held is None:
            return None
        value = held.value
        if type(value) is Decimal:
            return value  # immutable: no copy needed
        if isinstance(value, str):
            return None
        return Decimal(value)

    def put(self, update: Update, code: str, value: Value, unit: str | None, at: datetime) -> None:
        held = self._held.get(code)
        if held is None:
            if obis.is_cumulative(code):
                self._lifetime[code] = None
            register = Register(code, value, unit, at, at)
            self._held[code] = _Held(register)
        elif held.value == value and held.unit == unit:
            if at <= held.at:
                return
            # The same value measured again: it is current (its age counts from now), and it
            # has held the value since it last changed.
            register = Register(code, value, unit, at, held.since)
            held.register, held.value, held.at = register, value, at
        else:
            register = Register(code, value, unit, at, at)
            held.register = register
            held.value, held.unit, held.at, held.since = value, unit, at, at
        self._registers[code] = register
        update.registers[code] = register
        if code in self._lifetime:
            if isinstance(value, Decimal):
                self._lifetime_values[code] = value
            else:
                self._lifetime_values.pop(code, None)

    def _split_tariffs(
        self,
        at: datetime,
        cumulative: dict[str, tuple[Value, str | None]],
        values: dict[str, tuple[Value, str | None]],
        update: Update,
        tariff_before: int,
    ) -> None:
        """Add the totals' increase to the active tariff's registers (unless the meter sends
        its own), split at tariff switches inside the interval in proportion to time."""
        for total, prefix in TARIFF_SPLIT.items():
            if total not in cumulative:
                continue
            # Four lookups, not a keys view and a set operation: this runs every sample.
            sends_tariffs = False
            for code in _TARIFF_CODES[prefix]:
                if code in values:
                    sends_tariffs = True
                    break
            if sends_tariffs:
                continue
            new_total, unit = cumulative[total]
            previous = self._held.get(total)
            if previous is None or isinstance(previous.value, str):
                for tariff in range(1, 5):
                    if f"{prefix}{tariff}" not in self._held:
                        self.put(update, f"{prefix}{tariff}", Decimal("0.000"), unit, at)
                continue
            # Lifetime values are Decimal already (``_canonical_values``): no new one each.
            before = previous.value
            delta = (new_total if type(new_total) is Decimal else Decimal(new_total)) - (
                before if type(before) is Decimal else Decimal(before)
            )
            if delta <= 0:
                continue
            for tariff, share in self._tariff_shares(delta, at, tariff_before).items():
                code = f"{prefix}{tariff}"
                current = self._held.get(code)
                base = (
                    Decimal(current.value)
                    if current and not isinstance(current.value, str)
                    else Decimal(0)
                )
                self.put(update, code, base + share, unit, at)

    def _tariff_shares(
        self, delta: Decimal, at: datetime, tariff_before: int
    ) -> dict[int, Decimal]:
        start = self.state.last_at
        if self.settings.tariff.source != "schedule":
            return {tariff_before: delta}  # told by the meter or a command: no switch times
        if start is None or start >= at:
            return {self.active_tariff(at): delta}
        segments: list[tuple[int, float]] = []
        cursor = start
        while cursor < at:
            change = self.tariffs.next_change(cursor)
            end = min(change, at) if change is not None else at
            segments.append((self.tariffs.active(cursor), (end - cursor).total_seconds()))
            cursor = end
        total_s = sum(seconds for _, seconds in segments)
        shares: dict[int, Decimal] = {}
        remaining = delta
        for index, (tariff, seconds) in enumerate(segments):
            if index == len(segments) - 1:
                share = remaining
            else:
                share = (delta * Decimal(seconds) / Decimal(total_s)).quantize(
                    ENERGY_STEP, rounding=ROUND_FLOOR
                )
            remaining -= share
            shares[tariff] = shares.get(tariff, Decimal(0)) + share
        return shares

    def _set_quadrant(self, at: datetime, numbers: dict[str, float], update: Update) -> None:
        registers = self._held
        power = registers.get("1-0:1.7.0")
        if power is None or power.at != at:
            return
        p = _measured(registers, numbers, "1-0:1.7.0", at) - _measured(
            registers, numbers, "1-0:2.7.0", at
        )
        q = _measured(registers, numbers, "1-0:3.7.0", at) - _measured(
            registers, numbers, "1-0:4.7.0", at
        )
        quadrant = (1 if q >= 0 else 4) if p >= 0 else (2 if q >= 0 else 3)
        self.put(update, QUADRANT, quadrant, None, at)

    def _alarm(
        self, at: datetime, code: str, value: Value, previous: Register | None
    ) -> list[Event]:
        raised = _truthy(value)
        if (previous is None and not raised) or (
            previous is not None and _truthy(previous.value) == raised
        ):
            return []
        kind = "meter_alarm" if raised else "meter_alarm_cleared"
        return [self.event(at, kind, f"the meter reports {code} = {value}", alarm=code)]

    def event(self, at: datetime, kind: str, detail: str, **data: Any) -> Event:
        return Event(self.meter_id, at, kind, detail, data)


class _Held:
    """A register and its fields, for compiled code to read directly."""

    __slots__ = ("at", "register", "since", "unit", "value")

    def __init__(self, register: Register) -> None:
        self.register = register
        self.value: Value = register.value
        self.unit: str | None = register.unit
        self.at: datetime = register.at
        self.since: datetime = register.changed_at or register.at  # Register.since


class _Spelling:
    """A reading's OBIS spelling and unit as the engine files it."""

    __slots__ = (
        "code",
        "cumulative",
        "last_exact",
        "last_float",
        "numeric",
        "raw",
        "scale",
        "sent_unit",
        "unit",
    )

    def __init__(  # noqa: PLR0913 - the fields
        self,
        raw: str,
        sent_unit: str | None,
        code: str,
        unit: str | None,
        scale: int,
        *,
        cumulative: bool,
        numeric: bool,
    ) -> None:
        self.raw = raw
        self.sent_unit = sent_unit
        self.code = code  # the register's code
        self.unit = unit  # the canonical unit
        self.scale = scale  # the power of ten from the unit sent to it
        self.cumulative = cumulative  # a lifetime register
        self.numeric = numeric  # compared as a float by the engine (``_numbers_read``)
        # The last float read under this spelling and its Decimal: a value that did not
        # change since the last sample needs no lookup.
        self.last_float: object = None
        self.last_exact: Decimal = _ZERO


_QUADRANT_CODES = ("1-0:1.7.0", "1-0:2.7.0", "1-0:3.7.0", "1-0:4.7.0")
_MAX_SPELLINGS = 4096
_TARIFF_CODES = {
    prefix: tuple(f"{prefix}{t}" for t in range(1, 5)) for prefix in TARIFF_SPLIT.values()
}
_IMPORT_TARIFFS = _TARIFF_CODES[TARIFF_SPLIT[A_PLUS]]
_HUNDREDTH = Decimal("0.01")
# Floats met before, as exact Decimals of their shortest text (what the payloads print):
# meters send values at their resolution, so the same few hundred floats come back sample
# after sample, and making a Decimal through str() was a fifth of a sample's cost. Shared by
# every meter; emptied when full. Zeros are not kept (0.0 and -0.0 are one key but two
# texts), nor NaN (never equal to itself, so never found).
_EXACT: dict[object, Decimal] = {}  # float -> Decimal
_MAX_EXACT = 4096
_ZERO, _MINUS_ZERO = Decimal("0.0"), Decimal("-0.0")


def _spelling(raw: str, unit: str | None, numbers_read: frozenset[str]) -> _Spelling:
    """Express values in the unit the OBIS table gives their quantity (kWh, W, ...); a unit
    unrelated to it, or a code the table does not know, keeps the unit sent."""
    code = obis.normalize(raw)
    quantity = obis.describe(code)
    scale = None if quantity is None else obis.unit_scale(unit, quantity.unit)
    cumulative, numeric = obis.is_cumulative(code), code in numbers_read
    if quantity is None or scale is None:
        return _Spelling(raw, unit, code, unit, 0, cumulative=cumulative, numeric=numeric)
    return _Spelling(raw, unit, code, quantity.unit, scale, cumulative=cumulative, numeric=numeric)


def _exact(value: float) -> Decimal:
    """A float as the Decimal of its shortest text (``Decimal(str(value))``), remembered."""
    if not value:
        return _ZERO if copysign(1.0, value) > 0 else _MINUS_ZERO
    exact = Decimal(repr(value))
    if exact.is_finite():
        if len(_EXACT) >= _MAX_EXACT:
            _EXACT.clear()
        _EXACT[value] = exact
    return exact


def _measured(
    registers: dict[str, _Held], numbers: dict[str, float], code: str, at: datetime
) -> float:
    """A register measured at ``at`` as a float; 0.0 when it was not.

    A module function, not a closure: compiled, a closure is called through Python's
    protocol and made anew on every call of its maker."""
    register = registers.get(code)
    if register is None or register.at != at or isinstance(register.value, str):
        return 0.0
    # Measured in this sample: its float is at hand (the same number as the register's).
    found = numbers.get(code)
    return float(register.value) if found is None else found


def _as_int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload,no-any-return]
    except (TypeError, ValueError):
        return None


def _truthy(value: Value) -> bool:
    """An alarm flag as meters send it: numbers, or words like "on"/"off"."""
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "off", "no", "ok")
    return bool(value)
