"""The names the engine's parts share, and what they need from the meter they belong to."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from gateway.engine.breaker import Breaker
from gateway.engine.prepayment import Prepayment
from gateway.engine.records import Register
from gateway.engine.settings import EngineSettings
from gateway.engine.state import EngineState
from gateway.engine.update import Update
from gateway.model import Event, Value

__all__ = ["Book"]

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


class Book(Protocol):
    """The meter as its parts see it: registers, settings, cursor, tariff and the breaker.

    A protocol, not the MeterEngine: the parts cannot import the meter that holds them
    (tests/test_architecture.py forbids import circles), though compiled, reads through a
    protocol are looked up by name."""

    meter_id: str
    settings: EngineSettings
    zone: ZoneInfo
    state: EngineState
    breaker: Breaker
    prepayment: Prepayment

    @property
    def registers(self) -> Mapping[str, Register]:
        """Every register by OBIS code or stable name."""
        ...

    def put(self, update: Update, code: str, value: Value, unit: str | None, at: datetime) -> None:
        """Set a register (recorded in ``update`` when it changed)."""
        ...

    def decimal(self, code: str) -> Decimal | None:
        """A numeric register as Decimal, or None."""
        ...

    def event(self, at: datetime, kind: str, detail: str, **data: Any) -> Event:
        """An event of this meter."""
        ...

    def active_tariff(self, at: datetime) -> int:
        """The tariff in force at an instant."""
        ...
