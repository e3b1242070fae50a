"""Kamstrup Meter Protocol (KMP): frames, the KMP number format and the 382's commands.

Sans-IO. A physical frame is ``start | DST CID DATA CRC | 0x0D``: start 0x80 to the meter,
0x40 from it; CRC-16/XMODEM (poly 0x1021, init 0) over DST..DATA, big-endian; then every
byte of DST..CRC that is one of 06 0D 1B 40 80 is sent as ``1B, byte ^ FF``. A command the
meter accepts without data is answered by the single byte 0x06.
See ../shared/reference/dlms-kmp-dsmr.md, section 1.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from enum import IntEnum
from typing import Any, ClassVar, Literal

from gateway.decoding import Decoded, Record
from gateway.errors import ChecksumError, FrameError, IncompleteFrame
from gateway.model import Reading
from modules.codecs.kmp_registers import CLOCK, DATE, REGISTERS, register_id

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
    "readings",
    "records",
    "stuff",
    "unstuff",
]

START_TO_METER = 0x80
START_FROM_METER = 0x40
STOP = 0x0D
ACK = 0x06
NAK = 0x15
ESCAPE = 0x1B
_STUFFED = frozenset({ACK, STOP, ESCAPE, START_FROM_METER, START_TO_METER})
DEFAULT_ADDRESS = 0x3F  # the meter itself; 0x7F/0xBF are the top/base loggers
MAX_REGISTERS = 8
_EXPONENT_MAX = 0x3F
# Longest frame a meter can send: 8 registers with 255-byte mantissas, every byte stuffed.
MAX_FRAME_BYTES = 2 + 2 * (2 + 8 * (5 + 255) + 2)


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


_COMMAND_NAMES = {
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

# KMP unit code -> (KMP's own name, Home Assistant unit or None, factor to that unit).
# Identical in bsdphk/PyKamstrup, golles/ha-kamstrup_403, PyKMP and ESPHome, except that
# PyKMP (checked against the Kamstrup document) reads 21 as W and 25 as var.
UNITS: dict[int, tuple[str, str | None, int]] = {
    0: ("number", None, 1),
    1: ("Wh", "Wh", 1),
    2: ("kWh", "kWh", 1),
    3: ("MWh", "MWh", 1),
    4: ("GWh", "GWh", 1),
    5: ("J", "J", 1),
    6: ("kJ", "kJ", 1),
    7: ("MJ", "MJ", 1),
    8: ("GJ", "GJ", 1),
    9: ("Cal", "cal", 1),
    10: ("kCal", "kcal", 1),
    11: ("Mcal", "Mcal", 1),
    12: ("Gcal", "Gcal", 1),
    13: ("varh", "varh", 1),
    14: ("kvarh", "kvarh", 1),
    15: ("Mvarh", "Mvarh", 1),
    16: ("Gvarh", "Gvarh", 1),
    17: ("VAh", "VAh", 1),
    18: ("kVAh", "kVAh", 1),
    19: ("MVAh", "MVAh", 1),
    20: ("GVAh", "GVAh", 1),
    21: ("W", "W", 1),
    22: ("kW", "kW", 1),
    23: ("MW", "MW", 1),
    24: ("GW", "GW", 1),
    25: ("var", "var", 1),
    26: ("kvar", "kvar", 1),
    27: ("Mvar", "Mvar", 1),
    28: ("Gvar", "Gvar", 1),
    29: ("VA", "VA", 1),
    30: ("kVA", "kVA", 1),
    31: ("MVA", "MVA", 1),
    32: ("GVA", "GVA", 1),
    33: ("V", "V", 1),
    34: ("A", "A", 1),
    35: ("kV", "kV", 1),
    36: ("kA", "kA", 1),
    37: ("°C", "°C", 1),
    38: ("K", "K", 1),
    39: ("l", "L", 1),
    40: ("m³", "m³", 1),
    41: ("l/h", "L/h", 1),
    42: ("m³/h", "m³/h", 1),
    43: ("m³×°C", "m³·°C", 1),
    44: ("ton", "t", 1),
    45: ("ton/h", "t/h", 1),
    46: ("h", "h", 1),
    47: ("hh:mm:ss", None, 1),
    48: ("yy:mm:dd", None, 1),
    49: ("yyyy:mm:dd", None, 1),
    50: ("mm:dd", None, 1),
    51: ("number", None, 1),
    52: ("bar", "bar", 1),
    53: ("RTC", None, 1),
    54: ("ASCII", None, 1),
    55: ("m³×10", "m³", 10),
    56: ("ton×10", "t", 10),
    57: ("GJ×10", "GJ", 10),
    58: ("minutes", "min", 1),
    59: ("bitfield", None, 1),
    60: ("s", "s", 1),
    61: ("ms", "ms", 1),
    62: ("days", "d", 1),
    63: ("RTC-Q", None, 1),
    64: ("date-time", None, 1),
    65: ("imp/l", "imp/L", 1),
    66: ("l/imp", "L/imp", 1),
    85: ("%RH", "%", 1),
    86: ("%O₂", "%", 1),
    87: ("m/s", "m/s", 1),
    88: ("kJ/kg", "kJ/kg", 1),
    89: ("pH", "pH", 1),
    90: ("g/kg", "g/kg", 1),
}
_UNIT_HH_MM_SS, _UNIT_YY_MM_DD, _UNIT_YYYY_MM_DD, _UNIT_MM_DD, _UNIT_ASCII = 47, 48, 49, 50, 54


# ---------------------------------------------------------------- data link layer


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = (crc << 1) ^ 0x1021 if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data: bytes) -> int:
    """CRC-16/XMODEM (CCITT poly 0x1021, init 0); over data plus its CRC it is 0."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC_TABLE[(crc >> 8) ^ byte]
    return crc


