"""A-XDR encoding of COSEM ``Data`` (IEC 62056-6-2 / Green Book 9.3.7) and COSEM date-time.

``Data`` keeps the wire tag next to the value because the vendor push layouts are told apart
by types (uint16 voltage vs uint32 power, visible-string vs octet-string), not only by values.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, NamedTuple

from modules.codecs.errors import FrameError, IncompleteFrame

__all__ = [
    "ARRAY",
    "BIT_STRING",
    "BOOLEAN",
    "DATE",
    "DATE_TIME",
    "DOUBLE_LONG",
    "DOUBLE_LONG_UNSIGNED",
    "ENUM",
    "FLOAT32",
    "FLOAT64",
    "INTEGER",
    "LONG",
    "LONG64",
    "LONG64_UNSIGNED",
    "LONG_UNSIGNED",
    "NULL",
    "OCTET_STRING",
    "STRUCTURE",
    "TIME",
    "UNSIGNED",
    "UTF8_STRING",
    "VISIBLE_STRING",
    "CosemDateTime",
    "Data",
    "Reader",
    "decode_data",
    "encode_data",
    "encode_length",
    "obis_text",
]

NULL = 0x00
ARRAY = 0x01
STRUCTURE = 0x02
BOOLEAN = 0x03
BIT_STRING = 0x04
DOUBLE_LONG = 0x05
DOUBLE_LONG_UNSIGNED = 0x06
OCTET_STRING = 0x09
VISIBLE_STRING = 0x0A
UTF8_STRING = 0x0C
BCD = 0x0D
INTEGER = 0x0F
LONG = 0x10
UNSIGNED = 0x11
LONG_UNSIGNED = 0x12
COMPACT_ARRAY = 0x13
LONG64 = 0x14
LONG64_UNSIGNED = 0x15
ENUM = 0x16
FLOAT32 = 0x17
FLOAT64 = 0x18
DATE_TIME = 0x19
DATE = 0x1A
TIME = 0x1B

# Fixed-size integer and float types: tag -> struct format (big-endian, Green Book 9.3.7).
_FIXED: dict[int, str] = {
    BOOLEAN: ">B",
    DOUBLE_LONG: ">i",
    DOUBLE_LONG_UNSIGNED: ">I",
    BCD: ">b",
    INTEGER: ">b",
    LONG: ">h",
    UNSIGNED: ">B",
    LONG_UNSIGNED: ">H",
    LONG64: ">q",
    LONG64_UNSIGNED: ">Q",
    ENUM: ">B",
    FLOAT32: ">f",
    FLOAT64: ">d",
}
_FIXED_OCTETS: dict[int, int] = {DATE_TIME: 12, DATE: 5, TIME: 4}
_LENGTH_ONE_BYTE_MAX = 0x7F
_MAX_DEVIATION_MIN = 840  # UTC+14 is the farthest time zone
# A Data tree nested deeper than this is not a meter push but garbage; stop before recursion does.
_MAX_DEPTH = 16

Value = None | bool | int | float | bytes | str | tuple["Data", ...] | tuple[bytes, int]


class Data(NamedTuple):
    """One A-XDR value with its type tag; structures and arrays hold a tuple of Data.

    A named tuple, not a dataclass: a push makes dozens of them, and a tuple is the cheapest
    immutable record Python has.
    """

    tag: int
    value: Value

    @property
    def items(self) -> tuple[Data, ...]:
        """The elements of a structure or array (empty for anything else)."""
        if self.tag in (STRUCTURE, ARRAY) and isinstance(self.value, tuple):
            return tuple(item for item in self.value if isinstance(item, Data))
        return ()

    @property
    def is_number(self) -> bool:
        """True for the integer, enum and float types (not bool)."""
        return self.tag in _FIXED and self.tag != BOOLEAN

    def to_json(self) -> Any:
        """A JSON-friendly form: numbers, text, hex for octets, lists for structures."""
        if self.tag in (STRUCTURE, ARRAY):
            return [item.to_json() for item in self.items]
        if isinstance(self.value, bytes):
            return self.value.hex()
        if self.tag == BIT_STRING and isinstance(self.value, tuple):
            octets, bits = self.value
            return {"bits": bits, "hex": octets.hex() if isinstance(octets, bytes) else ""}
        return self.value


class Reader:
    """A cursor over bytes whose reads raise ``IncompleteFrame`` with the byte offset."""

    __slots__ = ("base", "data", "pos")

    def __init__(self, data: bytes, pos: int = 0, *, base: int = 0) -> None:
        self.data = data
        self.pos = pos
        self.base = base  # offset of data[0] in the caller's input, for error messages

    @property
    def remaining(self) -> int:
        """Bytes not read yet."""
        return len(self.data) - self.pos

    def take(self, count: int, what: str) -> bytes:
        """The next ``count`` bytes."""
        if count < 0 or self.pos + count > len(self.data):
            raise IncompleteFrame(
                f"{what}: needs {count} bytes, {max(self.remaining, 0)} left",
                offset=self.base + self.pos,
            )
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def byte(self, what: str) -> int:
        """The next byte."""
        return self.take(1, what)[0]

    def peek(self) -> int | None:
        """The next byte without consuming it, or None at the end."""
        return self.data[self.pos] if self.pos < len(self.data) else None

    def length(self, what: str) -> int:
        """An A-XDR length: one byte below 0x80, else 0x8N followed by N big-endian bytes."""
        first = self.byte(what)
        if first <= _LENGTH_ONE_BYTE_MAX:
            return first
        size = first & 0x7F
        if size == 0 or size > 4:
            raise FrameError(
                f"{what}: length form 0x{first:02x} is not valid",
                offset=self.base + self.pos - 1,
                code="bad_frame",
            )
        return int.from_bytes(self.take(size, what), "big")


def encode_length(length: int) -> bytes:
    """An A-XDR length field."""
    if length <= _LENGTH_ONE_BYTE_MAX:
        return bytes([length])
    size = (length.bit_length() + 7) // 8
    return bytes([0x80 | size]) + length.to_bytes(size, "big")


# The same as compiled structs: a push is mostly numbers.
_FIXED_STRUCTS = {tag: struct.Struct(fmt) for tag, fmt in _FIXED.items()}


def decode_data(reader: Reader, depth: int = 0) -> Data:
    """Read one tagged A-XDR Data value."""
    if depth > _MAX_DEPTH:
        raise FrameError("Data nested too deeply", offset=reader.base + reader.pos)
    data, start = reader.data, reader.pos
    if start < len(data):
        # Numbers, and strings with a one-byte length, read straight from the buffer.
        tag = data[start]
        fixed = _FIXED_STRUCTS.get(tag)
        if fixed is not None:
            end = start + 1 + fixed.size
            if end <= len(data):
                (number,) = fixed.unpack_from(data, start + 1)
                reader.pos = end
                return Data(tag, bool(number) if tag == BOOLEAN else number)
        elif tag == OCTET_STRING and start + 1 < len(data):
            end = start + 2 + data[start + 1]
            if data[start + 1] <= _LENGTH_ONE_BYTE_MAX and end <= len(data):
                reader.pos = end
                return Data(tag, data[start + 2 : end])
    tag = reader.byte("data tag")
    if tag == NULL:
        return Data(NULL, None)
    if tag in (ARRAY, STRUCTURE):
        count = reader.length("element count")
        if count > reader.remaining:
            raise IncompleteFrame(
                f"{count} elements announced, {reader.remaining} bytes left",
                offset=reader.base + start,
            )
        return Data(tag, tuple([decode_data(reader, depth + 1) for _ in range(count)]))
    if tag in _FIXED:
        fmt = _FIXED[tag]
        (number,) = struct.unpack(fmt, reader.take(struct.calcsize(fmt), "number"))
        return Data(tag, bool(number) if tag == BOOLEAN else number)
    if tag in (OCTET_STRING, VISIBLE_STRING, UTF8_STRING):
        raw = reader.take(reader.length("string length"), "string")
        if tag == OCTET_STRING:
            return Data(tag, raw)
        if tag == UTF8_STRING:
            return Data(tag, raw.decode("utf-8", errors="replace"))
        return Data(tag, raw.decode("latin-1"))
    if tag == BIT_STRING:
        bits = reader.length("bit-string length")
        return Data(tag, (reader.take((bits + 7) // 8, "bit-string"), bits))
    if tag in _FIXED_OCTETS:
        return Data(tag, reader.take(_FIXED_OCTETS[tag], "date/time"))
    raise FrameError(
        f"A-XDR type tag 0x{tag:02x} is not supported",
        offset=reader.base + start,
        code="unsupported",
    )


def encode_data(data: Data) -> bytes:
    """The A-XDR bytes of a Data value (inverse of ``decode_data``)."""
    tag, value = data.tag, data.value
    if tag == NULL:
        return b"\x00"
    if tag in (ARRAY, STRUCTURE):
        items = data.items
        return bytes([tag]) + encode_length(len(items)) + b"".join(encode_data(i) for i in items)
    if tag in _FIXED:
        number = int(value) if isinstance(value, bool) else value
        return bytes([tag]) + struct.pack(_FIXED[tag], number)
    if tag in (OCTET_STRING, VISIBLE_STRING, UTF8_STRING):
        if isinstance(value, str):
            raw = value.encode("utf-8" if tag == UTF8_STRING else "latin-1")
        elif isinstance(value, bytes):
            raw = value
        else:
            raise TypeError(f"string Data needs str or bytes, not {type(value).__name__}")
        return bytes([tag]) + encode_length(len(raw)) + raw
    if tag == BIT_STRING and isinstance(value, tuple):
        octets, bits = value
        if not isinstance(octets, bytes) or not isinstance(bits, int):
            raise TypeError("bit-string Data needs (bytes, bit count)")
        return bytes([tag]) + encode_length(bits) + octets
    if tag in _FIXED_OCTETS and isinstance(value, bytes):
        return bytes([tag]) + value
    raise TypeError(f"cannot encode Data tag 0x{tag:02x} with {value!r}")


def obis_text(code: bytes) -> str:
    """``A-B:C.D.E`` from 6 logical-name bytes, with ``*F`` only when F is not 255."""
    return _obis_text(bytes(code))


# A meter pushes the same logical names every time: each is written out once.
@lru_cache(maxsize=1024)
def _obis_text(code: bytes) -> str:
    a, b, c, d, e, f = code
    text = f"{a}-{b}:{c}.{d}.{e}"
    return text if f == 255 else f"{text}*{f}"


@dataclass(frozen=True, slots=True)
class CosemDateTime:
    """A COSEM date-time (Blue Book 4.1.6.1): wall clock plus deviation and clock status."""

    year: int
    month: int
    day: int
    hour: int
    minute: int
    second: int
    hundredths: int
    deviation: int | None  # minutes, local = UTC - deviation; None when unspecified (0x8000)
    status: int
    day_of_week: int

    @classmethod
    def parse(cls, raw: bytes) -> CosemDateTime:
        """Read 12 octets (raises ValueError on any other length)."""
        if len(raw) != 12:
            raise ValueError(f"a COSEM date-time is 12 octets, not {len(raw)}")
        year, month, day, dow, hour, minute, second, hundredths, deviation, status = struct.unpack(
            ">HBBBBBBBhB", raw
        )
        return cls(
            year,
            month,
            day,
            hour,
            minute,
            second,
            hundredths,
            None if deviation == -0x8000 else deviation,
            status,
            dow,
        )

    def to_bytes(self) -> bytes:
        """The 12 wire octets."""
        deviation = -0x8000 if self.deviation is None else self.deviation
        return struct.pack(
            ">HBBBBBBBhB",
            self.year,
            self.month,
            self.day,
            self.day_of_week,
            self.hour,
            self.minute,
            self.second,
            self.hundredths,
            deviation,
            self.status,
        )

    @classmethod
    def from_datetime(cls, moment: datetime, *, status: int = 0) -> CosemDateTime:
        """A date-time for a wall clock; an aware datetime sets the deviation."""
        offset = moment.utcoffset()
        deviation = None if offset is None else -int(offset.total_seconds() // 60)
        return cls(
            moment.year,
            moment.month,
            moment.day,
            moment.hour,
            moment.minute,
            moment.second,
            moment.microsecond // 10_000,
            deviation,
            status,
            moment.isoweekday(),
        )

    def to_datetime(self) -> datetime | None:
        """The moment, aware when the deviation is given; None when a field is unspecified."""
        if self.year in (0, 0xFFFF) or not 1 <= self.month <= 12 or not 1 <= self.day <= 31:
            return None
        if self.hour > 23 or self.minute > 59:
            return None
        second = 0 if self.second == 0xFF else self.second
        hundredths = 0 if self.hundredths == 0xFF else self.hundredths
        if second > 59 or hundredths > 99:
            return None
        # Blue Book: deviation is local time minus UTC with the sign inverted (UTC = local + dev),
        # within -720..840 minutes; anything else is treated as unspecified.
        deviation = self.deviation
        valid = deviation is not None and -_MAX_DEVIATION_MIN <= deviation <= _MAX_DEVIATION_MIN
        zone = timezone(timedelta(minutes=-deviation)) if valid and deviation is not None else None
        try:
            return datetime(
                self.year,
                self.month,
                self.day,
                self.hour,
                self.minute,
                second,
                hundredths * 10_000,
                tzinfo=zone,
            )
        except ValueError:
            return None

    def iso(self) -> str | None:
        """ISO 8601 text, with the offset when the meter gives its deviation."""
        moment = self.to_datetime()
        if moment is None:
            return None
        return moment.isoformat(timespec="milliseconds" if moment.microsecond else "seconds")

    @property
    def dst(self) -> bool:
        """The clock status says daylight saving time is active (bit 7)."""
        return bool(self.status & 0x80) and self.status != 0xFF
