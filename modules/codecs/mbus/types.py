"""M-Bus data types (EN 13757-3 annex A): BCD, integers, real, dates G/F/I/J/K, LVAR.

Decoders take the data bytes in wire order (least significant byte first) and return plain
Python values; encoders are their inverses, used by the emulator and the round-trip tests.
"""

from __future__ import annotations

import contextlib
import math
import struct
from datetime import date, datetime, time
from decimal import Decimal

__all__ = [
    "bcd_decode",
    "bcd_encode",
    "date_g",
    "datetime_f",
    "datetime_i",
    "daylight_saving_k",
    "decode_profile",
    "encode_date_g",
    "encode_datetime_f",
    "encode_datetime_i",
    "encode_time_j",
    "int_decode",
    "int_encode",
    "real_decimal",
    "real_decode",
    "real_encode",
    "scaled",
    "time_j",
]


def bcd_decode(data: bytes) -> tuple[int, bool]:
    """A BCD number (type A) and whether it held hex digits A-F where a digit belongs.

    An F in the most significant digit is the minus sign. Other hex digits mean the meter
    flags the value as invalid; libmbus (and so the tools users compare with) then counts
    a high nibble of A-F as 0 and a low nibble at its hex value, and so do we.
    """
    value = 0
    invalid = False
    last = len(data) - 1
    for index in range(last, -1, -1):
        byte = data[index]
        high, low = byte >> 4, byte & 0x0F
        if index == last and high == 0x0F:
            high = 0
        elif high > 9:
            invalid = True
            high = 0
        invalid = invalid or low > 9
        value = (value * 10 + high) * 10 + low
    if data and data[last] >> 4 == 0x0F:
        value = -value
    return value, invalid


def bcd_encode(value: int, size: int) -> bytes:
    """``value`` as ``size`` bytes of BCD, least significant byte first (F nibble = minus)."""
    digits = 2 * size
    negative = value < 0
    magnitude = -value if negative else value
    limit = 10 ** (digits - 1) if negative else 10**digits
    if magnitude >= limit:
        raise ValueError(f"{value} does not fit in {digits} BCD digits")
    text = f"{magnitude:0{digits}d}"
    if negative:
        text = "F" + text[1:]
    return bytes.fromhex(text)[::-1]


def int_decode(data: bytes, *, signed: bool = True) -> int:
    """A little-endian integer (type B signed, type C/D unsigned)."""
    return int.from_bytes(data, "little", signed=signed)


def int_encode(value: int, size: int) -> bytes:
    """``value`` as a little-endian two's complement integer of ``size`` bytes."""
    return value.to_bytes(size, "little", signed=value < 0)


def real_decode(data: bytes) -> float:
    """An IEEE 754 single precision number (type H), little-endian."""
    value: float = struct.unpack("<f", data)[0]
    return value


def real_encode(value: float) -> bytes:
    """``value`` as an IEEE 754 single precision number, little-endian."""
    return struct.pack("<f", value)


def _year(low_bits: int, high_bits: int, century: int = 0) -> int:
    """Years 0..99 of types G/F; 81..99 are the 1900s unless the century bits say otherwise."""
    year = (low_bits >> 5) | ((high_bits & 0xF0) >> 1)
    if century:
        return 1900 + 100 * century + year
    return 2000 + year if year <= 80 else 1900 + year


def date_g(data: bytes) -> date | None:
    """Type G (16 bits): a date; None when the meter sends an invalid or unset date."""
    day, month = data[0] & 0x1F, data[1] & 0x0F
    try:
        return date(_year(data[0], data[1]), month, day)
    except ValueError:
        return None


def datetime_f(data: bytes) -> datetime | None:
    """Type F (32 bits): date and time to the minute; None when invalid (IV bit or range)."""
    if data[0] & 0x80:
        return None
    minute, hour = data[0] & 0x3F, data[1] & 0x1F
    century = (data[1] >> 5) & 0x03
    day, month = data[2] & 0x1F, data[3] & 0x0F
    try:
        return datetime(_year(data[2], data[3], century), month, day, hour, minute)
    except ValueError:
        return None


def datetime_i(data: bytes) -> datetime | None:
    """Type I (48 bits): date and time to the second; None when invalid (IV bit or range)."""
    if data[1] & 0x80:
        return None
    second, minute, hour = data[0] & 0x3F, data[1] & 0x3F, data[2] & 0x1F
    day, month = data[3] & 0x1F, data[4] & 0x0F
    try:
        return datetime(_year(data[3], data[4]), month, day, hour, minute, second)
    except ValueError:
        return None


def time_j(data: bytes) -> time | None:
    """Type J (24 bits): a time of day; None when out of range."""
    try:
        return time(data[2] & 0x1F, data[1] & 0x3F, data[0] & 0x3F)
    except ValueError:
        return None


