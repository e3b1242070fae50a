"""MQTT topic names and JSON payloads: state, events, profiles, command requests and replies.

Pure functions, shared by the bridge, the discovery builder, tests and the HTTP docs. Each payload
is a Struct of ``gateway.contracts.mqtt``. Every time is ISO 8601 UTC with a ``Z``; numbers stay
numbers (Decimal registers are written exactly).
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec

from gateway import obis
from gateway.contracts import encode, mqtt
from gateway.engine import Register
from gateway.engine.records import BillingRecord, ProfileFlag, ProfileRow
from gateway.errors import CommandError
from gateway.model import Command, Event

__all__ = [
    "MAX_COMMAND_PAYLOAD_B",
    "Topics",
    "billing_payload",
    "encode",
    "event_payload",
    "iso",
    "parse_command",
    "profile_payload",
    "reading_key",
    "reply_payload",
    "state_payload",
    "value_text",
]

# A command is a few keys; anything larger is a mistake or an attack on the log.
MAX_COMMAND_PAYLOAD_B = 4096
MAX_COMMAND_ID_CHARS = 64
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def iso(at: datetime) -> str:
    """ISO 8601 UTC with milliseconds and a ``Z``."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Topics:
    """Every topic the bridge uses: ``<base>/<gateway name>/...`` and the discovery prefix.

    The gateway's name is in every topic, so two gateways on one broker never share a state,
    status, availability or command topic. A meter's topics are ``<base>/<gateway>/<meter>/...``;
    the gateway's own are ``<base>/<gateway>/status``, ``.../set/<command>`` and ``.../reply``.
    """

    base: str
    gateway: str = "home"
    discovery_prefix: str = "homeassistant"

    @property
    def root(self) -> str:
        """Where this gateway's topics start."""
        return f"{self.base}/{self.gateway}"

    @property
    def status(self) -> str:
        """Gateway online/offline, retained, also the last will."""
        return f"{self.root}/status"

    @property
    def status_detail(self) -> str:
        """Gateway health JSON (outbox depth, drops, modules), retained."""
        return f"{self.root}/status/detail"

    @property
    def commands(self) -> tuple[str, str]:
        """The subscriptions that receive every command: the meters' and the gateway's."""
        return f"{self.root}/+/set/+", f"{self.root}/set/+"

    @property
    def ha_status(self) -> str:
        """Home Assistant's birth and will topic."""
        return f"{self.discovery_prefix}/status"

    def state(self, meter: str) -> str:
        """A meter's registers as JSON, retained."""
        return f"{self.root}/{meter}/state"

    def availability(self, meter: str) -> str:
        """Whether a meter is being heard, retained."""
        return f"{self.root}/{meter}/availability"

    def event(self, meter: str) -> str:
        """A meter's events, one JSON object each."""
        return f"{self.root}/{meter}/event"

    def profile(self, meter: str) -> str:
        """Closed load-profile intervals."""
        return f"{self.root}/{meter}/profile"

    def billing(self, meter: str) -> str:
        """Values frozen at each debiting stop, retained."""
        return f"{self.root}/{meter}/billing"

    def reply(self, meter: str) -> str:
        """Outcomes of commands sent to ``set/<command>`` (the gateway's own under its root)."""
        if meter == self.gateway:
            return f"{self.root}/reply"
        return f"{self.root}/{meter}/reply"

    def command(self, meter: str, name: str) -> str:
        """Where a command for a meter (or, by the gateway's name, the gateway) is sent."""
        if meter == self.gateway:
            return f"{self.root}/set/{name}"
        return f"{self.root}/{meter}/set/{name}"

    def value(self, meter: str, key: str) -> str:
        """One value as plain text, retained (optional per-value topics)."""
        return f"{self.root}/{meter}/value/{safe_id(key)}"

    def raw(self, module: str) -> str:
        """Raw frames of a module, as hex."""
        return f"{self.root}/raw/{module}"

    def device_config(self, object_id: str) -> str:
        """A Home Assistant device discovery config."""
        return f"{self.discovery_prefix}/device/{object_id}/config"

    def legacy(self, meters: Iterable[str]) -> list[str]:
        """The retained topics of the layout before the gateway's name was in them."""
        topics = [f"{self.base}/status", f"{self.base}/status/detail"]
        for meter in meters:
            topics += [
                f"{self.base}/{meter}/{leaf}" for leaf in ("state", "availability", "billing")
            ]
        return topics

    def parse_command(self, topic: str) -> tuple[str, str] | None:
        """(meter, command) from a command topic, None if it is not one.

        A command for the gateway itself comes back with the gateway's name as its meter.
        """
        prefix = f"{self.root}/"
        if not topic.startswith(prefix):
            return None
        parts = topic[len(prefix) :].split("/")
        if len(parts) == 2 and parts[0] == "set":  # noqa: PLR2004 - set/<command>
            return self.gateway, parts[1]
        if len(parts) != 3 or parts[1] != "set":  # noqa: PLR2004 - <meter>/set/<command>
            return None
        return parts[0], parts[2]


