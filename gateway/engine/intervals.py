"""Everything that closes at a boundary of the meter's clock: demand periods (peak power),
load-profile intervals, analysis-logger intervals and debiting periods (billing).

Values at a boundary are interpolated between the samples around it (gateway/engine/clock.py),
so intervals add up exactly to register differences, and a gap is filled and flagged.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from gateway import obis
from gateway.engine.book import (
    A_MINUS,
    A_PLUS,
    DEBITING_COUNT,
    HOUR_COUNTER,
    PEAK,
    PEAK_ACCUMULATED,
    PROFILE_CHANNELS,
    PULSE_INPUT,
    R_MINUS,
    R_PLUS,
    THRESHOLD_COUNT,
    Book,
)
from gateway.engine.clock import floor_to_period, interpolate, next_debiting_stop, period_ends
from gateway.engine.records import AnalysisRow, BillingRecord, ProfileFlag, ProfileRow
from gateway.engine.update import Update
from gateway.model import Value

__all__ = ["Intervals"]

_W_PER_KWH_PER_HOUR = Decimal(1000)


class Intervals:
    """Opens and closes the meter's periods; the engine calls it per sample."""

    def __init__(self, meter: Book) -> None:
        self._m = meter
        # Per period length: the period [start, end) that held the last sample, the UTC
        # offset then, and whether the offset is the same at both ends of the period. A sample
        # in the same period at the same offset floors to the same start
        # (gateway/engine/clock.py), so ``cross`` knows without working it out again that no
        # period ended before ``end``; in a period with one offset at both ends (zones change
        # offset months apart, never twice within a period) every sample has that offset,
        # and its own is not worked out (the local time was ~5 % of a sample's cost).
        self._periods: dict[int, tuple[datetime, datetime, timedelta | None, bool]] = {}
        # The offset of the sample ``cross`` works on, once it was needed.
        self._offset_of: datetime | None = None
        self._offset: timedelta | None = None
        # Settings are frozen (a meter given new ones is a new engine): read once.
        settings = meter.settings
        self._zone = meter.zone
        self._profile_min = settings.profile.interval_min
        self._demand_min = settings.demand.period_min
        self._analysis_min = settings.analysis.interval_min
        # The analysis registers as the engine files them (normalized once; a code listed
        # twice is one register).
        self._analysis = tuple(
            dict.fromkeys(
                (code, obis.normalize(code)) for code in meter.settings.analysis.registers
            )
        )
        # The running sum and count of the interval in progress, one per analysis register:
        # per sample a native object's float and int are cheaper to add to (compiled, no
        # boxing) than the state's dicts, which ``settle`` brings up to date when they are
        # read (the interval's end, the checkpoint).
        state = meter.state
        self._means = [
            _Mean(
                code,
                normalized,
                state.analysis_sums.get(code, 0.0),
                state.analysis_counts.get(code, 0),
            )
            for code, normalized in self._analysis
        ]
        # Settings are frozen (a meter given new ones is a new engine): read once.
        self._analysis_on = meter.settings.analysis.enabled

    @property
    def analysis_codes(self) -> tuple[str, ...]:
        """The analysis registers as the engine files them (what ``accumulate`` reads)."""
        return tuple(normalized for _, normalized in self._analysis)

    def start(self, at: datetime, flags: ProfileFlag = ProfileFlag.PARTIAL) -> None:
        state, zone = self._m.state, self._m.zone
        state.demand_start = floor_to_period(at, self._m.settings.demand.period_min, zone)
        # A period is whole only if the meter was read at its very start.
        state.demand_energy = (
            self._channel_values().get(A_PLUS) if at == state.demand_start else None
        )
        state.demand_tariff = self._m.active_tariff(at)
        state.profile_start = floor_to_period(at, self._m.settings.profile.interval_min, zone)
        state.profile_values = self._channel_values()
        whole = at == state.profile_start and flags == ProfileFlag.PARTIAL
        state.profile_flags = 0 if whole else int(flags)
        state.analysis_start = floor_to_period(at, self._m.settings.analysis.interval_min, zone)
        self._restart_analysis()
        if self._m.settings.debiting.period == "monthly" and state.next_debiting is None:
            state.next_debiting = next_debiting_stop(
                at, self._m.settings.debiting.day, self._m.settings.debiting.hour, zone
            )

    def _channel_values(self) -> dict[str, Decimal]:
        channels = PROFILE_CHANNELS[self._m.settings.profile.channels]
        return {
            code: Decimal(self._m.registers[code].value)
            for code in channels
            if code in self._m.registers and not isinstance(self._m.registers[code].value, str)
        }

    def cross(self, at: datetime, update: Update) -> None:
        """Close every demand period, profile and analysis interval and debiting period that
        ended between the previous sample and this one, at values interpolated to the end."""
        state = self._m.state
        start = state.last_at
        assert start is not None
        boundaries: list[tuple[datetime, int, str]] = []
        ends = self._ends(start, at, self._profile_min)
        if ends:
            boundaries.extend((end, 0, "profile") for end in ends)
        ends = self._ends(start, at, self._demand_min)
        if ends:
            boundaries.extend((end, 1, "demand") for end in ends)
        if self._analysis_on:
            ends = self._ends(start, at, self._analysis_min)
            if ends:
                boundaries.extend((end, 2, "analysis") for end in ends)
        if state.next_debiting is not None and state.next_debiting <= at:
            settings = self._m.settings
            while state.next_debiting is not None and state.next_debiting <= at:
                boundaries.append((state.next_debiting, 3, "debiting"))
                state.next_debiting = next_debiting_stop(
                    state.next_debiting, settings.debiting.day, settings.debiting.hour, self._zone
                )
        if boundaries:
            self._close(start, at, boundaries, update)

    def _close(
        self,
        start: datetime,
        at: datetime,
        boundaries: list[tuple[datetime, int, str]],
        update: Update,
    ) -> None:
        """Close what ``cross`` found ended, in order of time."""
        state = self._m.state
        gap = (at - start).total_seconds() > self._m.settings.limits.max_sample_gap_s
        before = state.last
        after = {
            code: Decimal(reg.value)
            for code, reg in self._m.registers.items()
            if isinstance(reg.value, Decimal) and obis.is_cumulative(code)
        }
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
                self.debiting_stop(boundary, snapshot, update, estimated=gap)

    def _ends(self, start: datetime, until: datetime, minutes: int) -> list[datetime] | None:
        """``period_ends(start, until, minutes)``, known at once while no period ends (None)."""
        known = self._periods.get(minutes)
        if (
            known is not None
            and known[0] <= start < known[1]
            and (known[3] or known[2] == self._offset_at(start))
        ):
            if until < known[1]:
                return None
        else:
            zone = self._zone
            first = floor_to_period(start, minutes, zone)
            end = first + timedelta(minutes=minutes)
            steady = first.astimezone(zone).utcoffset() == end.astimezone(zone).utcoffset()
            self._periods[minutes] = (first, end, self._offset_at(start), steady)
            if until < end:
                return None
        return period_ends(start, until, minutes, self._zone)

    def _offset_at(self, start: datetime) -> timedelta | None:
        """The zone's UTC offset at ``start`` (the sample ``cross`` works on), worked out
        once for the periods that need it."""
        if self._offset_of is not start:
            self._offset = start.astimezone(self._zone).utcoffset()
            self._offset_of = start
        return self._offset

    def _close_profile(self, end: datetime, value_at: Any, gap: bool, update: Update) -> None:
        state = self._m.state
        flags = ProfileFlag(state.profile_flags)
        if gap:
            flags |= ProfileFlag.POWER_OUTAGE | ProfileFlag.ESTIMATED
        values: dict[str, Decimal] = {}
        new_start: dict[str, Decimal] = {}
        for code in PROFILE_CHANNELS[self._m.settings.profile.channels]:
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
        state, demand = self._m.state, self._m.settings.demand
        if state.demand_energy is not None and energy is not None and not gap:
            hours = Decimal(demand.period_min) / 60
            watts = ((energy - state.demand_energy) * _W_PER_KWH_PER_HOUR / hours).quantize(
                Decimal("0.1"), rounding=ROUND_FLOOR
            )
            for code in (PEAK, f"1-0:1.6.{state.demand_tariff}"):
                current = self._m.registers.get(code)
                if current is None or isinstance(current.value, str) or watts > current.value:
                    self._m.put(update, code, watts, "W", end)
            if demand.power_threshold_w is not None and watts > Decimal(
                str(demand.power_threshold_w)
            ):
                count = self._m.registers.get(THRESHOLD_COUNT)
                total = (int(count.value) if count else 0) + 1
                self._m.put(update, THRESHOLD_COUNT, total, None, end)
                update.events.append(
                    self._m.event(
                        end,
                        "power_threshold_exceeded",
                        f"{watts} W averaged over {demand.period_min} min, above"
                        f" {demand.power_threshold_w} W",
                        demand_w=str(watts),
                    )
                )
        state.demand_start = end
        state.demand_energy = None if gap else energy
        state.demand_tariff = self._m.active_tariff(end)

    def accumulate(self, numbers: dict[str, float]) -> None:
        """Add a sample's numeric readings (canonical units, as floats) to the running means."""
        if not self._analysis_on:
            return
        for mean in self._means:  # one list, not a zip: compiled, zip is Python's iterator
            number = numbers.get(mean.normalized)
            if number is not None:
                mean.total += number
                mean.count += 1

    def settle(self) -> None:
        """Bring the state's analysis sums and counts up to date with the running ones."""
        state = self._m.state
        for mean in self._means:
            if mean.count:
                state.analysis_sums[mean.code] = mean.total
                state.analysis_counts[mean.code] = mean.count

    def _restart_analysis(self) -> None:
        state = self._m.state
        state.analysis_sums, state.analysis_counts = {}, {}
        self._means = [_Mean(code, normalized, 0.0, 0) for code, normalized in self._analysis]

    def _close_analysis(self, end: datetime, update: Update) -> None:
        state = self._m.state
        self.settle()
        if state.analysis_start is not None and state.analysis_counts:
            means = {
                code: state.analysis_sums[code] / count
                for code, count in state.analysis_counts.items()
                if count
            }
            update.analysis.append(AnalysisRow(state.analysis_start, end, means))
        state.analysis_start = end
        self._restart_analysis()

    def debiting_stop(
        self, at: datetime, energies: Mapping[str, Decimal], update: Update, *, estimated: bool
    ) -> BillingRecord:
        """Freeze the data sheet's list of values and start a new debiting period."""

        def reg(code: str) -> Value | None:
            register = self._m.registers.get(code)
            return None if register is None else register.value

        number = int(reg(DEBITING_COUNT) or 0) + 1
        peak = Decimal(reg(PEAK) or 0)
        accumulated = Decimal(reg(PEAK_ACCUMULATED) or 0) + peak
        local = at.astimezone(self._m.zone)
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
            register = self._m.registers.get(code)
            if register is not None:
                when = register.at.astimezone(self._m.zone)
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
        self._m.put(update, DEBITING_COUNT, number, None, at)
        self._m.put(update, PEAK_ACCUMULATED, accumulated, "W", at)
        for code in (PEAK, *(f"1-0:1.6.{t}" for t in range(1, 5))):
            if code in self._m.registers:
                self._m.put(update, code, Decimal("0.0"), "W", at)
        update.events.append(
            self._m.event(
                at,
                "debiting_stop",
                f"debiting period {number} closed",
                number=number,
                estimated=estimated,
            )
        )
        return record


class _Mean:
    """The running sum and count of one analysis register (as configured, and as filed)."""

    __slots__ = ("code", "count", "normalized", "total")

    def __init__(self, code: str, normalized: str, total: float, count: int) -> None:
        self.code = code
        self.normalized = normalized
        self.total = total
        self.count = count
