"""Frozen value objects that flow between adapters, the engine and the outputs."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

import msgspec

__all__ = [
    "Command",
    "Event",
    "Position",
    "RawFrame",
    "Reading",
    "Sample",
    "SwitchRequest",
    "Value",
    "utc_now",
]

Value = Decimal | int | float | str


def utc_now() -> datetime:
    """The current time, timezone-aware UTC (the only clock adapters should read)."""
    return datetime.now(UTC)


class Reading(msgspec.Struct, frozen=True):
    """One quantity: an OBIS code (or a stable name where OBIS has none), its value and unit."""

    obis: str
    value: Value
    unit: str | None = None


class Sample(msgspec.Struct, frozen=True):
    """One consistent batch of readings from one telegram or readout."""

    meter: str
    source: str
    at: datetime
    readings: tuple[Reading, ...]
    raw: bytes | None = None
    rssi: float | None = None


class RawFrame(msgspec.Struct, frozen=True):
    """A frame as a module received it, for the outputs that forward raw traffic (the hex
    debug topic, receiver mode): what the module heard, when, and how strongly."""

    module: str
    protocol: str  # the module's config ``type``: which codec reads ``data``
    data: bytes
    at: datetime
    rssi: float | None = None  # dBm, where the receiver reports it
    ok: bool = True  # False: the module could not use it (bad CRC, broken framing)


class Event(msgspec.Struct, frozen=True):
    """Something that happened to a meter or a module, kept in the non-volatile event log."""

    meter: str
    at: datetime
    kind: str
    detail: str = ""
    data: Mapping[str, Any] = msgspec.field(default_factory=dict)


# Where a breaker is: its contacts open (supply disconnected) or closed.
Position = Literal["open", "closed"]


class SwitchRequest(msgspec.Struct, frozen=True):
    """The engine's breaker asks its actuator module for a position. Only the supervisor makes
    these (from the engine's actions): no HTTP or MQTT client can switch an actuator directly.
    The actuator confirms by reporting the position it sees (``breaker_feedback``), or fails."""

    meter: str
    position: Position
    id: str


class Command(msgspec.Struct, frozen=True):
    """A request to change state, from MQTT, HTTP, Z-Wave or a button."""

    meter: str
    name: str
    id: str
    args: Mapping[str, Any] = msgspec.field(default_factory=dict)
    source: str = "local"