def daylight_saving_k(data: bytes) -> str:
    """Type K (32 bits): daylight saving begin/end and deviation, as a short text."""
    begin_hour, begin_day = data[0] & 0x1F, data[1] & 0x1F
    begin_month, end_day = data[2] & 0x0F, (data[2] >> 4) | ((data[3] & 0x01) << 4)
    end_month = (data[3] >> 1) & 0x0F
    deviation = (data[3] >> 5) & 0x03
    sign = "-" if data[1] & 0x80 else "+"
    return (
        f"begin --{begin_month:02d}-{begin_day:02d}T{begin_hour:02d}, "
        f"end --{end_month:02d}-{end_day:02d}, deviation {sign}{deviation} h"
    )


def _check_year(year: int) -> int:
    if not 2000 <= year <= 2080:
        raise ValueError(f"year {year} is outside what types G/F carry (2000..2080)")
    return year - 2000


def encode_date_g(value: date) -> bytes:
    """``value`` as type G."""
    year = _check_year(value.year)
    return bytes([value.day | ((year & 0x07) << 5), value.month | ((year & 0x78) << 1)])


def encode_datetime_f(value: datetime) -> bytes:
    """``value`` as type F (seconds are dropped)."""
    year = _check_year(value.year)
    day = value.day | ((year & 0x07) << 5)
    return bytes([value.minute, value.hour, day, value.month | ((year & 0x78) << 1)])


def encode_datetime_i(value: datetime) -> bytes:
    """``value`` as type I (weekday and week number filled in)."""
    year = _check_year(value.year)
    weekday = value.isoweekday()
    return bytes(
        [
            value.second,
            value.minute,
            value.hour | (weekday << 5),
            value.day | ((year & 0x07) << 5),
            value.month | ((year & 0x78) << 1),
            value.isocalendar().week,
        ]
    )


def encode_time_j(value: time) -> bytes:
    """``value`` as type J."""
    return bytes([value.second, value.minute, value.hour])


def scaled(raw: int, scale: Decimal) -> Decimal | int:
    """An exact raw number times a decimal scale; whole numbers without a fraction as int."""
    value = Decimal(raw) * scale
    return int(value) if value == value.to_integral_value() else value


def real_decimal(value: float) -> Decimal:
    """The shortest decimal that is the same single precision number (33385.496, not ...609375).

    Meters compute in decimal and store the nearest float32; the shortest text that rounds
    back to the same float32 is what they meant.
    """
    if not math.isfinite(value):
        raise ValueError(f"{value} is not a finite number")
    packed = struct.pack("<f", value)
    for digits in range(1, 10):
        text = f"{value:.{digits}g}"
        with contextlib.suppress(OverflowError):  # rounding up past the float32 maximum
            if struct.pack("<f", float(text)) == packed:
                return Decimal(text)
    return Decimal(repr(value))


# EN 13757-3 annex F: the spacing control byte of a (inverse) compact profile.
PROFILE_MODES = ("absolute", "increments", "decrements", "signed_differences")
PROFILE_UNITS = ("s", "min", "h", "d")
# Spacing value 254 counts calendar periods instead, by the spacing unit's code.
_PROFILE_CALENDAR = {3: "month", 2: "quarter", 1: "half_year"}
_PROFILE_INT_BYTES = {0x1: 1, 0x2: 2, 0x3: 3, 0x4: 4, 0x6: 6, 0x7: 8}
_PROFILE_BCD_BYTES = {0x9: 1, 0xA: 2, 0xB: 3, 0xC: 4, 0xE: 6}


def decode_profile(data: bytes, scale: Decimal) -> dict[str, object] | None:
    """A compact profile's spacing and elements (EN 13757-3 annex F), or None if malformed.

    The first byte holds the increment mode (bits 6-7), the spacing unit (bits 4-5) and the
    elements' coding as a DIF data field (bits 0-3); the second the spacing value. Elements
    that hold their type's "invalid" value (annex A: the most negative signed or the
    largest unsigned number, a BCD with hex digits) come out as None.
    """
    if len(data) < 2:
        return None
    control, spacing = data[0], data[1]
    mode, unit, coding = control >> 6, (control >> 4) & 0x03, control & 0x0F
    size = _PROFILE_INT_BYTES.get(coding) or _PROFILE_BCD_BYTES.get(coding)
    if size is None or (len(data) - 2) % size:
        return None
    signed = PROFILE_MODES[mode] in ("absolute", "signed_differences")
    elements: list[Decimal | int | None] = []
    for start in range(2, len(data), size):
        chunk = data[start : start + size]
        if coding in _PROFILE_BCD_BYTES:
            number, invalid = bcd_decode(chunk)
        else:
            number = int_decode(chunk, signed=signed)
            limit = -(1 << (8 * size - 1)) if signed else (1 << (8 * size)) - 1
            invalid = number == limit
        elements.append(None if invalid else scaled(number, scale))
    if spacing == 254 and unit in _PROFILE_CALENDAR:
        period = f"1 {_PROFILE_CALENDAR[unit]}"
    elif 1 <= spacing <= 250:
        period = f"{spacing} {PROFILE_UNITS[unit]}"
    else:
        period = f"reserved spacing {spacing}"
    return {"mode": PROFILE_MODES[mode], "spacing": period, "elements": elements}
