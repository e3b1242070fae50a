"""Software prepayment: credit spent by imported energy, topped up by unique, ordered top-ups.

Credit is Decimal in kWh or in money (tariff prices per T1..T4 and a standing charge per day).
A top-up carries an id and a sequence number: a replayed id or a sequence number not above the
last accepted one is refused, so a captured top-up cannot be used twice or out of order.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from gateway.engine.settings import PrepaymentSettings
from gateway.engine.state import PrepaymentState
from gateway.errors import CommandError
from gateway.model import Event

__all__ = ["Prepayment"]

# Once a top-up was accepted, the next may skip this many sequence numbers (lost vouchers), no
# more: one far ahead, by mistake or on purpose, would refuse every real top-up after it.
MAX_SEQUENCE_STEP = 1000
_KEEP_IDS = 256  # ids remembered besides the sequence rule, for a clear "replayed" answer


class Prepayment:
    """Spend and top up credit; say when the breaker must open or may close."""

    def __init__(
        self,
        meter: str,
        settings: PrepaymentSettings,
        state: PrepaymentState,
        zone: ZoneInfo,
        is_holiday: Callable[[date], bool],
    ) -> None:
        self.meter = meter
        self.settings = settings
        self.state = state
        self.zone = zone
        self._is_holiday = is_holiday
        self._window: tuple[object, time, time] = (None, time(0), time(0))
        # The last answer of ``friendly`` and the span [from, until) it holds for: the settings
        # it was worked out for, from, until, the answer. A meter out of credit asks at every
        # sample, and the local time it needs was ~7 % of a sample's cost.
        self._friendly: tuple[object, datetime, datetime, bool] = (None, _EPOCH, _EPOCH, False)

    @property
    def exhausted(self) -> bool:
        """No credit left, emergency credit included."""
        return self.state.exhausted

    def consume(self, kwh_by_tariff: Mapping[int, Decimal], now: datetime) -> list[Event]:
        """Spend credit for energy imported per tariff, and the standing charge per day."""
        settings, state = self.settings, self.state
        cost = Decimal(0)
        for tariff, kwh in kwh_by_tariff.items():
            cost += kwh if settings.unit == "kWh" else kwh * _money(settings.prices[tariff - 1])
        if settings.standing_charge_per_day and settings.unit != "kWh":
            local_day = now.astimezone(self.zone).date()
            if state.charged_through is None:
                state.charged_through = local_day
            elif local_day > state.charged_through:
                days = (local_day - state.charged_through).days
                cost += _money(settings.standing_charge_per_day) * days
                state.charged_through = local_day
        if not cost:
            return []
        state.balance -= cost
        return self._levels(now)

    def top_up(
        self, top_up_id: str, sequence: int, value: Decimal, now: datetime
    ) -> tuple[list[Event], Decimal]:
        """Add credit from a top-up (arguments checked by its command's type); refuse replays,
        reordering and a sequence far ahead of the last one."""
        if not self.settings.enabled:
            raise CommandError("not_allowed", "prepayment is not enabled for this meter")
        state = self.state
        if top_up_id in state.recent_ids:
            raise CommandError("replayed", f"top-up {top_up_id} was already applied")
        if sequence <= state.last_sequence:
            raise CommandError(
                "out_of_order",
                f"top-up sequence {sequence} is not after the last accepted {state.last_sequence}",
            )
        if state.recent_ids and sequence > state.last_sequence + MAX_SEQUENCE_STEP:
            raise CommandError(
                "bad_argument",
                f"`sequence` {sequence} is more than {MAX_SEQUENCE_STEP} past the last accepted"
                f" {state.last_sequence}; it would refuse every real top-up after it",
            )
        state.balance += value
        state.last_sequence = sequence
        state.recent_ids = [*state.recent_ids[-(_KEEP_IDS - 1) :], top_up_id]
        events = [
            Event(
                self.meter,
                now,
                "top_up",
                f"+{value} {self.settings.unit}, credit now {state.balance} {self.settings.unit}",
                {
                    "id": top_up_id,
                    "sequence": sequence,
                    "amount": str(value),
                    "balance": str(state.balance),
                },
            )
        ]
        if state.balance > 0:
            state.emergency_in_use = False
            state.exhausted = False
            state.deferred = False
            state.warned = [level for level in state.warned if Decimal(level) >= state.balance]
        return events, state.balance

    def friendly(self, now: datetime) -> bool:
        """Inside the hours when prepayment must not disconnect."""
        hours = self.settings.friendly_hours
        if hours is None or not hours.enabled:
            return False
        known = self._friendly
        if known[0] is hours and known[1] <= now < known[2]:
            return known[3]
        if self._window[0] is not hours:  # parsed once per settings, not once per sample
            self._window = (hours, _hhmm(hours.start), _hhmm(hours.end))
        _, start, end = self._window
        local = now.astimezone(self.zone)
        clock = local.time()
        if (hours.weekends and local.weekday() >= calendar.SATURDAY) or (
            hours.holidays and self._is_holiday(local.date())
        ):
            answer = True
        elif start <= end:
            answer = start <= clock < end
        else:
            answer = clock >= start or clock < end
        self._friendly = (hours, now, self._same_until(now, local, start, end), answer)
        return answer

    def _same_until(self, now: datetime, local: datetime, start: time, end: time) -> datetime:
        """Until when ``friendly`` answers as at ``now``: the next local midnight, start or end
        of the window, at most an hour ahead, and ``now`` itself (no span) when the zone's UTC
        offset changes before then. Checked at both ends: zones change offset months apart,
        never twice within an hour."""
        wall = local.replace(tzinfo=None)
        until = datetime.combine(wall.date() + _DAY, time(0))
        for clock in (start, end):
            boundary = datetime.combine(wall.date(), clock)
            if wall < boundary < until:
                until = boundary
        same_until = now + min(until - wall, _HOUR)
        if same_until.astimezone(self.zone).utcoffset() != local.utcoffset():
            return now
        return same_until

    def _levels(self, now: datetime) -> list[Event]:
        settings, state = self.settings, self.state
        events: list[Event] = []
        for level in sorted(settings.warning_levels, reverse=True):
            key = str(level)
            if state.balance <= _money(level) and key not in state.warned:
                state.warned.append(key)
                events.append(
                    Event(
                        self.meter,
                        now,
                        "credit_low",
                        f"credit {state.balance} {settings.unit} is at or below {level}",
                        {"balance": str(state.balance), "level": key},
                    )
                )
        if state.balance <= 0 and not state.exhausted:
            if settings.emergency_credit and not state.emergency_in_use:
                state.emergency_in_use = True
                state.balance += _money(settings.emergency_credit)
                events.append(
                    Event(
                        self.meter,
                        now,
                        "emergency_credit",
                        f"emergency credit of {settings.emergency_credit}"
                        f" {settings.unit} in use; top up soon",
                        {"balance": str(state.balance)},
                    )
                )
            else:
                state.exhausted = True
                events.append(
                    Event(
                        self.meter,
                        now,
                        "credit_exhausted",
                        f"no credit left ({state.balance} {settings.unit})",
                        {"balance": str(state.balance)},
                    )
                )
        return events


_DAY, _HOUR = timedelta(days=1), timedelta(hours=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _money(value: float) -> Decimal:
    return Decimal(str(value))


def _hhmm(text: str) -> time:
    return time(int(text[:2]), int(text[3:]))
