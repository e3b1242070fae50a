"""Engine settings: the ``[[meters]]`` keys that configure the 382L model."""

from __future__ import annotations

import re
from typing import Literal

import msgspec

__all__ = [
    "PROFILE_DEPTH_DAYS",
    "AnalysisSettings",
    "BreakerSettings",
    "DebitingSettings",
    "DemandSettings",
    "DisplaySettings",
    "EngineSettings",
    "FriendlyHours",
    "LimitSettings",
    "PrepaymentSettings",
    "ProfileSettings",
    "SmartDisconnectSettings",
    "SwitchPoint",
    "TariffSeason",
    "TariffSettings",
]


class _Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Immutable, keyword-only, unknown keys are errors."""


_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_MMDD = re.compile(r"^(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")


class SwitchPoint(_Settings, frozen=True):
    """From ``at`` (local HH:MM) the tariff is ``tariff`` until the next switch point."""

    at: str
    tariff: int

    def __post_init__(self) -> None:
        if not _HHMM.match(self.at):
            raise ValueError(f"`at` must be HH:MM, got {self.at!r}")
        if not 1 <= self.tariff <= 4:
            raise ValueError(f"`tariff` must be 1..4, got {self.tariff}")


class TariffSeason(_Settings, frozen=True):
    """Day programs that apply from ``start`` (MM-DD) until the next season starts."""

    start: str = "01-01"
    weekday: tuple[SwitchPoint, ...] = ()
    saturday: tuple[SwitchPoint, ...] | None = None  # default: the weekday program
    sunday: tuple[SwitchPoint, ...] | None = None  # default: the saturday program
    holiday: tuple[SwitchPoint, ...] | None = None  # default: the sunday program

    def __post_init__(self) -> None:
        if not _MMDD.match(self.start):
            raise ValueError(f"`start` must be MM-DD, got {self.start!r}")


MOVABLE_HOLIDAYS = {
    # Days after Easter Sunday.
    "maundy_thursday": -3,
    "good_friday": -2,
    "easter_sunday": 0,
    "easter_monday": 1,
    "great_prayer_day": 26,  # Denmark until 2023
    "ascension": 39,
    "whit_sunday": 49,
    "whit_monday": 50,
    "corpus_christi": 60,
}


class TariffSettings(_Settings, frozen=True):
    """Where the active tariff comes from."""

    # schedule: the seasons below; meter: the meter's own 0-0:96.14.0; command: set_tariff.
    source: Literal["schedule", "meter", "command"] = "schedule"
    default: int = 1  # before the first switch point, and for `meter`/`command` until told
    seasons: tuple[TariffSeason, ...] = ()
    holidays: tuple[str, ...] = ()  # fixed, MM-DD
    movable_holidays: tuple[str, ...] = ()  # names from MOVABLE_HOLIDAYS

    def __post_init__(self) -> None:
        for day in self.holidays:
            if not _MMDD.match(day):
                raise ValueError(f"holidays must be MM-DD, got {day!r}")
        for name in self.movable_holidays:
            if name not in MOVABLE_HOLIDAYS:
                known = ", ".join(sorted(MOVABLE_HOLIDAYS))
                raise ValueError(f"unknown movable holiday {name!r} (known: {known})")
        if not 1 <= self.default <= 4:
            raise ValueError(f"`default` must be 1..4, got {self.default}")


class DebitingSettings(_Settings, frozen=True):
    """Debiting (billing) periods: monthly on ``day`` at ``hour`` local time."""

    period: Literal["monthly", "none"] = "monthly"
    day: int = 1
    hour: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.day <= 28:
            raise ValueError(f"`day` must be 1..28 (every month has it), got {self.day}")
        if not 0 <= self.hour <= 23:
            raise ValueError(f"`hour` must be 0..23, got {self.hour}")


class DemandSettings(_Settings, frozen=True):
    """Peak power: the average over demand periods aligned to the clock."""

    period_min: int = 15
    power_threshold_w: float | None = None  # a demand above it is counted and is an event

    def __post_init__(self) -> None:
        if self.period_min not in (5, 10, 15, 20, 30, 60):
            raise ValueError(f"`period_min` must divide an hour (5..60), got {self.period_min}")


# Data sheet depths in days: interval minutes -> channels -> days.
PROFILE_DEPTH_DAYS: dict[int, dict[str, int]] = {
    5: {"A+": 199, "A+A-": 113, "A+A-R+R-": 61},
    15: {"A+": 597, "A+A-": 341, "A+A-R+R-": 183},
    30: {"A+": 1194, "A+A-": 682, "A+A-R+R-": 367},
    60: {"A+": 2388, "A+A-": 1364, "A+A-R+R-": 734},
}


class ProfileSettings(_Settings, frozen=True):
    """The load profile: energy per interval with status flags."""

    interval_min: Literal[5, 15, 30, 60] = 15
    channels: Literal["A+", "A+A-", "A+A-R+R-"] = "A+A-R+R-"
    retention_days: int | None = None  # default and minimum: the data sheet's depth

    def __post_init__(self) -> None:
        minimum = PROFILE_DEPTH_DAYS[self.interval_min][self.channels]
        if self.retention_days is not None and self.retention_days < minimum:
            raise ValueError(
                f"`retention_days` must be at least the 382L's {minimum} days for"
                f" {self.channels} at {self.interval_min} min"
            )

    @property
    def depth_days(self) -> int:
        """How long profile intervals are kept."""
        return self.retention_days or PROFILE_DEPTH_DAYS[self.interval_min][self.channels]


DEFAULT_ANALYSIS = (
    "1-0:32.7.0",
    "1-0:52.7.0",
    "1-0:72.7.0",
    "1-0:31.7.0",
    "1-0:51.7.0",
    "1-0:71.7.0",
    "1-0:21.7.0",
    "1-0:41.7.0",
    "1-0:61.7.0",
    "1-0:22.7.0",
    "1-0:42.7.0",
    "1-0:62.7.0",
    "1-0:14.7.0",
    "1-0:13.7.0",
)


class AnalysisSettings(_Settings, frozen=True):
    """The analysis logger: the mean of up to 16 registers per interval."""

    enabled: bool = True
    interval_min: int = 15
    registers: tuple[str, ...] = DEFAULT_ANALYSIS
    retention_days: int = 520

    def __post_init__(self) -> None:
        if len(self.registers) > 16:
            raise ValueError(f"at most 16 registers, got {len(self.registers)}")
        if self.interval_min not in (1, 5, 10, 15, 30, 60):
            raise ValueError(f"`interval_min` must divide an hour, got {self.interval_min}")


class DisplaySettings(_Settings, frozen=True):
    """The LCD's three reading lists."""

    auto: tuple[str, ...] = ("1-0:1.8.0", "1-0:2.8.0", "1-0:1.7.0", "1-0:2.7.0")
    manual: tuple[str, ...] = (
        "1-0:1.8.0",
        "1-0:1.8.1",
        "1-0:1.8.2",
        "1-0:2.8.0",
        "1-0:3.8.0",
        "1-0:4.8.0",
        "1-0:1.6.0",
        "1-0:32.7.0",
        "1-0:52.7.0",
        "1-0:72.7.0",
    )
    battery: tuple[str, ...] = ("1-0:1.8.0", "1-0:2.8.0")
    scroll_s: float = 10.0
    manual_timeout_s: float = 120.0

    def __post_init__(self) -> None:
        for name, codes, most in (
            ("auto", self.auto, 16),
            ("manual", self.manual, 30),
            ("battery", self.battery, 8),
        ):
            if len(codes) > most:
                raise ValueError(f"the {name} list holds at most {most} readings")
            if not codes:
                raise ValueError(f"the {name} list needs at least one reading")


