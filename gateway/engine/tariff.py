"""Time-of-use tariffs in the meter's local time, with seasons, day types and holidays.

Switch points are wall-clock times, but tariffs change at instants: a switch is resolved to
the first time its wall clock occurs that day, and one that falls in the spring-forward gap
happens when the gap ends. So in the repeated autumn hour a tariff never flips back.
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from gateway.engine.settings import MOVABLE_HOLIDAYS, SwitchPoint, TariffSeason, TariffSettings

__all__ = ["TariffSchedule", "easter_sunday"]


def easter_sunday(year: int) -> date:
    """Gregorian Easter Sunday (the anonymous Gregorian algorithm, Meeus/Jones/Butcher)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    leap = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * leap) // 451
    month, day = divmod(h + leap - 7 * m + 114, 31)
    return date(year, month, day + 1)


class TariffSchedule:
    """Which tariff (1..4) is active at an instant."""

    def __init__(self, settings: TariffSettings, zone: ZoneInfo) -> None:
        self.settings = settings
        self.zone = zone
        self._seasons = sorted(settings.seasons, key=lambda s: s.start)
        self._fixed = {(int(d[:2]), int(d[3:])) for d in settings.holidays}
        # The last answer of ``active`` and where it holds: from the instant asked up to (not
        # including) the next switch or the local day's end, whichever comes first (the day
        # picks the program). Samples come every second, switches a few times a day: nearly
        # every call is answered from here, without working out the local time.
        self._held: tuple[datetime, datetime, int] | None = None

    def active(self, at: datetime) -> int:
        """The scheduled tariff at an instant (timezone-aware)."""
        if not self._seasons:
            return self.settings.default
        held = self._held
        if held is not None and held[0] <= at < held[1]:
            return held[2]
        local_day = at.astimezone(self.zone).date()
        tariff = self._scheduled(at, local_day)
        change = self.next_change(at)
        if change is not None:
            self._held = (at, min(change, self._day_end(local_day)), tariff)
        return tariff

    def _day_end(self, local_day: date) -> datetime:
        """The instant the next local day starts, or a little before it: where midnight is
        skipped (a clock change at 00:00), the earlier reading of it."""
        midnight = datetime.combine(local_day + timedelta(days=1), time(0), tzinfo=self.zone)
        return min(midnight.astimezone(UTC), midnight.replace(fold=1).astimezone(UTC))

    def _scheduled(self, at: datetime, local_day: date) -> int:
        tariff = None
        for switch_at, switch_tariff in self._switches(local_day):
            if switch_at <= at:
                tariff = switch_tariff
        if tariff is not None:
            return tariff
        previous = self._switches(local_day - timedelta(days=1))
        return previous[-1][1] if previous else self.settings.default

    def next_change(self, at: datetime, horizon_days: int = 8) -> datetime | None:
        """The first switch instant after ``at`` (to split a sample's energy exactly)."""
        if not self._seasons:
            return None
        day = at.astimezone(self.zone).date()
        for offset in range(horizon_days):
            for switch_at, _ in self._switches(day + timedelta(days=offset)):
                if switch_at > at:
                    return switch_at
        return None

    def is_holiday(self, day: date) -> bool:
        """A fixed or movable holiday of the configured calendar."""
        if (day.month, day.day) in self._fixed:
            return True
        if not self.settings.movable_holidays:
            return False
        easter = easter_sunday(day.year)
        return any(
            easter + timedelta(days=MOVABLE_HOLIDAYS[name]) == day
            for name in self.settings.movable_holidays
        )

    def _switches(self, day: date) -> list[tuple[datetime, int]]:
        return _resolved(self, day)

    def program(self, day: date) -> tuple[SwitchPoint, ...]:
        """The day program that applies on a local date."""
        season = self._season(day)
        if self.is_holiday(day):
            return _first(season.holiday, season.sunday, season.saturday, season.weekday)
        weekday = day.weekday()
        if weekday == calendar.SUNDAY:
            return _first(season.sunday, season.saturday, season.weekday)
        if weekday == calendar.SATURDAY:
            return _first(season.saturday, season.weekday)
        return season.weekday

    def _season(self, day: date) -> TariffSeason:
        key = f"{day.month:02d}-{day.day:02d}"
        current = self._seasons[-1]  # the last season wraps around New Year
        for season in self._seasons:
            if season.start <= key:
                current = season
        return current


def _first(*programs: tuple[SwitchPoint, ...] | None) -> tuple[SwitchPoint, ...]:
    for program in programs:
        if program is not None:
            return program
    return ()


@lru_cache(maxsize=64)
def _resolved(schedule: TariffSchedule, day: date) -> list[tuple[datetime, int]]:
    points = []
    for point in sorted(schedule.program(day), key=lambda p: p.at):
        hour, minute = int(point.at[:2]), int(point.at[3:])
        points.append((_instant(day, time(hour, minute), schedule.zone), point.tariff))
    return points


def _instant(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """The first instant a wall-clock time occurs on a day; in a DST gap, the gap's end."""
    local = datetime.combine(day, wall, tzinfo=zone)  # fold=0: the first occurrence
    instant = local.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) != local.replace(tzinfo=None):
        # The wall time does not exist; the clock jumped over it. Find the jump's end.
        probe = instant
        while probe.astimezone(zone).replace(tzinfo=None) > local.replace(tzinfo=None):
            probe -= timedelta(minutes=15)
        while probe.astimezone(zone).replace(tzinfo=None) < local.replace(tzinfo=None):
            probe += timedelta(minutes=1)
        instant = probe
    return instant
