"""The M-Bus fixed data structure (CI 0x73, and 0x77 with MSB first; EN 1434-3 / EN 13757-3).

Sixteen bytes: identification number (8 BCD digits), access number, status, the medium and
the units of the two counters packed into two bytes, then the two counters (BCD, or binary
when status bit 7 is set). Counters keep the unit the meter names (10 Wh stays Wh x 10).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from modules.codecs.errors import IncompleteFrame
from modules.codecs.mbus import types
from modules.codecs.records import Record

__all__ = ["FIXED_LENGTH", "FixedData", "decode_fixed"]

FIXED_LENGTH = 16
_STATUS_BINARY = 0x80  # counters are binary, not BCD
_STATUS_STORED = 0x40  # counter 2 is the value stored at a fixed date
_HISTORIC = 0x3E  # unit code: counter 2 has counter 1's unit, as a historic value

# 6-bit unit code -> (quantity, unit); codes 0x02..0x37 come in threes (x1, x10, x100).
_DECADES: tuple[tuple[str, str], ...] = (
    ("energy", "Wh"),
    ("energy", "kWh"),
    ("energy", "MWh"),
    ("energy", "kJ"),
    ("energy", "MJ"),
    ("energy", "GJ"),
    ("power", "W"),
    ("power", "kW"),
    ("power", "MW"),
    ("power", "kJ/h"),
    ("power", "MJ/h"),
    ("power", "GJ/h"),
    ("volume", "mL"),
    ("volume", "L"),
    ("volume", "m³"),
    ("volume_flow", "mL/h"),
    ("volume_flow", "L/h"),
    ("volume_flow", "m³/h"),
)


@dataclass(frozen=True, slots=True)
class FixedData:
    """What a fixed data structure says."""

    id: str
    access_number: int
    status: int
    medium: int
    records: list[Record] = field(default_factory=list)


def _unit(code: int) -> tuple[str, str | None, Decimal]:
    if 0x02 <= code <= 0x37:
        name, unit = _DECADES[(code - 0x02) // 3]
        return name, unit, Decimal(10) ** ((code - 0x02) % 3)
    if code == 0x38:
        return "temperature", "°C", Decimal("0.001")
    named = {0x00: "time", 0x01: "date", 0x39: "hca", 0x3F: "counter"}
    return named.get(code, f"reserved_unit_{code:02x}"), None, Decimal(1)


def decode_fixed(body: bytes, *, offset: int = 0, msb_first: bool = False) -> FixedData:
    """Decode the 16 bytes after CI 0x73/0x77."""
    if len(body) < FIXED_LENGTH:
        raise IncompleteFrame(
            f"fixed data structure needs {FIXED_LENGTH} bytes, got {len(body)}",
            offset=offset + len(body),
        )

    def field_bytes(start: int, size: int) -> bytes:
        chunk = body[start : start + size]
        return chunk[::-1] if msb_first else chunk

    ident = field_bytes(0, 4)[::-1].hex().upper()
    status = body[5]
    units = field_bytes(6, 2)
    medium = ((units[1] & 0xC0) >> 4) | ((units[0] & 0xC0) >> 6)
    first = _unit(units[0] & 0x3F)
    second_code = units[1] & 0x3F
    second = first if second_code == _HISTORIC else _unit(second_code)
    stored = second_code == _HISTORIC or bool(status & _STATUS_STORED)
    records = []
    for index, (quantity, storage) in enumerate(((first, 0), (second, 1 if stored else 0))):
        raw = field_bytes(8 + 4 * index, 4)
        if status & _STATUS_BINARY:
            number, invalid = types.int_decode(raw), False
        else:
            number, invalid = types.bcd_decode(raw)
        name, unit, scale = quantity
        details: dict[str, object] = {"counter": index + 1, "data": raw.hex()}
        details["unit_code"] = f"{units[index] & 0x3F:02x}"
        if invalid:
            details["bcd_invalid"] = True
        value = types.scaled(number, scale)
        records.append(Record(name, value, unit, storage=storage, raw=details))
    return FixedData(ident, body[4], status, medium, records)
