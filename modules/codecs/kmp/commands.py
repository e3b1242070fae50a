"""Kamstrup Meter Protocol (KMP): the commands a 382 answers, as requests and responses.

Sans-IO. The wire format (start/stop bytes, CRC, stuffing) is in ``frame``; register ids,
units and the KMP number format are in ``registers``; this module re-exports what a client
or an emulator needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import IntEnum
from typing import Any, ClassVar, Literal

from modules.codecs.errors import FrameError, IncompleteFrame
from modules.codecs.kmp.frame import (
    ACK,
    DEFAULT_ADDRESS,
    NAK,
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
    """The meter refused the request (a NAK byte instead of a reply)."""

    code = "nak"


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

# ---------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class GetTypeRequest:
    """Ask for the meter type and software revision."""

    cid: ClassVar[int] = Cid.GET_TYPE


@dataclass(frozen=True, slots=True)
class GetTypeResponse:
    """Meter type (16 bits) and software revision such as "F1" (None when unavailable)."""

    meter_type: int
    software_revision: str | None = None
    cid: ClassVar[int] = Cid.GET_TYPE


@dataclass(frozen=True, slots=True)
class GetSerialNoRequest:
    """Ask for the serial number."""

    cid: ClassVar[int] = Cid.GET_SERIAL_NO


@dataclass(frozen=True, slots=True)
class GetSerialNoResponse:
    """The meter's 32-bit serial number."""

    serial: int
    cid: ClassVar[int] = Cid.GET_SERIAL_NO


@dataclass(frozen=True, slots=True)
class GetRegisterRequest:
    """Ask for 1 to 8 registers by id (names accepted, see ``kmp.registers.register_id``)."""

    registers: tuple[int, ...]
    cid: ClassVar[int] = Cid.GET_REGISTER

    def __post_init__(self) -> None:
        ids = tuple(register_id(r) for r in self.registers)
        if not 1 <= len(ids) <= MAX_REGISTERS:
            raise ValueError(f"GetRegister takes 1 to {MAX_REGISTERS} registers, not {len(ids)}")
        object.__setattr__(self, "registers", ids)


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
    cid: ClassVar[int] = Cid.GET_REGISTER

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
    cid: ClassVar[int] = Cid.SET_CLOCK

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
    data = frame.data
    if frame.to_meter:
        if frame.cid in (Cid.GET_TYPE, Cid.GET_SERIAL_NO):
            _expect_length(frame, 0)
            return GetTypeRequest() if frame.cid == Cid.GET_TYPE else GetSerialNoRequest()
        if frame.cid == Cid.GET_REGISTER:
            return _decode_register_request(data)
        if frame.cid == Cid.SET_CLOCK:
            return _decode_set_clock(data)
    else:
        if frame.cid == Cid.GET_TYPE:
            _expect_length(frame, 4)
            return GetTypeResponse(int.from_bytes(data[:2], "big"), _decode_revision(data[2:]))
        if frame.cid == Cid.GET_SERIAL_NO:
            _expect_length(frame, 4)
            return GetSerialNoResponse(int.from_bytes(data, "big"))
        if frame.cid == Cid.GET_REGISTER:
            return GetRegisterResponse(tuple(_decode_register_values(data)))
    return OtherMessage(frame.to_meter, frame.cid, data)


_DATA_OFFSET = 3  # start, address, CID: where application data begins (before stuffing)


def _expect_length(frame: Frame, length: int) -> None:
    if len(frame.data) != length:
        raise FrameError(
            f"{_command_name(frame.cid)} carries {len(frame.data)} data bytes, expected {length}",
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


def _decode_register_request(data: bytes) -> GetRegisterRequest:
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
    ids = tuple(int.from_bytes(data[1 + 2 * i : 3 + 2 * i], "big") for i in range(count))
    return GetRegisterRequest(ids)


def _decode_register_values(data: bytes) -> Iterator[RegisterValue]:
    index = 0
    while index < len(data):
        if len(data) - index < 5:
            raise FrameError(
                f"register entry cut short: {len(data) - index} bytes",
                offset=_DATA_OFFSET + index,
                code="bad_length",
            )
        register = int.from_bytes(data[index : index + 2], "big")
        unit = data[index + 2]
        try:
            value, used = decode_number(data, index + 3)
        except FrameError as err:
            raise FrameError(
                f"register {register}: {err}", offset=_DATA_OFFSET + index, code=err.code
            ) from None
        yield RegisterValue(register, unit, value, length=data[index + 3])
        index += 3 + used


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
    out = []
    for item in response.values:
        known = REGISTERS.get(item.register)
        value, unit = item.reading()
        out.append(
            Record(
                name=known.name if known else f"register_{item.register}",
                value=value,
                unit=unit,
                obis=known.obis if known else None,
                raw={
                    "register": item.register,
                    "unit_code": item.unit,
                    "unit": item.unit_name,
                    "number": str(item.value),
                },
            )
        )
    return out


# ---------------------------------------------------------------- decode for the CLI


class KmpDecoder:
    """``meter-gateway decode kmp``: a request or a response (an echoed request first is fine)."""

    input_kind: ClassVar[Literal["hex", "text"]] = "hex"

    def decode(self, data: bytes, *, key: bytes | None, auth_key: bytes | None) -> Decoded:
        """Decode the last frame of the input; frames before it must be valid too."""
        del key, auth_key  # KMP is not encrypted
        if not data:
            raise IncompleteFrame("no bytes", offset=0)
        parts = []
        for base, raw in _split(data):
            try:
                parts.append(_decode_part(raw))
            except FrameError as err:
                raise _moved(err, base) from None
        decoded = _describe(*parts[-1])
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


def _describe(frame: Frame | None, message: Message) -> Decoded:
    if frame is None:
        return Decoded(protocol="kmp", frame={"name": "ACK", "direction": "from_meter"})
    crc = frame.crc
    link = bytes((frame.address, frame.cid)) + frame.data + crc.to_bytes(2, "big")
    info: dict[str, Any] = {
        "direction": "to_meter" if frame.to_meter else "from_meter",
        "start": "80" if frame.to_meter else "40",
        "address": frame.address,
        "cid": frame.cid,
        "command": _name(message),
        "data": frame.data.hex().upper(),
        "crc": f"{crc:04X}",
        "crc_ok": True,
        "stuffed": len(stuff(link)) != len(link),
    }
    meter: dict[str, Any] = {} if frame.to_meter else {"manufacturer": "KAM"}
    found: list[Record] = []
    if isinstance(message, GetRegisterRequest):
        info["registers"] = list(message.registers)
    elif isinstance(message, GetRegisterResponse):
        found = records(message)
        info["register_count"] = len(message.values)
        if (clock := meter_time(message)) is not None:
            info["meter_time"] = clock.isoformat()
    elif isinstance(message, GetSerialNoResponse):
        meter["id"] = str(message.serial)
        found = [
            Record(
                name="serial_number",
                value=str(message.serial),
                obis="0-0:96.1.0",
                raw={"serial": message.serial},
            )
        ]
    elif isinstance(message, GetTypeResponse):
        meter["type"] = message.meter_type
        meter["software_revision"] = message.software_revision
    elif isinstance(message, SetClockRequest):
        info["clock"] = message.at.isoformat()
    return Decoded(protocol="kmp", meter=meter, frame=info, records=found)
