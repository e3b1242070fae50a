"""One modelled meter, the single writer of its state: registers, tariffs, peak power, load
profile, analysis logger, debiting periods, supply monitors and display.

Pure: every call takes the time from its sample or argument, so tests drive months in seconds.
Energy is Decimal kWh end to end: tariff splits and profile intervals add up exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from gateway import obis
from gateway.engine.breaker import Action, Breaker
from gateway.engine.clock import (
    ENERGY_STEP,
    floor_to_period,
    interpolate,
    next_debiting_stop,
    period_ends,
)
from gateway.engine.display import Display
from gateway.engine.monitor import SupplyMonitor
from gateway.engine.prepayment import Prepayment
from gateway.engine.records import AnalysisRow, BillingRecord, ProfileFlag, ProfileRow
from gateway.engine.settings import EngineSettings
from gateway.engine.state import EngineState
from gateway.engine.tariff import TariffSchedule
from gateway.errors import CommandError
from gateway.model import Event, Sample, Value

__all__ = ["MeterEngine", "Register", "Update"]

A_PLUS, A_MINUS, R_PLUS, R_MINUS = "1-0:1.8.0", "1-0:2.8.0", "1-0:3.8.0", "1-0:4.8.0"
TARIFF_SPLIT = {A_PLUS: "1-0:1.8.", R_PLUS: "1-0:3.8."}  # the 382L keeps A+ and R+ per tariff
ACTIVE_TARIFF = "0-0:96.14.0"
PEAK, PEAK_ACCUMULATED = "1-0:1.6.0", "1-0:1.2.0"
HOUR_COUNTER = "0-0:96.8.0"
DEBITING_COUNT = "0-0:0.1.0"
THRESHOLD_COUNT = "power_threshold_counter"
PULSE_INPUT = "pulse_input"
QUADRANT = "quadrant"
BREAKER_STATE = "breaker_state"
BREAKER_ACTUATOR = "breaker_actuator"
BREAKER_FEEDBACK = "breaker_feedback"
CREDIT = "credit"
PROFILE_CHANNELS = {
    "A+": (A_PLUS,),
    "A+A-": (A_PLUS, A_MINUS),
    "A+A-R+R-": (A_PLUS, A_MINUS, R_PLUS, R_MINUS),
}
_KW_PER_KWH_PER_HOUR = Decimal(1000)  # kWh over hours -> W


@dataclass(frozen=True, slots=True)
class Register:
    """A value the meter holds, with the time the meter measured it."""

    obis: str
    value: Value
    unit: str | None
    at: datetime


@dataclass(slots=True)
class Update:
    """What one call into the engine changed."""

    meter: str
    registers: dict[str, Register] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    profile: list[ProfileRow] = field(default_factory=list)
    analysis: list[AnalysisRow] = field(default_factory=list)
    billing: list[BillingRecord] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.registers
            or self.events
            or self.profile
            or self.analysis
            or self.billing
            or self.actions
        )


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

    def ingest(self, sample: Sample) -> Update:
        """Apply one consistent batch of readings."""
        update = Update(self.meter_id)
        at = sample.at
        state = self.state
        values = self._canonical_values(sample)
        clock_back = state.last_at is not None and at < state.last_at
        if clock_back:
            assert state.last_at is not None
            update.events.append(
                self._event(
                    at,
                    "clock_adjusted",
                    f"meter time went back from {state.last_at.isoformat()} to {at.isoformat()}",
                    previous=state.last_at.isoformat(),
                )
            )
        tariff_before = self.active_tariff(state.last_at or at)
        if ACTIVE_TARIFF in values and self.settings.tariff.source == "meter":
            reported = _as_int(values[ACTIVE_TARIFF][0])
            if reported is not None and 1 <= reported <= 4:
                state.external_tariff = reported
        cumulative = self._accept_cumulative(sample, values, update)
        tariff_registers_before = {t: self._decimal_register(f"1-0:1.8.{t}") for t in range(1, 5)}
        for code, (value, unit) in values.items():
            if code not in cumulative and not obis.is_cumulative(code):
                self._set(update, code, value, unit, at)
                if code.startswith("alarm"):
                    update.events += self._alarm(at, code, value)
        self._split_tariffs(at, cumulative, values, update, tariff_before)
        for code, (value, unit) in cumulative.items():
            self._set(update, code, value, unit, at)
        if clock_back:
            state.next_debiting = None
            self._start_intervals(at, ProfileFlag.CLOCK_ADJUSTED | ProfileFlag.PARTIAL)
        elif state.last_at is None:
            self._start_intervals(at)
        elif at > state.last_at:
            self._cross_boundaries(at, update)
            gap = (at - state.last_at).total_seconds()
            if gap <= self.settings.limits.max_sample_gap_s:
                state.operating_s += gap
                hours = (Decimal(state.operating_s) / 3600).quantize(Decimal("0.01"), ROUND_FLOOR)
                self._set(update, HOUR_COUNTER, hours, "h", at)
        self._accumulate_analysis(values)
        monitor_events = self.monitor.check(at, {code: v for code, (v, _) in values.items()})
        update.events += monitor_events
        if self.settings.prepayment.enabled:
            spent = {
                t: after - before
                for t in range(1, 5)
                if (before := tariff_registers_before[t]) is not None
                and (after := self._decimal_register(f"1-0:1.8.{t}")) is not None
                and after > before
            }
            update.events += self.prepayment.consume(spent, at)
        self._protect(at, values, monitor_events, update)
        if BREAKER_FEEDBACK in values:
            update.events += self.breaker.feedback(str(values[BREAKER_FEEDBACK][0]), at)
        self._set_quadrant(at, update)
        self._set(update, ACTIVE_TARIFF, self.active_tariff(at), None, at)
        self._publish_breaker(at, update)
        state.last_at = at
        state.last = {
            code: reg.value
            for code, reg in self._registers.items()
            if isinstance(reg.value, Decimal) and obis.is_cumulative(code)
        }
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
            self._debiting_stop(state.next_debiting, dict(state.last), update, estimated=False)
        update.events += self.breaker.tick(now)
        self._prepayment_breaker(now, update)
        self._publish_breaker(now, update)
        return update

    # commands ----------------------------------------------------------------------------------

    def command(
        self, name: str, args: Mapping[str, Any], now: datetime
    ) -> tuple[Update, dict[str, Any]]:
        """Apply a command; raise CommandError (changing nothing) when it is refused."""
        update = Update(self.meter_id)
        tariff = self.active_tariff(now)
        if name == "debiting_stop":
            record = self._debiting_stop(now, dict(self.state.last), update, estimated=False)
            return update, {"number": record.number, "at": record.at.isoformat()}
        if name == "set_tariff":
            if self.settings.tariff.source != "command":
                raise CommandError(
                    "not_allowed", f"the tariff comes from the {self.settings.tariff.source}"
                )
            value = _as_int(args.get("tariff"))
            if value is None or not 1 <= value <= 4:
                raise CommandError("bad_argument", "`tariff` must be an integer 1..4")
            self.state.external_tariff = value
            self._set(update, ACTIVE_TARIFF, value, None, now)
            return update, {"tariff": value}
        if name == "display_push":
            self.display.push(now, tariff)
            return update, self.display_state(now)
        if name == "set_display_list":
            codes = args.get("readings")
            if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
                raise CommandError("bad_argument", "`readings` must be a list of OBIS codes")
            self.display.set_list(str(args.get("list", "")), tuple(codes), tariff)
            return update, {"list": args.get("list"), "readings": codes}
        if name in ("disconnect", "reconnect", "arm"):
            events, actions = self.breaker.remote(name, now)
            return self._breaker_result(now, update, events, actions)
        if name == "button":
            events, actions = self.breaker.button(now)
            return self._breaker_result(now, update, events, actions)
        if name == "top_up":
            events, balance = self.prepayment.top_up(args, now)
            update.events += events
            self._prepayment_breaker(now, update)
            self._publish_breaker(now, update)
            return update, {"balance": str(balance), "unit": self.settings.prepayment.unit}
        if name == "set_limits":
            return update, self._set_limits(args)
        if name == "accept_registers":
            self.state.rebase = True
            update.events.append(
                self._event(now, "registers_rebased", "the next readings are accepted as they come")
            )
            return update, {"accepting": True}
        raise CommandError("unknown_command", f"no engine command {name!r}")

    COMMANDS = (
        "accept_registers",
        "arm",
        "button",
        "debiting_stop",
        "disconnect",
        "display_push",
        "reconnect",
        "set_display_list",
        "set_limits",
        "set_tariff",
        "top_up",
    )

    def display_state(self, now: datetime, *, powered: bool = True) -> dict[str, Any]:
        """What the LCD shows now."""
        return self.display.state(
            now, self._registers, tariff=self.active_tariff(now), powered=powered
        )

    # internals: breaker and prepayment --------------------------------------------------------

    def _protect(
        self,
        at: datetime,
        values: Mapping[str, tuple[Value, str | None]],
        monitor_events: list[Event],
        update: Update,
    ) -> None:
        """Smart disconnect (load, loss of neutral) and prepayment drive the breaker."""
        smart = self.settings.breaker.smart_disconnect
        if not self.settings.breaker.enabled:
            return
        for event in monitor_events:
            if event.kind == "loss_of_neutral" and smart.on_loss_of_neutral:
                self._apply_breaker(update, *self.breaker.trip("neutral", at))
            elif event.kind == "loss_of_neutral_cleared":
                self._apply_breaker(
                    update, *self.breaker.clear("neutral", at, reconnect=smart.reconnect)
                )
        if smart.enabled:
            self._smart_disconnect(at, values, update)
        self._prepayment_breaker(at, update)

    def _smart_disconnect(
        self, at: datetime, values: Mapping[str, tuple[Value, str | None]], update: Update
    ) -> None:
        smart, state = self.settings.breaker.smart_disconnect, self.state.breaker
        overrides = self.state.limit_overrides
        power_limit = overrides.get("power_w", smart.power_w)
        current_limit = overrides.get("current_a", smart.current_a)
        duration = overrides.get("duration_s", smart.duration_s)

        def number(code: str) -> float | None:
            entry = values.get(code)
            return None if entry is None or isinstance(entry[0], str) else float(entry[0])

        power = number("1-0:1.7.0")
        phase_codes = ("1-0:31.7.0", "1-0:51.7.0", "1-0:71.7.0")
        currents = [c for code in phase_codes if (c := number(code)) is not None]
        if power is None and not currents:
            return
        over = (power_limit is not None and power is not None and power > power_limit) or (
            current_limit is not None and bool(currents) and max(currents) > current_limit
        )
        if over:
            state.under_limit_since = None
            state.over_limit_since = state.over_limit_since or at
            if (at - state.over_limit_since).total_seconds() >= duration:
                self._apply_breaker(update, *self.breaker.trip("smart", at))
            return
        state.over_limit_since = None
        if "smart" not in state.causes:
            return
        state.under_limit_since = state.under_limit_since or at
        waited = (at - state.under_limit_since).total_seconds()
        if smart.reconnect == "button" or waited >= smart.reconnect_after_s:
            self._apply_breaker(update, *self.breaker.clear("smart", at, reconnect=smart.reconnect))

    def _prepayment_breaker(self, now: datetime, update: Update) -> None:
        if not self.settings.prepayment.enabled:
            return
        prepaid, state = self.prepayment, self.state.prepayment
        held = "prepayment" in self.state.breaker.causes
        if prepaid.exhausted and not held:
            if prepaid.friendly(now):
                if not state.deferred:
                    state.deferred = True
                    update.events.append(
                        self._event(
                            now,
                            "disconnect_deferred",
                            "no credit left; friendly hours keep the power on until they end",
                        )
                    )
                return
            state.deferred = False
            self._apply_breaker(update, *self.breaker.trip("prepayment", now))
        elif held and not prepaid.exhausted:
            reconnect = self.settings.prepayment.reconnect
            self._apply_breaker(update, *self.breaker.clear("prepayment", now, reconnect=reconnect))

    def _breaker_result(
        self, now: datetime, update: Update, events: list[Event], actions: list[Action]
    ) -> tuple[Update, dict[str, Any]]:
        self._apply_breaker(update, events, actions)
        self._publish_breaker(now, update)
        state = self.state.breaker
        return update, {
            "state": state.state,
            "causes": list(state.causes),
            "actuator": state.actuator,
        }

    def _apply_breaker(self, update: Update, events: list[Event], actions: list[Action]) -> None:
        update.events += events
        update.actions += actions

    def _publish_breaker(self, at: datetime, update: Update) -> None:
        if self.settings.breaker.enabled:
            self._set(update, BREAKER_STATE, self.state.breaker.state, None, at)
            self._set(update, BREAKER_ACTUATOR, self.state.breaker.actuator, None, at)
        if self.settings.prepayment.enabled:
            unit = self.settings.prepayment.unit
            self._set(update, CREDIT, self.state.prepayment.balance, unit, at)

    def _set_limits(self, args: Mapping[str, Any]) -> dict[str, Any]:
        allowed = {"power_w", "current_a", "duration_s"}
        unknown = set(args) - allowed
        if unknown or not args:
            raise CommandError(
                "bad_argument", f"set_limits takes {', '.join(sorted(allowed))}; got {sorted(args)}"
            )
        overrides: dict[str, float] = {}
        for key, raw in args.items():
            if isinstance(raw, bool) or not isinstance(raw, int | float) or raw <= 0:
                raise CommandError("bad_argument", f"`{key}` must be a positive number")
            overrides[key] = float(raw)
        self.state.limit_overrides.update(overrides)
        return dict(self.state.limit_overrides)

    def _decimal_register(self, code: str) -> Decimal | None:
        register = self._registers.get(code)
        if register is None or isinstance(register.value, str):
            return None
        return Decimal(register.value)

    # internals: registers ----------------------------------------------------------------------

    def _canonical_values(self, sample: Sample) -> dict[str, tuple[Value, str | None]]:
        values: dict[str, tuple[Value, str | None]] = {}
        for reading in sample.readings:
            code = obis.normalize(reading.obis)
            values[code] = _canonical(code, reading.value, reading.unit)
        return values

    def _accept_cumulative(
        self, sample: Sample, values: dict[str, tuple[Value, str | None]], update: Update
    ) -> dict[str, tuple[Value, str | None]]:
        """Lifetime registers that pass the guards: no decrease, no implausible jump."""
        state = self.state
        accepted: dict[str, tuple[Value, str | None]] = {}
        for code, (value, unit) in values.items():
            if not obis.is_cumulative(code) or isinstance(value, str):
                continue
            previous = self._registers.get(code)
            refusal = None
            if previous is not None and not state.rebase and not isinstance(previous.value, str):
                if value < previous.value:
                    refusal = ("register_decrease", f"{code} went from {previous.value} to {value}")
                elif self._implausible(code, previous, value, sample.at):
                    refusal = (
                        "implausible_jump",
                        f"{code} jumped from {previous.value} to {value} {unit or ''}".rstrip()
                        + f" since {previous.at.isoformat()}",
                    )
            if refusal is None:
                state.rejecting.pop(code, None)
                accepted[code] = (value, unit)
                continue
            kind, detail = refusal
            if state.rejecting.get(code) != kind:  # once per episode, not once per telegram
                state.rejecting[code] = kind
                update.events.append(
                    self._event(
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
        state.rebase = False
        return accepted

    def _implausible(self, code: str, previous: Register, value: Value, at: datetime) -> bool:
        if code not in (A_PLUS, A_MINUS) or isinstance(previous.value, str) or at <= previous.at:
            return False  # with the clock set back there is no time span to judge a rate by
        hours = max((at - previous.at).total_seconds(), 1.0) / 3600
        most_kwh = Decimal(self.settings.limits.max_power_w / 1000 * hours) + 2 * ENERGY_STEP
        return Decimal(value) - Decimal(previous.value) > most_kwh

    def _set(self, update: Update, code: str, value: Value, unit: str | None, at: datetime) -> None:
        previous = self._registers.get(code)
        if previous is not None and previous.value == value and previous.unit == unit:
            return
        register = Register(code, value, unit, at)
        self._registers[code] = register
        update.registers[code] = register

    def _split_tariffs(
        self,
        at: datetime,
        cumulative: dict[str, tuple[Value, str | None]],
        values: Mapping[str, object],
        update: Update,
        tariff_before: int,
    ) -> None:
        """Add the totals' increase to the active tariff's registers (unless the meter sends
        its own), split at tariff switches inside the interval in proportion to time."""
        for total, prefix in TARIFF_SPLIT.items():
            if total not in cumulative or any(f"{prefix}{t}" in values for t in range(1, 5)):
                continue
            new_total = Decimal(cumulative[total][0])
            unit = cumulative[total][1]
            previous = self._registers.get(total)
            if previous is None or isinstance(previous.value, str):
                for tariff in range(1, 5):
                    if f"{prefix}{tariff}" not in self._registers:
                        self._set(update, f"{prefix}{tariff}", Decimal("0.000"), unit, at)
                continue
            delta = new_total - Decimal(previous.value)
            if delta <= 0:
                continue
            for tariff, share in self._tariff_shares(delta, at, tariff_before).items():
                code = f"{prefix}{tariff}"
                current = self._registers.get(code)
                base = (
                    Decimal(current.value)
                    if current and not isinstance(current.value, str)
                    else Decimal(0)
                )
                self._set(update, code, base + share, unit, at)

    def _tariff_shares(
        self, delta: Decimal, at: datetime, tariff_before: int
    ) -> dict[int, Decimal]:
        start = self.state.last_at
        if start is None or start >= at or self.settings.tariff.source != "schedule":
            return {
                tariff_before
                if self.settings.tariff.source != "schedule"
                else self.active_tariff(at): delta
            }
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

    def _set_quadrant(self, at: datetime, update: Update) -> None:
        def number(code: str) -> float:
            register = self._registers.get(code)
            if register is None or register.at != at or isinstance(register.value, str):
                return 0.0
            return float(register.value)

        if "1-0:1.7.0" not in self._registers or self._registers["1-0:1.7.0"].at != at:
            return
        p = number("1-0:1.7.0") - number("1-0:2.7.0")
        q = number("1-0:3.7.0") - number("1-0:4.7.0")
        quadrant = (1 if q >= 0 else 4) if p >= 0 else (2 if q >= 0 else 3)
        self._set(update, QUADRANT, quadrant, None, at)

    def _alarm(self, at: datetime, code: str, value: Value) -> list[Event]:
        previous = self.state.last.get(code)
        raised = bool(value) and value not in ("0", "false", "off")
        if previous is not None and bool(previous) == raised:
            return []
        kind = "meter_alarm" if raised else "meter_alarm_cleared"
        return [self._event(at, kind, f"the meter reports {code} = {value}", alarm=code)]

    def _event(self, at: datetime, kind: str, detail: str, **data: Any) -> Event:
        return Event(self.meter_id, at, kind, detail, data)

    # internals: intervals ----------------------------------------------------------------------

    def _start_intervals(self, at: datetime, flags: ProfileFlag = ProfileFlag.PARTIAL) -> None:
        state, zone = self.state, self.zone
        state.demand_start = floor_to_period(at, self.settings.demand.period_min, zone)
        # A period is whole only if the meter was read at its very start.
        state.demand_energy = (
            self._channel_values().get(A_PLUS) if at == state.demand_start else None
        )
        state.demand_tariff = self.active_tariff(at)
        state.profile_start = floor_to_period(at, self.settings.profile.interval_min, zone)
        state.profile_values = self._channel_values()
        whole = at == state.profile_start and flags == ProfileFlag.PARTIAL
        state.profile_flags = 0 if whole else int(flags)
        state.analysis_start = floor_to_period(at, self.settings.analysis.interval_min, zone)
        state.analysis_sums, state.analysis_counts = {}, {}
        if self.settings.debiting.period == "monthly" and state.next_debiting is None:
            state.next_debiting = next_debiting_stop(
                at, self.settings.debiting.day, self.settings.debiting.hour, zone
            )

    def _channel_values(self) -> dict[str, Decimal]:
        channels = PROFILE_CHANNELS[self.settings.profile.channels]
        return {
            code: Decimal(self._registers[code].value)
            for code in channels
            if code in self._registers and not isinstance(self._registers[code].value, str)
        }

    def _cross_boundaries(self, at: datetime, update: Update) -> None:
        """Close every demand period, profile and analysis interval and debiting period that
        ended between the previous sample and this one, at values interpolated to the end."""
        state, zone, settings = self.state, self.zone, self.settings
        start = state.last_at
        assert start is not None
        gap = (at - start).total_seconds() > settings.limits.max_sample_gap_s
        before = state.last
        after = {
            code: Decimal(reg.value)
            for code, reg in self._registers.items()
            if isinstance(reg.value, Decimal) and obis.is_cumulative(code)
        }
        boundaries: list[tuple[datetime, int, str]] = []
        for end in period_ends(start, at, settings.profile.interval_min, zone):
            boundaries.append((end, 0, "profile"))
        for end in period_ends(start, at, settings.demand.period_min, zone):
            boundaries.append((end, 1, "demand"))
        if settings.analysis.enabled:
            for end in period_ends(start, at, settings.analysis.interval_min, zone):
                boundaries.append((end, 2, "analysis"))
        while state.next_debiting is not None and state.next_debiting <= at:
            boundaries.append((state.next_debiting, 3, "debiting"))
            state.next_debiting = next_debiting_stop(
                state.next_debiting, settings.debiting.day, settings.debiting.hour, zone
            )
        for boundary, _, kind in sorted(boundaries):

            def value_at(code: str, boundary: datetime = boundary) -> Decimal | None:
                if code not in after:
                    return None
                return interpolate(boundary, start, before.get(code, after[code]), at, after[code])

            if kind == "profile":
                self._close_profile(boundary, value_at, gap, update)
            elif kind == "demand":
                self._close_demand(boundary, value_at(A_PLUS), gap, update)
            elif kind == "analysis":
                self._close_analysis(boundary, update)
            else:
                snapshot = {code: v for code in after if (v := value_at(code)) is not None}
                self._debiting_stop(boundary, snapshot, update, estimated=gap)

    def _close_profile(self, end: datetime, value_at: Any, gap: bool, update: Update) -> None:
        state = self.state
        flags = ProfileFlag(state.profile_flags)
        if gap:
            flags |= ProfileFlag.POWER_OUTAGE | ProfileFlag.ESTIMATED
        values: dict[str, Decimal] = {}
        new_start: dict[str, Decimal] = {}
        for code in PROFILE_CHANNELS[self.settings.profile.channels]:
            at_end = value_at(code)
            if at_end is None:
                continue
            new_start[code] = at_end
            if code in state.profile_values:
                values[code] = at_end - state.profile_values[code]
        if state.profile_start is not None and values:
            update.profile.append(ProfileRow(state.profile_start, end, values, flags))
        state.profile_start = end
        state.profile_values = new_start
        # The interval that starts inside a gap is itself partly estimated.
        state.profile_flags = int(ProfileFlag.POWER_OUTAGE | ProfileFlag.ESTIMATED) if gap else 0

    def _close_demand(
        self, end: datetime, energy: Decimal | None, gap: bool, update: Update
    ) -> None:
        state, demand = self.state, self.settings.demand
        if state.demand_energy is not None and energy is not None and not gap:
            hours = Decimal(demand.period_min) / 60
            watts = ((energy - state.demand_energy) * _KW_PER_KWH_PER_HOUR / hours).quantize(
                Decimal("0.1"), rounding=ROUND_FLOOR
            )
            for code in (PEAK, f"1-0:1.6.{state.demand_tariff}"):
                current = self._registers.get(code)
                if current is None or isinstance(current.value, str) or watts > current.value:
                    self._set(update, code, watts, "W", end)
            if demand.power_threshold_w is not None and watts > Decimal(
                str(demand.power_threshold_w)
            ):
                count = self._registers.get(THRESHOLD_COUNT)
                total = (int(count.value) if count else 0) + 1
                self._set(update, THRESHOLD_COUNT, total, None, end)
                update.events.append(
                    self._event(
                        end,
                        "power_threshold_exceeded",
                        f"{watts} W averaged over {demand.period_min} min, above"
                        f" {demand.power_threshold_w} W",
                        demand_w=str(watts),
                    )
                )
        state.demand_start = end
        state.demand_energy = None if gap else energy
        state.demand_tariff = self.active_tariff(end)

    def _accumulate_analysis(self, values: Mapping[str, tuple[Value, str | None]]) -> None:
        if not self.settings.analysis.enabled:
            return
        state = self.state
        for code in self.settings.analysis.registers:
            entry = values.get(obis.normalize(code))
            if entry is None or isinstance(entry[0], str):
                continue
            state.analysis_sums[code] = state.analysis_sums.get(code, 0.0) + float(entry[0])
            state.analysis_counts[code] = state.analysis_counts.get(code, 0) + 1

    def _close_analysis(self, end: datetime, update: Update) -> None:
        state = self.state
        if state.analysis_start is not None and state.analysis_counts:
            means = {
                code: state.analysis_sums[code] / count
                for code, count in state.analysis_counts.items()
                if count
            }
            update.analysis.append(AnalysisRow(state.analysis_start, end, means))
        state.analysis_start = end
        state.analysis_sums, state.analysis_counts = {}, {}

    def _debiting_stop(
        self, at: datetime, energies: Mapping[str, Decimal], update: Update, *, estimated: bool
    ) -> BillingRecord:
        """Freeze the data sheet's list of values and start a new debiting period."""

        def reg(code: str) -> Value | None:
            register = self._registers.get(code)
            return None if register is None else register.value

        number = int(reg(DEBITING_COUNT) or 0) + 1
        peak = Decimal(reg(PEAK) or 0)
        accumulated = Decimal(reg(PEAK_ACCUMULATED) or 0) + peak
        local = at.astimezone(self.zone)
        values: dict[str, Any] = {}
        for code in (
            A_PLUS,
            A_MINUS,
            R_PLUS,
            R_MINUS,
            *(f"1-0:1.8.{t}" for t in range(1, 5)),
            *(f"1-0:3.8.{t}" for t in range(1, 5)),
        ):
            if code in energies:
                values[code] = energies[code]
            elif (value := reg(code)) is not None:
                values[code] = value
        for code in (PEAK, *(f"1-0:1.6.{t}" for t in range(1, 5))):
            register = self._registers.get(code)
            if register is not None:
                when = register.at.astimezone(self.zone)
                values[code] = {
                    "value": register.value,
                    "date": when.date().isoformat(),
                    "hour": when.strftime("%H:%M"),
                    "at": register.at.isoformat(),
                }
        values.update(
            {
                PEAK_ACCUMULATED: accumulated,
                "date": local.date().isoformat(),
                "hour": local.strftime("%H:%M"),
                HOUR_COUNTER: reg(HOUR_COUNTER) or Decimal(0),
                DEBITING_COUNT: number,
                THRESHOLD_COUNT: reg(THRESHOLD_COUNT) or 0,
            }
        )
        if (pulses := reg(PULSE_INPUT)) is not None:
            values[PULSE_INPUT] = pulses
        record = BillingRecord(number, at, values, estimated)
        update.billing.append(record)
        self._set(update, DEBITING_COUNT, number, None, at)
        self._set(update, PEAK_ACCUMULATED, accumulated, "W", at)
        for code in (PEAK, *(f"1-0:1.6.{t}" for t in range(1, 5))):
            if code in self._registers:
                self._set(update, code, Decimal("0.0"), "W", at)
        update.events.append(
            self._event(
                at,
                "debiting_stop",
                f"debiting period {number} closed",
                number=number,
                estimated=estimated,
            )
        )
        return record


def _canonical(code: str, value: Value, unit: str | None) -> tuple[Value, str | None]:
    """Express a value in the unit the OBIS table gives its quantity (kWh, W, ...)."""
    quantity = obis.describe(code)
    if isinstance(value, str):
        return value, unit
    exact = value if isinstance(value, Decimal) else _decimal(value)
    if exact is None:
        return value, unit
    if quantity is None:
        return exact, unit
    scale = obis.unit_scale(unit, quantity.unit)
    if scale is None:
        return exact, unit
    return (exact.scaleb(scale) if scale else exact), quantity.unit


def _decimal(value: int | float) -> Decimal | None:
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _as_int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload,no-any-return]
    except (TypeError, ValueError):
        return None