def stuff(link: bytes) -> bytes:
    """Escape the bytes that would read as start, stop, ACK or escape."""
    out = bytearray()
    for byte in link:
        if byte in _STUFFED:
            out += bytes((ESCAPE, byte ^ 0xFF))
        else:
            out.append(byte)
    return bytes(out)


def unstuff(body: bytes, *, offset: int = 0) -> bytes:
    """Undo the byte stuffing; ``offset`` is where ``body`` starts in the frame (for errors)."""
    out = bytearray()
    index = 0
    while index < len(body):
        byte = body[index]
        if byte == ESCAPE:
            if index + 1 >= len(body):
                raise FrameError(
                    "escape byte 0x1B with nothing after it",
                    offset=offset + index,
                    code="bad_stuffing",
                )
            plain = body[index + 1] ^ 0xFF
            if plain not in _STUFFED:
                raise FrameError(
                    f"escape 0x1B then 0x{body[index + 1]:02X}, which stands for no reserved byte",
                    offset=offset + index,
                    code="bad_stuffing",
                )
            out.append(plain)
            index += 2
            continue
        if byte in _STUFFED:
            raise FrameError(
                f"reserved byte 0x{byte:02X} inside the frame was not stuffed",
                offset=offset + index,
                code="bad_stuffing",
            )
        out.append(byte)
        index += 1
    return bytes(out)


@dataclass(frozen=True, slots=True)
class Frame:
    """One data-link frame: direction, destination address, command id and application data."""

    to_meter: bool
    cid: int
    data: bytes = b""
    address: int = DEFAULT_ADDRESS

    @property
    def crc(self) -> int:
        """The CRC this frame carries."""
        return crc16(bytes((self.address, self.cid)) + self.data)


def encode_frame(frame: Frame) -> bytes:
    """The physical bytes of a frame: start, stuffed link bytes with CRC, stop."""
    link = bytes((frame.address, frame.cid)) + frame.data
    link += crc16(link).to_bytes(2, "big")
    start = START_TO_METER if frame.to_meter else START_FROM_METER
    return bytes((start,)) + stuff(link) + bytes((STOP,))


def decode_frame(raw: bytes) -> Frame:
    """One physical frame (start byte to stop byte) -> Frame; checks stuffing and CRC."""
    if not raw:
        raise IncompleteFrame("no bytes", offset=0)
    if raw[0] not in (START_TO_METER, START_FROM_METER):
        raise FrameError(f"start byte 0x{raw[0]:02X} is neither 0x80 nor 0x40", offset=0)
    stop = raw.find(STOP, 1)
    if stop < 0:
        raise IncompleteFrame("no stop byte 0x0D", offset=len(raw))
    if stop != len(raw) - 1:
        raise FrameError("bytes after the stop byte", offset=stop + 1)
    link = unstuff(raw[1:stop], offset=1)
    if len(link) < 4:
        raise IncompleteFrame(
            f"{len(link)} link bytes; a frame has at least address, CID and CRC", offset=stop
        )
    if crc16(link) != 0:
        given = int.from_bytes(link[-2:], "big")
        expected = crc16(link[:-2])
        raise ChecksumError(f"CRC {given:04X}, computed {expected:04X}", offset=stop - 2)
    return Frame(to_meter=raw[0] == START_TO_METER, address=link[0], cid=link[1], data=link[2:-2])


