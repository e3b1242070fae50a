"""The 382L's LCD: auto-scroll, a push-button manual list and a battery list."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway import obis
from gateway.engine.settings import DisplaySettings
from gateway.errors import CommandError

__all__ = ["LEGAL_READINGS", "Display"]

# The data sheet: "it is not possible to deselect legal readings" from the manual list. A+
# total always is one; the active tariff's A+ register is the other.
LEGAL_READINGS = ("1-0:1.8.0",)


@dataclass(slots=True)
class Display:
    """Which reading the LCD shows; pure state, advanced by time and the push button."""

    settings: DisplaySettings
    auto: tuple[str, ...] = ()
    manual: tuple[str, ...] = ()
    battery: tuple[str, ...] = ()
    mode: str = "auto"
    index: int = 0
    last_push: datetime | None = None

    def __post_init__(self) -> None:
        self.auto = self.auto or self.settings.auto
        self.manual = self.manual or self.settings.manual
        self.battery = self.battery or self.settings.battery

    def push(self, now: datetime, tariff: int) -> None:
        """The push button: enter the manual list, or step to its next reading."""
        if self._mode(now) != "manual":
            self.mode, self.index = "manual", 0
        else:
            self.index = (self.index + 1) % len(self.manual_list(tariff))
        self.last_push = now

    def manual_list(self, tariff: int) -> tuple[str, ...]:
        """The configured manual list with the legal readings it must always hold."""
        legal = (*LEGAL_READINGS, f"1-0:1.8.{tariff}")
        missing = tuple(code for code in legal if code not in self.manual)
        return missing + self.manual

    def set_list(self, name: str, codes: tuple[str, ...], tariff: int) -> None:
        """Replace a list (by command); legal readings cannot leave the manual list."""
        limits = {"auto": 16, "manual": 30, "battery": 8}
        if name not in limits:
            raise CommandError("bad_list", f"no display list {name!r} (auto, manual, battery)")
        if not codes or len(codes) > limits[name]:
            raise CommandError("bad_list", f"the {name} list holds 1..{limits[name]} readings")
        normalized = tuple(obis.normalize(code) for code in codes)
        if name == "manual":
            legal = (*LEGAL_READINGS, f"1-0:1.8.{tariff}")
            dropped = [code for code in legal if code not in normalized]
            if dropped:
                raise CommandError(
                    "legal_reading", f"legal readings cannot be removed: {', '.join(dropped)}"
                )
        setattr(self, name, normalized)
        self.index = 0

    def state(
        self, now: datetime, registers: Mapping[str, Any], *, tariff: int, powered: bool = True
    ) -> dict[str, Any]:
        """What the LCD shows now: the list, position, OBIS id, value and unit."""
        mode = self._mode(now) if powered else "battery"
        if mode == "manual":
            codes, index = self.manual_list(tariff), self.index
        elif mode == "battery":
            codes = self.battery
            index = self.index % len(codes) if self.mode == "battery" else 0
        else:
            codes = self.auto
            index = int(now.timestamp() // self.settings.scroll_s) % len(codes)
        code = codes[index % len(codes)]
        register = registers.get(code)
        quantity = obis.describe(code)
        return {
            "list": mode,
            "index": index % len(codes),
            "length": len(codes),
            "obis": code,
            "id": _seven_digit_id(code),
            "value": None if register is None else register.value,
            "unit": None if register is None else register.unit,
            "label": quantity.label if quantity else code,
        }

    def _mode(self, now: datetime) -> str:
        idle = None if self.last_push is None else (now - self.last_push).total_seconds()
        if self.mode == "manual" and idle is not None and idle >= self.settings.manual_timeout_s:
            self.mode, self.index = "auto", 0
        return self.mode


def _seven_digit_id(code: str) -> str:
    """The LCD's identification field, e.g. ``1.8.0`` -> ``1-0:1.8.0`` shown as 7 characters."""
    try:
        _, _, c, d, e, _ = obis.parse(code)
    except ValueError:
        return code[:7]
    return f"{c}.{d}.{e}"[:7]
