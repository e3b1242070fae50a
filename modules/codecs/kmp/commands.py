"""Kamstrup Meter Protocol (KMP): the commands a 382 answers, as requests and responses.

Sans-IO. The wire format (start/stop bytes, CRC, stuffing) is in ``frame``; register ids,
units and the KMP number format are in ``registers``; this module re-exports what a client
or an emulator needs.
"""

from __future__ import annotations

import struct
from binascii import crc_hqx
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import IntEnum
from typing import Any, ClassVar, Literal

from modules.codecs.errors import FrameError, IncompleteFrame
from modules.codecs.kmp.frame import (
    ACK,
    ANY_STUFFED,
    DEFAULT_ADDRESS,
    NAK,
    START_FROM_METER,
    START_TO_METER,
    STOP,
    Frame,
    FrameSplitter,
    crc16,
    decode_frame,
    encode_frame,
    stuff,
    unstuff,
)
from modules.codecs.kmp.registers import (
    CLOCK,
    DATE,
    REGISTERS,
    UNIT_HH_MM_SS,
    UNIT_YY_MM_DD,
    UNITS,
    combine_date_time,
    decode_number,
    encode_number,
    interpret,
    register_id,
)
from modules.codecs.records import Decoded, Record

__all__ = [
    "ACK",
    "DEFAULT_ADDRESS",
    "UNITS",
    "Ack",
    "Cid",
    "Frame",
    "FrameSplitter",
    "GetRegisterRequest",
    "GetRegisterResponse",
    "GetSerialNoRequest",
    "GetSerialNoResponse",
    "GetTypeRequest",
    "GetTypeResponse",
    "KmpDecoder",
    "KmpNak",
    "Message",
    "OtherMessage",
    "RegisterValue",
    "SetClockRequest",
    "crc16",
    "decode",
    "decode_frame",
    "decode_message",
    "decode_number",
    "encode",
    "encode_frame",
    "encode_number",
    "meter_time",
    "records",
    "stuff",
    "unstuff",
]

MAX_REGISTERS = 8


class KmpNak(FrameError):
    """The meter refused the request (a NAK byte instead of a reply); code "nak"."""

    def __init__(self, message: str, *, offset: int | None = None, code: str | None = None) -> None:
        # Given here: compiled with mypyc, a class attribute of this subclass would not
        # override FrameError's code.
        super().__init__(message, offset=offset, code=code or "nak")


class Cid(IntEnum):
    """KMP command ids (gertvdijk/PyKMP constants.py)."""

    GET_TYPE = 0x01
    GET_SERIAL_NO = 0x02
    SET_CLOCK = 0x09
    GET_REGISTER = 0x10
    PUT_REGISTER = 0x11
    GET_EVENT_STATUS = 0x9B
    CLEAR_EVENT_STATUS = 0x9C
    GET_LOG_TIME_PRESENT = 0xA0
    GET_LOG_PAST_PRESENT = 0xA1
    GET_LOG_ID_PRESENT = 0xA2
    GET_LOG_TIME_PAST = 0xA3


_COMMAND_NAMES: dict[int, str] = {
    Cid.GET_TYPE: "GetType",
    Cid.GET_SERIAL_NO: "GetSerialNo",
    Cid.SET_CLOCK: "SetClock",
    Cid.GET_REGISTER: "GetRegister",
    Cid.PUT_REGISTER: "PutRegister",
    Cid.GET_EVENT_STATUS: "GetEventStatus",
    Cid.CLEAR_EVENT_STATUS: "ClearEventStatus",
    Cid.GET_LOG_TIME_PRESENT: "GetLogTimePresent",
    Cid.GET_LOG_PAST_PRESENT: "GetLogPastPresent",
    Cid.GET_LOG_ID_PRESENT: "GetLogIdPresent",
    Cid.GET_LOG_TIME_PAST: "GetLogTimePast",
}

# The command ids as plain ints (what a message's ``cid`` gives): compared without an enum lookup.
_GET_TYPE, _GET_SERIAL_NO, _SET_CLOCK, _GET_REGISTER = (
    int(Cid.GET_TYPE),
    int(Cid.GET_SERIAL_NO),
    int(Cid.SET_CLOCK),
    int(Cid.GET_REGISTER),
)

# ---------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class GetTypeRequest:
    """Ask for the meter type and software revision."""

    @property
    def cid(self) -> int:
        """The command id."""
        return _GET_TYPE