class FrameSplitter:
    """Cuts a byte stream into physical frames; skips noise and keeps partial frames."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> list[bytes]:
        """Every complete frame (or ACK/NAK byte) in the stream so far, in order."""
        self._buffer += chunk
        frames: list[bytes] = []
        while self._buffer:
            first = self._buffer[0]
            if first in (ACK, NAK):
                frames.append(bytes(self._buffer[:1]))
                del self._buffer[:1]
                continue
            if first not in (START_TO_METER, START_FROM_METER):
                del self._buffer[:1]  # line noise between frames
                continue
            # A new start byte inside a frame means the frame before it was cut off.
            end = next(
                (
                    i
                    for i in range(1, len(self._buffer))
                    if self._buffer[i] in (STOP, START_TO_METER, START_FROM_METER)
                ),
                -1,
            )
            if end < 0:
                if len(self._buffer) > MAX_FRAME_BYTES:
                    self._buffer.clear()
                break
            if self._buffer[end] != STOP:
                del self._buffer[:end]
                continue
            frames.append(bytes(self._buffer[: end + 1]))
            del self._buffer[: end + 1]
        return frames


# ---------------------------------------------------------------- the KMP number format


def decode_number(data: bytes, offset: int = 0) -> tuple[Decimal, int]:
    """A KMP number ``len | SI SE e5..e0 | mantissa`` at offset -> (exact value, bytes used)."""
    if len(data) < offset + 2:
        raise FrameError("number header cut short", offset=offset, code="bad_length")
    length, sign_exp = data[offset], data[offset + 1]
    if length == 0:
        raise FrameError("number with a 0-byte mantissa", offset=offset, code="bad_length")
    end = offset + 2 + length
    if len(data) < end:
        raise FrameError(
            f"number needs {length} mantissa bytes, {len(data) - offset - 2} left",
            offset=offset,
            code="bad_length",
        )
    mantissa = int.from_bytes(data[offset + 2 : end], "big")
    return _number(mantissa, sign_exp), end - offset


def _number(mantissa: int, sign_exp: int) -> Decimal:
    exponent = sign_exp & _EXPONENT_MAX
    if sign_exp & 0x40:
        exponent = -exponent
    digits = tuple(int(digit) for digit in str(mantissa))
    return Decimal((1 if sign_exp & 0x80 else 0, digits, exponent))


def encode_number(value: Decimal | int, *, length: int | None = None) -> bytes:
    """``len | SI SE exp | mantissa`` for a value; the shortest mantissa unless length is given."""
    sign, digit_tuple, raw_exponent = Decimal(value).as_tuple()
    if not isinstance(raw_exponent, int):
        raise ValueError(f"KMP cannot carry {value}")
    exponent = raw_exponent
    mantissa = int("".join(map(str, digit_tuple)) or "0")
    while exponent > _EXPONENT_MAX:
        mantissa, exponent = mantissa * 10, exponent - 1
    # Trailing zeros move into the exponent when the exponent or the mantissa length asks for it.
    while (
        mantissa
        and mantissa % 10 == 0
        and (exponent < -_EXPONENT_MAX or _too_long(mantissa, length))
    ):
        mantissa, exponent = mantissa // 10, exponent + 1
    if mantissa == 0:
        exponent = max(exponent, -_EXPONENT_MAX)
    if exponent < -_EXPONENT_MAX:
        raise ValueError(f"{value} needs an exponent below -63")
    size = max(1, (mantissa.bit_length() + 7) // 8) if length is None else length
    if _too_long(mantissa, size) or not 1 <= size <= 0xFF:
        raise ValueError(f"{value} does not fit a {size}-byte mantissa")
    sign_exp = (0x80 if sign else 0) | (0x40 if exponent < 0 else 0) | abs(exponent)
    return bytes((size, sign_exp)) + mantissa.to_bytes(size, "big")


def _too_long(mantissa: int, length: int | None) -> bool:
    return length is not None and mantissa.bit_length() > 8 * length


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
    """Ask for 1 to 8 registers by id (names accepted, see kmp_registers.register_id)."""

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
        return _interpret(self.unit, self.value, self.length)


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
            bytes((_UNIT_HH_MM_SS,))
            + encode_number(clock, length=4)
            + bytes((_UNIT_YY_MM_DD,))
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
    if len(data) < 2 or data[0] != _UNIT_HH_MM_SS:
        raise FrameError("SetClock data does not start with hh:mm:ss", offset=_DATA_OFFSET)
    clock, used = decode_number(data, 1)
    index = 1 + used
    if len(data) < index + 3 or data[index] != _UNIT_YY_MM_DD:
        raise FrameError("SetClock time is not followed by yy:mm:dd", offset=_DATA_OFFSET + index)
    day, used = decode_number(data, index + 1)
    if index + 1 + used != len(data):
        raise FrameError("bytes after the SetClock date", offset=_DATA_OFFSET + index + 1 + used)
    at = _combine(day, clock)
    if at is None:
        raise FrameError(f"SetClock to an impossible time {day} {clock}", offset=_DATA_OFFSET)
    return SetClockRequest(at)


# ---------------------------------------------------------------- values, records, readings


def _interpret(
    unit: int, number: Decimal, length: int | None
) -> tuple[Decimal | int | str, str | None]:
    _, ha_unit, factor = UNITS.get(unit, ("", None, 1))
    whole = int(number) if number == number.to_integral_value() else None
    if whole is not None and whole >= 0:
        if unit == _UNIT_YY_MM_DD and (day := _date(2000 + whole // 10000, whole)) is not None:
            return day.isoformat(), None
        if unit == _UNIT_YYYY_MM_DD and (day := _date(whole // 10000, whole)) is not None:
            return day.isoformat(), None
        if unit == _UNIT_MM_DD and (day := _date(2000, whole)) is not None:
            return f"--{day:%m-%d}", None
        if unit == _UNIT_HH_MM_SS and (clock := _time(whole)) is not None:
            return clock.isoformat(), None
        if unit == _UNIT_ASCII and whole:
            text = whole.to_bytes(max(length or 0, (whole.bit_length() + 7) // 8), "big")
            if all(32 <= b < 127 or b == 0 for b in text):
                return text.replace(b"\x00", b"").decode("ascii").strip(), None
    return (number * factor if factor != 1 else number), ha_unit


def _date(year: int, whole: int) -> date | None:
    try:
        return date(year, whole // 100 % 100, whole % 100)
    except ValueError:
        return None


def _time(whole: int) -> time | None:
    try:
        return time(whole // 10000, whole // 100 % 100, whole % 100)
    except ValueError:
        return None


def _combine(day: Decimal, clock: Decimal) -> datetime | None:
    if day != day.to_integral_value() or clock != clock.to_integral_value() or day < 0 or clock < 0:
        return None
    on, at = _date(2000 + int(day) // 10000, int(day)), _time(int(clock))
    return datetime.combine(on, at) if on is not None and at is not None else None


def meter_time(response: GetRegisterResponse) -> datetime | None:
    """The meter's local clock from registers 1002 (hhmmss) and 1003 (YYMMDD), when both came."""
    clock, day = response.get(CLOCK), response.get(DATE)
    if clock is None or day is None:
        return None
    return _combine(day.value, clock.value)


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


