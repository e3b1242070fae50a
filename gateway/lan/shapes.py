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
from gateway.engine import Register
from gateway.model import Event
from gateway.view import MeterReadout

__all__ = [
    "described_register",
    "display_json",
    "display_state",
    "event_json",
    "flag_names",
    "profile_row_json",
    "register_json",
]


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


def display_json(engine: MeterReadout, now: datetime) -> http.DisplayResponse:
    """Display lists, timing and state, from the engine's model of the 382L's LCD."""
    model = engine.display
    auto = model.auto
    manual = model.manual_list(engine.active_tariff(now))
    return http.DisplayResponse(
        meter=engine.meter_id,
        source="engine",
        auto=list(auto),
        manual=list(manual),
        battery=list(model.battery),
        scroll_s=float(model.settings.scroll_s),
        manual_timeout_s=float(model.settings.manual_timeout_s),
        state=display_state(engine.display_state(now)),
        labels={
            code: (q.label if (q := obis.describe(code)) else code) for code in (*auto, *manual)
        },
    )