@dataclass(frozen=True, slots=True)
class GetTypeResponse:
    """Meter type (16 bits) and software revision such as "F1" (None when unavailable)."""

    meter_type: int
    software_revision: str | None = None

    @property
    def cid(self) -> int:
        """The command id."""
        return _GET_TYPE


@dataclass(frozen=True, slots=True)
class GetSerialNoRequest:
    """Ask for the serial number."""

    @property
    def cid(self) -> int:
        """The command id."""
        return _GET_SERIAL_NO


@dataclass(frozen=True, slots=True)
class GetSerialNoResponse:
    """The meter's 32-bit serial number."""

    serial: int

    @property
    def cid(self) -> int:
        """The command id."""
        return _GET_SERIAL_NO


@dataclass(frozen=True, slots=True)
class GetRegisterRequest:
    """Ask for 1 to 8 registers by id (``of`` takes names too)."""

    registers: tuple[int, ...]

    @property
    def cid(self) -> int:
        """The command id."""
        return _GET_REGISTER

    def __post_init__(self) -> None:
        if not 1 <= len(self.registers) <= MAX_REGISTERS:
            raise ValueError(
                f"GetRegister takes 1 to {MAX_REGISTERS} registers, not {len(self.registers)}"
            )
        for register in self.registers:
            register_id(register)  # a bool or an id outside 0..65535 is refused

    @classmethod
    def of(cls, *registers: int | str) -> GetRegisterRequest:
        """A request for registers given by id or name (see ``kmp.registers.register_id``)."""
        return cls(tuple(register_id(register) for register in registers))


@dataclass(frozen=True, slots=True)
class RegisterValue:
    """One register in a GetRegister response; length is the mantissa size (None: shortest)."""

    register: int
    unit: int
    value: Decimal
    length: int | None = field(default=None, compare=False)

    @property
    def unit_name(self) -> str:
        """KMP's own name of the unit ("kWh", "yy:mm:dd", ...)."""
        return UNITS.get(self.unit, (f"unit {self.unit}", None, 1))[0]

    def reading(self) -> tuple[Decimal | int | str, str | None]:
        """The value as a record holds it: a number in its HA unit, or an ISO date/time text."""
        return interpret(self.unit, self.value, self.length)


@dataclass(frozen=True, slots=True)
class GetRegisterResponse:
    """The registers the meter knows, in its order; unknown ids are left out by the meter."""

    values: tuple[RegisterValue, ...]

    @property
    def cid(self) -> int:
        """The command id."""
        return _GET_REGISTER

    def get(self, register: int | str) -> RegisterValue | None:
        """The value of one register (by id or name), or None when the meter left it out."""
        wanted = register_id(register)
        return next((v for v in self.values if v.register == wanted), None)


@dataclass(frozen=True, slots=True)
class SetClockRequest:
    """Set the meter clock (local time); the meter answers ACK where its clock may be set.

    The public sources give no SetClock layout; we send time then date as two KMP values
    (unit hh:mm:ss, then yy:mm:dd), the form the meter reports them in registers 1002/1003.
    """

    at: datetime

    @property
    def cid(self) -> int:
        """The command id."""
        return _SET_CLOCK

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", self.at.replace(microsecond=0))


@dataclass(frozen=True, slots=True)
class Ack:
    """The one-byte application acknowledgement 0x06."""


@dataclass(frozen=True, slots=True)
class OtherMessage:
    """A command this codec carries but does not interpret (PutRegister, logs, events)."""

    to_meter: bool
    cid: int
    data: bytes = b""


Message = (
    GetTypeRequest
    | GetTypeResponse
    | GetSerialNoRequest
    | GetSerialNoResponse
    | GetRegisterRequest
    | GetRegisterResponse
    | SetClockRequest
    | Ack
    | OtherMessage
)


def encode(message: Message, *, address: int = DEFAULT_ADDRESS) -> bytes:
    """The physical bytes of a message (a request to the meter or a meter's response)."""
    if isinstance(message, Ack):
        return bytes((ACK,))
    if isinstance(message, OtherMessage):
        return encode_frame(Frame(message.to_meter, message.cid, message.data, address))
    to_meter = isinstance(
        message, GetTypeRequest | GetSerialNoRequest | GetRegisterRequest | SetClockRequest
    )
    return encode_frame(Frame(to_meter, message.cid, _encode_data(message), address))


