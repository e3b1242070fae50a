"""The MQTT payloads: state, events, profile intervals, billing, command replies and the
gateway's status detail, as published under ``<base>/<gateway>/...``.

Hubs, Node-RED flows and Home Assistant's templates read these names; a change shows as a diff
of ``tests/contracts/mqtt/``. Times are ISO 8601 UTC strings with milliseconds and a ``Z``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from gateway.contracts.wire import BillingValue, Number, ReadingValue

__all__ = [
    "BillingPayload",
    "CommandReply",
    "EventPayload",
    "IsoTime",
    "ModuleDetail",
    "OutboxDetail",
    "ProfilePayload",
    "ProfileValue",
    "ReplyError",
    "StatePayload",
    "StateReading",
    "StatusDetail",
]

# ISO 8601 UTC with milliseconds and a Z, written by ``gateway.mqtt.payloads.iso``.
IsoTime = Annotated[str, msgspec.Meta(extra_json_schema={"format": "date-time"})]


class _Payload(msgspec.Struct, frozen=True, kw_only=True):
    """A published payload: built once, encoded as it is."""


class StateReading(_Payload, frozen=True):
    """One register: its value, unit, OBIS code (None for a protocol's own name) and when the
    meter last measured it."""

    value: ReadingValue
    unit: str | None
    obis: str | None
    at: IsoTime


class StatePayload(_Payload, frozen=True):
    """``<meter>/state`` (retained): every register by its stable key; ``seq`` grows by one per
    message of the meter, so a gap is a lost message."""

    meter: str
    seq: int
    at: IsoTime | None
    readings: dict[str, StateReading]


class EventPayload(_Payload, frozen=True):
    """``<meter>/event``: one entry of the non-volatile event log, with its log id."""

    id: int
    meter: str
    at: IsoTime
    kind: str
    detail: str
    data: dict[str, Any]


class ProfileValue(_Payload, frozen=True):
    """Energy of one channel in the interval."""

    value: Number
    unit: str | None
    obis: str


class ProfilePayload(_Payload, frozen=True):
    """``<meter>/profile``: a closed load-profile interval [start, end) with its status bits
    (``status``) and their names (``flags``)."""

    meter: str
    start: IsoTime
    end: IsoTime
    status: int
    flags: list[str]
    values: dict[str, ProfileValue]


class BillingPayload(_Payload, frozen=True):
    """``<meter>/billing`` (retained): the values frozen at a debiting stop."""

    meter: str
    number: int
    at: IsoTime
    estimated: bool
    values: dict[str, BillingValue]


class ReplyError(_Payload, frozen=True):
    """Why a command was refused: a stable ``code`` and a message naming what was wrong."""

    code: str
    message: str


class CommandReply(_Payload, frozen=True, omit_defaults=True):
    """``<meter>/reply`` (or ``<gateway>/reply``): ``result`` when ``ok``, else ``error``; ``id``
    is the command's (None when the payload was too broken to read one)."""

    id: str | None
    command: str
    ok: bool
    result: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    error: ReplyError | msgspec.UnsetType = msgspec.UNSET


class OutboxDetail(_Payload, frozen=True):
    """What waits for the broker: messages and bytes, the bound and what gave way to it."""

    messages: int
    bytes: int
    max_bytes: int
    policy: str
    dropped: int
    oldest: IsoTime | None


class ModuleDetail(_Payload, frozen=True):
    """One module's health."""

    type: str
    state: str
    last_frame_at: IsoTime | None
    frames_ok: int
    frames_failed: int
    restarts: int
    last_error: str | None


class StatusDetail(_Payload, frozen=True):
    """``status/detail`` (retained): version, outbox, meter availability and module health."""

    state: Literal["online", "offline"]
    version: str
    started: IsoTime
    outbox: OutboxDetail
    raw_dropped: int
    meters: dict[str, Literal["online", "offline"]]
    modules: dict[str, ModuleDetail]