def safe_id(text: str) -> str:
    """``text`` in Home Assistant's id alphabet ``[A-Za-z0-9_-]``."""
    return _UNSAFE.sub("_", text).strip("_") or "value"


def reading_key(code: str) -> str:
    """The stable JSON key of a register: its OBIS name, or the code/name itself."""
    return _code_info(code)[0]


@functools.lru_cache(maxsize=4096)
def _code_info(code: str) -> tuple[str, str | None]:
    """(JSON key, OBIS code or None for a protocol's own name), cached: a meter has few codes."""
    quantity = obis.describe(code)
    try:
        obis.parse(code)
    except ValueError:
        return (quantity.name if quantity else code), None
    return (quantity.name if quantity else code), code


def state_payload(meter: str, registers: Mapping[str, Register], seq: int) -> bytes:
    """``<base>/<meter>/state``: every register with unit, OBIS code and measurement time.

    ``seq`` grows by one per state message of this meter, so a consumer can see a gap.
    """
    readings: dict[str, mqtt.StateReading] = {}
    times: dict[datetime, str] = {}  # most registers of a sample share one time
    latest: datetime | None = None
    reading = mqtt.StateReading
    for code, key, obis_code in _layout(registers):
        register = registers[code]
        at = register.at
        text = times.get(at)
        if text is None:
            text = times[at] = iso(at)
            if latest is None or at > latest:
                latest = at
        readings[key] = reading(register.value, register.unit, obis_code, text)
    return encode(
        mqtt.StatePayload(
            meter=meter, seq=seq, at=times[latest] if latest else None, readings=readings
        )
    )


# A meter's register codes come in the same order message after message: their sorted order
# and JSON keys are worked out once per set of codes, not per message (a state message is built
# for every meter every publish interval). Bounded: sets of codes are few, but never unbounded.
_LAYOUTS: dict[tuple[str, ...], tuple[tuple[str, str, str | None], ...]] = {}
_LAYOUTS_MAX = 1024


def _layout(registers: Mapping[str, Register]) -> tuple[tuple[str, str, str | None], ...]:
    """(code, JSON key, OBIS code or None) of each register, in the order of their codes."""
    codes = tuple(registers)
    layout = _LAYOUTS.get(codes)
    if layout is None:
        if len(_LAYOUTS) >= _LAYOUTS_MAX:
            _LAYOUTS.clear()
        layout = _LAYOUTS[codes] = tuple((code, *_code_info(code)) for code in sorted(codes))
    return layout


def value_text(value: Any) -> bytes:
    """A plain per-value payload: the number (exactly) or the text."""
    if isinstance(value, Decimal):
        return format(value, "f").encode()
    return str(value).encode()


def event_payload(event_id: int, event: Event) -> bytes:
    """``<base>/<meter>/event``: one event from the non-volatile log, with its log id."""
    return encode(
        mqtt.EventPayload(
            id=event_id,
            meter=event.meter,
            at=iso(event.at),
            kind=event.kind,
            detail=event.detail,
            data=dict(event.data),
        )
    )


def profile_payload(meter: str, row: ProfileRow) -> bytes:
    """``<base>/<meter>/profile``: energy per channel in one interval [start, end), with flags."""
    values = {}
    for code, value in sorted(row.values.items()):
        quantity = obis.describe(code)
        values[reading_key(code)] = mqtt.ProfileValue(
            value=value, unit=quantity.unit if quantity else None, obis=code
        )
    return encode(
        mqtt.ProfilePayload(
            meter=meter,
            start=iso(row.start),
            end=iso(row.end),
            status=int(row.flags),
            flags=[flag.name.lower() for flag in ProfileFlag if flag.name and flag in row.flags],
            values=values,
        )
    )