def _encode_data(message: Message) -> bytes:
    if isinstance(message, GetTypeResponse):
        return message.meter_type.to_bytes(2, "big") + _encode_revision(message.software_revision)
    if isinstance(message, GetSerialNoResponse):
        return message.serial.to_bytes(4, "big")
    if isinstance(message, GetRegisterRequest):
        return bytes((len(message.registers),)) + b"".join(
            r.to_bytes(2, "big") for r in message.registers
        )
    if isinstance(message, GetRegisterResponse):
        return b"".join(
            v.register.to_bytes(2, "big")
            + bytes((v.unit,))
            + encode_number(v.value, length=v.length)
            for v in message.values
        )
    if isinstance(message, SetClockRequest):
        at = message.at
        clock = at.hour * 10000 + at.minute * 100 + at.second
        day = (at.year % 100) * 10000 + at.month * 100 + at.day
        return (
            bytes((UNIT_HH_MM_SS,))
            + encode_number(clock, length=4)
            + bytes((UNIT_YY_MM_DD,))
            + encode_number(day, length=4)
        )
    return b""


def _encode_revision(revision: str | None) -> bytes:
    if revision is None:
        return b"\x00\x00"
    letter, number = revision[:1], revision[1:]
    if not ("A" <= letter <= "Z" and number.isdigit() and int(number) <= 0xFF):
        raise ValueError(f"software revision {revision!r} is not a letter and a number 0..255")
    return bytes((ord(letter) - ord("A") + 1, int(number)))


def decode(raw: bytes) -> Message:
    """One physical frame, or the ACK byte, -> the message it carries."""
    if raw == bytes((ACK,)):
        return Ack()
    if raw == bytes((NAK,)):
        raise KmpNak("the meter answered NAK", offset=0)
    return decode_message(decode_frame(raw))


def decode_message(frame: Frame) -> Message:
    """The message a checked frame carries; its data must have the command's layout."""
    data, cid = frame.data, frame.cid
    if frame.to_meter:
        if cid in (Cid.GET_TYPE, Cid.GET_SERIAL_NO):
            _expect_length(cid, data, 0)
            return GetTypeRequest() if cid == Cid.GET_TYPE else GetSerialNoRequest()
        if cid == Cid.GET_REGISTER:
            return GetRegisterRequest(_register_ids(data))
        if cid == Cid.SET_CLOCK:
            return _decode_set_clock(data)
    else:
        if cid == Cid.GET_TYPE:
            _expect_length(cid, data, 4)
            return GetTypeResponse(int.from_bytes(data[:2], "big"), _decode_revision(data[2:]))
        if cid == Cid.GET_SERIAL_NO:
            _expect_length(cid, data, 4)
            return GetSerialNoResponse(int.from_bytes(data, "big"))
        if cid == Cid.GET_REGISTER:
            return GetRegisterResponse(
                tuple(
                    RegisterValue(register, unit, value, length=length)
                    for register, unit, value, length in _register_entries(data)
                )
            )
    return OtherMessage(frame.to_meter, cid, data)


_DATA_OFFSET = 3  # start, address, CID: where application data begins (before stuffing)


def _expect_length(cid: int, data: bytes, length: int) -> None:
    if len(data) != length:
        raise FrameError(
            f"{_command_name(cid)} carries {len(data)} data bytes, expected {length}",
            offset=_DATA_OFFSET,
            code="bad_length",
        )


def _decode_revision(data: bytes) -> str | None:
    if data == b"\x00\x00":
        return None
    if not 1 <= data[0] <= 26:
        raise FrameError(
            f"software revision letter {data[0]} is outside 1..26 (A..Z)", offset=_DATA_OFFSET + 2
        )
    return f"{chr(ord('A') + data[0] - 1)}{data[1]}"


def _register_ids(data: bytes) -> tuple[int, ...]:
    """The register ids of a GetRegister request's data."""
    if not data:
        raise FrameError(
            "GetRegister request without a count", offset=_DATA_OFFSET, code="bad_length"
        )
    count = data[0]
    if not 1 <= count <= MAX_REGISTERS:
        raise FrameError(
            f"GetRegister asks for {count} registers; 1 to {MAX_REGISTERS} allowed",
            offset=_DATA_OFFSET,
        )
    if len(data) != 1 + 2 * count:
        raise FrameError(
            f"GetRegister for {count} registers has {len(data) - 1} id bytes, expected {2 * count}",
            offset=_DATA_OFFSET + 1,
            code="bad_length",
        )
    return struct.unpack_from(_IDS[count], data, 1)


