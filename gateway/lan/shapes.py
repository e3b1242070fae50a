"""How the gateway's objects look in the API and the live stream (the Structs of
``gateway.contracts.http``)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec

from gateway import obis
from gateway.contracts import http
from gateway.engine import MeterEngine, Register
from gateway.model import Event

__all__ = [
    "AUTO_SCROLL_S",
    "DEFAULT_AUTO_LIST",
    "DEFAULT_MANUAL_LIST",
    "MANUAL_TIMEOUT_S",
    "described_register",
    "display_json",
    "display_state",
    "event_json",
    "flag_names",
    "profile_row_json",
    "register_json",
]

# The 382L's factory auto-scroll list as the page shows it until the engine models a display.
DEFAULT_AUTO_LIST = (
    "1-0:1.8.0",
    "1-0:2.8.0",
    "1-0:1.7.0",
    "1-0:32.7.0",
    "1-0:52.7.0",
    "1-0:72.7.0",
)
DEFAULT_MANUAL_LIST = (
    *DEFAULT_AUTO_LIST,
    *(f"1-0:1.8.{t}" for t in range(1, 5)),
    "1-0:3.8.0",
    "1-0:4.8.0",
    "1-0:2.7.0",
    "1-0:1.6.0",
    "1-0:31.7.0",
    "1-0:51.7.0",
    "1-0:71.7.0",
    "1-0:14.7.0",
    "1-0:13.7.0",
    "0-0:96.14.0",
)
# Datasheet, Display: 10 s per reading in auto scroll; 2 min after the last push back to auto.
AUTO_SCROLL_S = 10.0
MANUAL_TIMEOUT_S = 120.0


def register_json(register: Register) -> http.Register:
    """A register as the live stream shows what a sample changed."""
    return http.Register(
        value=register.value, unit=register.unit, at=register.at, changed_at=register.since
    )


def described_register(register: Register) -> http.DescribedRegister:
    """A register with its OBIS name and label, as the API shows it."""
    quantity = obis.describe(register.obis)
    return http.DescribedRegister(
        value=register.value,
        unit=register.unit,
        at=register.at,
        changed_at=register.since,
        name=quantity.name if quantity else None,
        label=quantity.label if quantity else None,
    )


def event_json(event_id: int, event: Event) -> http.EventEntry:
    """An event log entry."""
    return http.EventEntry(
        id=event_id,
        meter=event.meter,
        at=event.at,
        kind=event.kind,
        detail=event.detail,
        data=dict(event.data),
    )


def profile_row_json(row: Any) -> http.ProfileRow:
    """A load-profile interval: energy per OBIS channel in [start, end) and its status."""
    return http.ProfileRow(
        start=row.start,
        end=row.end,
        values=row.values,
        flags=int(row.flags),
        status=flag_names(row.flags),
    )


def display_state(state: Mapping[str, Any]) -> http.DisplayState:
    """The engine's display state (``MeterEngine.display_state``) as its contract."""
    return msgspec.convert(state, http.DisplayState)


def flag_names(flags: Any) -> list[str]:
    if isinstance(flags, enum.Flag):
        return [str(f.name).lower() for f in type(flags) if f.value and f in flags]
    return []


def display_json(engine: MeterEngine, now: datetime) -> http.DisplayResponse:
    """Display lists, timing and state, from the engine's model when it has one."""
    model = getattr(engine, "display", None)
    state_of = getattr(engine, "display_state", None)
    settings = getattr(model, "settings", None)
    auto: tuple[str, ...] = tuple(getattr(model, "auto", DEFAULT_AUTO_LIST))
    manual: tuple[str, ...] = tuple(getattr(model, "manual", DEFAULT_MANUAL_LIST))
    manual_list = getattr(model, "manual_list", None)
    active_tariff = getattr(engine, "active_tariff", None)
    if callable(manual_list) and callable(active_tariff):
        manual = tuple(manual_list(active_tariff(now)))
    return http.DisplayResponse(
        meter=engine.meter_id,
        source="engine" if model is not None else "default",
        auto=list(auto),
        manual=list(manual),
        battery=list(getattr(model, "battery", ())),
        scroll_s=float(getattr(settings, "scroll_s", AUTO_SCROLL_S)),
        manual_timeout_s=float(getattr(settings, "manual_timeout_s", MANUAL_TIMEOUT_S)),
        state=display_state(state_of(now)) if callable(state_of) else None,
        labels={
            code: (q.label if (q := obis.describe(code)) else code) for code in (*auto, *manual)
        },
    )