def readings(response: GetRegisterResponse) -> tuple[Reading, ...]:
    """Engine readings from a response; a high-resolution register wins over its low copy."""
    chosen: dict[str, tuple[bool, Reading]] = {}
    for item in response.values:
        known = REGISTERS.get(item.register)
        value, unit = item.reading()
        key = (known.obis or known.name) if known else f"kmp_register_{item.register}"
        hires = bool(known and known.hires)
        if key in chosen and chosen[key][0] and not hires:
            continue
        chosen[key] = (hires, Reading(obis=key, value=value, unit=unit))
    return tuple(reading for _, reading in chosen.values())


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
    try:
        return _COMMAND_NAMES[Cid(cid)]
    except ValueError:
        return f"CID 0x{cid:02X}"


def _name(message: Message) -> str:
    return "ACK" if isinstance(message, Ack) else _command_name(message.cid)


def _describe(frame: Frame | None, message: Message) -> Decoded:
    if frame is None:
        return Decoded(protocol="kmp", frame={"name": "ACK", "direction": "from_meter"})
    physical = encode_frame(frame)
    info: dict[str, Any] = {
        "direction": "to_meter" if frame.to_meter else "from_meter",
        "start": f"{physical[0]:02X}",
        "address": frame.address,
        "cid": frame.cid,
        "command": _name(message),
        "data": frame.data.hex().upper(),
        "crc": f"{frame.crc:04X}",
        "crc_ok": True,
        "stuffed": len(physical) != len(frame.data) + 6,
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