# ">H", ">HH", ...: the ids of a request for that many registers.
_IDS = tuple(f">{count}H" for count in range(MAX_REGISTERS + 1))


def _register_entries(data: bytes) -> list[tuple[int, int, Decimal, int]]:
    """(register, unit code, value, mantissa length) for each entry of a GetRegister response."""
    entries = []
    index = 0
    size = len(data)
    while index < size:
        if size - index < 5:
            raise FrameError(
                f"register entry cut short: {size - index} bytes",
                offset=_DATA_OFFSET + index,
                code="bad_length",
            )
        register = data[index] << 8 | data[index + 1]
        try:
            value, used = decode_number(data, index + 3)
        except FrameError as err:
            raise FrameError(
                f"register {register}: {err}", offset=_DATA_OFFSET + index, code=err.code
            ) from None
        entries.append((register, data[index + 2], value, data[index + 3]))
        index += 3 + used
    return entries


def _decode_set_clock(data: bytes) -> SetClockRequest:
    if len(data) < 2 or data[0] != UNIT_HH_MM_SS:
        raise FrameError("SetClock data does not start with hh:mm:ss", offset=_DATA_OFFSET)
    clock, used = decode_number(data, 1)
    index = 1 + used
    if len(data) < index + 3 or data[index] != UNIT_YY_MM_DD:
        raise FrameError("SetClock time is not followed by yy:mm:dd", offset=_DATA_OFFSET + index)
    day, used = decode_number(data, index + 1)
    if index + 1 + used != len(data):
        raise FrameError("bytes after the SetClock date", offset=_DATA_OFFSET + index + 1 + used)
    at = combine_date_time(day, clock)
    if at is None:
        raise FrameError(f"SetClock to an impossible time {day} {clock}", offset=_DATA_OFFSET)
    return SetClockRequest(at)


# ---------------------------------------------------------------- values, records, readings


def meter_time(response: GetRegisterResponse) -> datetime | None:
    """The meter's local clock from registers 1002 (hhmmss) and 1003 (YYMMDD), when both came."""
    clock, day = response.get(CLOCK), response.get(DATE)
    if clock is None or day is None:
        return None
    return combine_date_time(day.value, clock.value)


def records(response: GetRegisterResponse) -> list[Record]:
    """One record per register value, named and OBIS-coded from the register map."""
    return [_record(v.register, v.unit, v.value, v.length) for v in response.values]


def _record(register: int, unit: int, value: Decimal, length: int | None) -> Record:
    known = REGISTERS.get(register)
    reading, ha_unit = interpret(unit, value, length)
    return Record(
        known.name if known is not None else f"register_{register}",
        reading,
        ha_unit,
        known.obis if known is not None else None,
        raw={
            "register": register,
            "unit_code": unit,
            "unit": UNITS[unit][0] if unit in UNITS else f"unit {unit}",
            "number": str(value),
        },
    )


# ---------------------------------------------------------------- decode for the CLI


class KmpDecoder:
    """``meter-gateway decode kmp``: a request or a response (an echoed request first is fine)."""

    input_kind: ClassVar[Literal["hex", "text"]] = "hex"

    def decode(self, data: bytes, *, key: bytes | None, auth_key: bytes | None) -> Decoded:
        """Decode the last frame of the input; frames before it must be valid too."""
        del key, auth_key  # KMP is not encrypted
        last = len(data) - 1
        # The usual input is one whole frame: described straight from its link bytes. Anything
        # else, and any frame whose framing is wrong, takes the general path (which words
        # every framing error); a message-level error is the same on both paths.
        if last > 0 and data[0] in _STARTS and data.find(STOP, 1) == last:
            body = data[1:last]
            stuffed = ANY_STUFFED.search(body) is not None
            link = body
            if stuffed:
                try:
                    link = unstuff(body, offset=1)
                except FrameError:
                    link = b""
            if len(link) >= _LINK_MIN and not crc_hqx(link, 0):
                return _describe_link(data[0] == START_TO_METER, link, stuffed)
        return _decode_general(data)


_STARTS = (START_TO_METER, START_FROM_METER)
_LINK_MIN = 4  # address, CID and the two CRC bytes