class LimitSettings(_Settings, frozen=True):
    """Thresholds of the supply monitors (EN 50160: 230 V +-10 %)."""

    nominal_v: float = 230.0
    over_v: float = 253.0
    under_v: float = 207.0
    phase_loss_v: float = 115.0
    # Loss of neutral: see gateway/engine/monitor.py for why these two together.
    neutral_spread_v: float = 40.0
    hold_s: float = 5.0
    max_power_w: float = 3 * 105 * 253  # Imax on three phases: above it a jump is implausible
    max_sample_gap_s: float = 300.0  # a longer silence is an outage for profiles and hours


class SmartDisconnectSettings(_Settings, frozen=True):
    """Open the breaker when the load stays above a limit, or the neutral is lost."""

    enabled: bool = False
    power_w: float | None = None  # total active import above this ...
    current_a: float | None = None  # ... or any phase current above this ...
    duration_s: float = 60.0  # ... for this long
    on_loss_of_neutral: bool = True
    reconnect: Literal["auto", "button"] = "button"  # once the load is back under the limit
    reconnect_after_s: float = 60.0  # auto: wait this long first


class BreakerSettings(_Settings, frozen=True):
    """The breaker (never a safety function) and who may operate it."""

    enabled: bool = False
    actuator: str | None = None  # the module that switches it (relay, mqtt_switch, dlms, ...)
    confirm_timeout_s: float = 10.0  # the actuator must confirm within this time
    remote_disconnect: bool = True
    remote_reconnect: Literal["direct", "arm", "never"] = "arm"  # arm: a button press closes it
    button_disconnect: bool = True
    button_reconnect: bool = True
    smart_disconnect: SmartDisconnectSettings = SmartDisconnectSettings()


class FriendlyHours(_Settings, frozen=True):
    """When prepayment must never disconnect (nights, weekends, holidays)."""

    enabled: bool = True
    start: str = "16:00"  # local HH:MM; the window may run past midnight
    end: str = "08:00"
    weekends: bool = True
    holidays: bool = True

    def __post_init__(self) -> None:
        for value in (self.start, self.end):
            if not _HHMM.match(value):
                raise ValueError(f"friendly hours must be HH:MM, got {value!r}")


class PrepaymentSettings(_Settings, frozen=True):
    """Software prepayment: credit in kWh or money, spent by A+ per tariff."""

    enabled: bool = False
    unit: str = "kWh"  # "kWh", or a currency such as "DKK" (then prices apply)
    prices: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # per kWh, T1..T4
    standing_charge_per_day: float = 0.0
    warning_levels: tuple[float, ...] = (10.0, 5.0)
    emergency_credit: float = 0.0
    friendly_hours: FriendlyHours | None = FriendlyHours()
    reconnect: Literal["auto", "button"] = "auto"  # after a top-up brings credit back


class EngineSettings(_Settings, frozen=True):
    """Everything the 382L model can be configured with, per meter."""

    tariff: TariffSettings = TariffSettings()
    debiting: DebitingSettings = DebitingSettings()
    demand: DemandSettings = DemandSettings()
    profile: ProfileSettings = ProfileSettings()
    analysis: AnalysisSettings = AnalysisSettings()
    display: DisplaySettings = DisplaySettings()
    limits: LimitSettings = LimitSettings()
    breaker: BreakerSettings = BreakerSettings()
    prepayment: PrepaymentSettings = PrepaymentSettings()
