"""``[modules.kmp]``: what a KMP master reads, how often, and how it watches the meter clock."""

from __future__ import annotations

import msgspec

from modules.codecs.kmp.frame import DEFAULT_ADDRESS
from modules.codecs.kmp.registers import CLOCK, DATE, DEFAULT_382_REGISTERS, register_id

__all__ = ["KmpOptions", "RegisterGroup"]


class RegisterGroup(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[[modules.kmp.groups]]``: registers read together, at their own interval."""

    name: str
    registers: tuple[int | str, ...]  # names ("voltage_l1") or ids (1054, 0x041E, "0x041E")
    interval_s: float | None = None  # None: the module's interval_s

    def __post_init__(self) -> None:
        if not self.registers:
            raise ValueError(f"register group {self.name!r} lists no registers")
        for key in self.registers:
            if register_id(key) in (CLOCK, DATE):
                raise ValueError(
                    f"register group {self.name!r}: the clock is read by kmp.clock_interval_s"
                )
        if self.interval_s is not None and self.interval_s <= 0:
            raise ValueError(f"register group {self.name!r}: interval_s must be positive")

    @property
    def ids(self) -> tuple[int, ...]:
        """The register ids, in order, without duplicates."""
        return tuple(dict.fromkeys(register_id(key) for key in self.registers))


class KmpOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Options of the Kamstrup Meter Protocol session."""

    address: int = DEFAULT_ADDRESS  # 0x3F the meter; 0x7F/0xBF its top/base loggers
    # No groups: the 382 set (energy, power and U/I per phase, max power, hours) at interval_s.
    groups: tuple[RegisterGroup, ...] = ()
    clock_interval_s: float = 3600.0  # how often the meter clock is read; 0: never
    clock_drift_threshold_s: float = 30.0  # a larger offset from our clock is a clock_drift event
    meter_time: bool = True  # stamp samples with the meter clock (needs clock_interval_s > 0)

    def __post_init__(self) -> None:
        if not 0 <= self.address <= 0xFF:
            raise ValueError(f"kmp.address {self.address} is not a byte")
        names = [group.name for group in self.groups]
        if len(set(names)) != len(names):
            raise ValueError("kmp.groups: group names must be unique")
        if self.clock_interval_s < 0 or self.clock_drift_threshold_s < 0:
            raise ValueError("kmp clock intervals and thresholds cannot be negative")

    def plan(self, interval_s: float) -> tuple[tuple[str, tuple[int, ...], float], ...]:
        """(name, register ids, interval) per group; the default 382 set when none is given."""
        if not self.groups:
            return (("default", DEFAULT_382_REGISTERS, interval_s),)
        return tuple(
            (group.name, group.ids, group.interval_s or interval_s) for group in self.groups
        )