def _decode_general(data: bytes) -> Decoded:
    """Any input: every frame decoded (errors at their offset in the whole input), the last
    one described."""
    if not data:
        raise IncompleteFrame("no bytes", offset=0)
    parts = []
    for base, raw in _split(data):
        try:
            parts.append(_decode_part(raw))
        except FrameError as err:
            raise _moved(err, base) from None
    frame = parts[-1][0]
    if frame is None:
        decoded = Decoded(protocol="kmp", frame={"name": "ACK", "direction": "from_meter"})
    else:
        link = bytes((frame.address, frame.cid)) + frame.data + frame.crc.to_bytes(2, "big")
        decoded = _describe_link(frame.to_meter, link, len(stuff(link)) != len(link))
    if len(parts) > 1:
        decoded.frame["preceding"] = [_name(message) for _, message in parts[:-1]]
    return decoded


def _split(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(offset, physical frame) for each frame in the input; the last may be cut short."""
    index = 0
    while index < len(data):
        if data[index] in (ACK, NAK):
            yield index, data[index : index + 1]
            index += 1
            continue
        stop = data.find(STOP, index + 1)
        end = len(data) if stop < 0 else stop + 1
        yield index, data[index:end]
        index = end


def _decode_part(raw: bytes) -> tuple[Frame | None, Message]:
    if raw in (bytes((ACK,)), bytes((NAK,))):
        return None, decode(raw)
    frame = decode_frame(raw)
    return frame, decode_message(frame)


def _moved(err: FrameError, base: int) -> FrameError:
    """The same error with its offset counted from the start of the whole input."""
    if not base or err.offset is None:
        return err
    message = str(err).removesuffix(f" (at byte {err.offset})")
    return type(err)(message, offset=err.offset + base, code=err.code)


def _command_name(cid: int) -> str:
    name = _COMMAND_NAMES.get(cid)  # Cid members hash as their ints
    return name if name is not None else f"CID 0x{cid:02X}"


def _name(message: Message) -> str:
    return "ACK" if isinstance(message, Ack) else _command_name(message.cid)


_KAMSTRUP: dict[str, Any] = {"manufacturer": "KAM"}


def _describe_link(to_meter: bool, link: bytes, stuffed: bool) -> Decoded:
    """What ``meter-gateway decode`` prints for one checked frame (link bytes: address, CID,
    data, CRC): the message is read from the data as ``decode_message`` reads it, with the
    same errors, but straight into the frame facts and records."""
    cid = link[1]
    data = link[2:-2]
    info: dict[str, Any] = {
        "direction": "to_meter" if to_meter else "from_meter",
        "start": "80" if to_meter else "40",
        "address": link[0],
        "cid": cid,
        "command": _command_name(cid),
        "data": data.hex().upper(),
        "crc": link[-2:].hex().upper(),
        "crc_ok": True,
        "stuffed": stuffed,
    }
    found: list[Record] = []
    if to_meter:
        meter: dict[str, Any] = {}
        if cid == _GET_REGISTER:
            info["registers"] = list(_register_ids(data))
        elif cid in (_GET_TYPE, _GET_SERIAL_NO):
            _expect_length(cid, data, 0)
        elif cid == _SET_CLOCK:
            info["clock"] = _decode_set_clock(data).at.isoformat()
        return Decoded("kmp", meter, info, found)
    meter = _KAMSTRUP.copy()
    if cid == _GET_REGISTER:
        entries = _register_entries(data)
        found = [_record(*entry) for entry in entries]
        info["register_count"] = len(entries)
        clock = day = None
        for register, _, value, _ in entries:
            if register == CLOCK and clock is None:
                clock = value
            elif register == DATE and day is None:
                day = value
        if clock is not None and day is not None:
            at = combine_date_time(day, clock)
            if at is not None:
                info["meter_time"] = at.isoformat()
    elif cid == _GET_SERIAL_NO:
        _expect_length(cid, data, 4)
        serial = int.from_bytes(data, "big")
        meter["id"] = str(serial)
        found = [Record("serial_number", str(serial), None, "0-0:96.1.0", raw={"serial": serial})]
    elif cid == _GET_TYPE:
        _expect_length(cid, data, 4)
        meter["type"] = int.from_bytes(data[:2], "big")
        meter["software_revision"] = _decode_revision(data[2:])
    return Decoded("kmp", meter, info, found)