def billing_payload(meter: str, record: BillingRecord) -> bytes:
    """``<base>/<meter>/billing``: the datasheet's list of values frozen at a debiting stop."""
    return encode(
        mqtt.BillingPayload(
            meter=meter,
            number=record.number,
            at=iso(record.at),
            estimated=record.estimated,
            values=dict(record.values),
        )
    )


def parse_command(meter: str, name: str, payload: bytes) -> Command:  # noqa: PLR0912 - each refusal says what was wrong
    """A Command from a ``set/<command>`` message, or CommandError("bad_payload") saying why.

    The payload is a JSON object (optional ``"id"``, every other key an argument, or the
    arguments nested under ``"args"`` as over HTTP) or plain text for commands without arguments
    (a Home Assistant button sends ``PRESS``).
    """
    if not _NAME.match(name):
        raise CommandError("bad_payload", f"command name {name!r} must match [A-Za-z0-9_-]+")
    if len(payload) > MAX_COMMAND_PAYLOAD_B:
        raise CommandError(
            "bad_payload",
            f"payload is {len(payload)} bytes; commands are at most {MAX_COMMAND_PAYLOAD_B}",
        )
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError as err:
        raise CommandError(
            "bad_payload",
            f"payload is not UTF-8 text (byte {err.start} is {payload[err.start]:#04x})",
        ) from None
    if not text.startswith(("{", "[")):
        return Command(meter=meter, name=name, id=_new_id(), source="mqtt")
    try:
        document = msgspec.json.decode(text)
    except msgspec.DecodeError as err:
        raise CommandError("bad_payload", f"payload is not valid JSON: {err}") from None
    except RecursionError:
        raise CommandError("bad_payload", "payload is nested too deeply to be a command") from None
    if not isinstance(document, dict):
        raise CommandError(
            "bad_payload",
            f"payload must be a JSON object (or plain text), not a {type(document).__name__}",
        )
    args = dict(document)
    raw_id = args.pop("id", None)
    # {"id": ..., "args": {...}} as over HTTP: needed when an argument is itself called "id"
    # (a top-up's own id).
    nested = args.get("args")
    if set(args) == {"args"} and isinstance(nested, dict):
        args = dict(nested)
    elif "args" in args:
        raise CommandError("bad_payload", '"args" must be an object and the only other key "id"')
    if raw_id is None:
        command_id = _new_id()
    elif isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
        raise CommandError(
            "bad_payload", f'"id" must be a string or an integer, not {type(raw_id).__name__}'
        )
    else:
        command_id = str(raw_id)
        if not command_id or len(command_id) > MAX_COMMAND_ID_CHARS:
            raise CommandError(
                "bad_payload", f'"id" must be 1 to {MAX_COMMAND_ID_CHARS} characters long'
            )
    return Command(meter=meter, name=name, id=command_id, args=args, source="mqtt")


def command_id_of(payload: bytes) -> str | None:
    """The ``"id"`` of a payload that failed validation, when one can still be read."""
    try:
        document = msgspec.json.decode(payload)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        # A payload nested a thousand levels deep is an attack on the bridge, not a command.
        return None
    if isinstance(document, dict):
        raw = document.get("id")
        if isinstance(raw, str | int) and not isinstance(raw, bool):
            return str(raw)[:MAX_COMMAND_ID_CHARS]
    return None


def reply_payload(
    command_id: str | None,
    name: str,
    *,
    result: Mapping[str, Any] | None = None,
    error: CommandError | None = None,
) -> bytes:
    """``<base>/<meter>/reply``: ``{id, command, ok, result | error{code, message}}``."""
    if error is None:
        return encode(
            mqtt.CommandReply(id=command_id, command=name, ok=True, result=dict(result or {}))
        )
    return encode(
        mqtt.CommandReply(
            id=command_id,
            command=name,
            ok=False,
            error=mqtt.ReplyError(code=error.code, message=str(error)),
        )
    )


def _new_id() -> str:
    return uuid.uuid4().hex[:12]
