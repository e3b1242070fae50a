"""Encoders for the M-Bus application layer: data records and TPL headers (emulators, tests).

``DataRecord`` holds what goes on the wire (the VIB bytes and the raw number before the VIF's
scale); ``obis_record`` builds one from an electricity register the way a Kamstrup 382L's
M-Bus module reports it, so an emulator can answer from the engine's registers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal

from modules.codecs.mbus import types

__all__ = [
    "Coding",
    "DataRecord",
    "encode_dib",
    "encode_long_header",
    "encode_record",
    "encode_records",
    "manufacturer_code",
    "obis_record",
]

Coding = Literal[
    "none",
    "int8",
    "int16",
    "int24",
    "int32",
    "int48",
    "int64",
    "real",
    "bcd2",
    "bcd4",
    "bcd6",
    "bcd8",
    "bcd12",
    "text",
    "binary",
    "lvar_bcd",
    "date_g",
    "datetime_f",
    "datetime_i",
    "time_j",
]
# coding -> (DIF data field, size in bytes; 0 for LVAR or no data)
_FIELDS: dict[str, tuple[int, int]] = {
    "none": (0x0, 0),
    "int8": (0x1, 1),
    "int16": (0x2, 2),
    "int24": (0x3, 3),
    "int32": (0x4, 4),
    "real": (0x5, 4),
    "int48": (0x6, 6),
    "int64": (0x7, 8),
    "bcd2": (0x9, 1),
    "bcd4": (0xA, 2),
    "bcd6": (0xB, 3),
    "bcd8": (0xC, 4),
    "bcd12": (0xE, 6),
    "text": (0xD, 0),
    "binary": (0xD, 0),
    "lvar_bcd": (0xD, 0),
    "date_g": (0x2, 2),
    "datetime_f": (0x4, 4),
    "datetime_i": (0x6, 6),
    "time_j": (0x3, 3),
}
_FUNCTIONS = {"instantaneous": 0, "maximum": 1, "minimum": 2, "error": 3}
_MAX_DIFES = 10


@dataclass(frozen=True, slots=True)
class DataRecord:
    """One data record to encode: its VIB as on the wire and the raw value before scaling."""

    vib: bytes
    value: int | float | str | date | datetime | time | None
    coding: Coding = "int32"
    storage: int = 0
    tariff: int = 0
    subunit: int = 0
    function: str = "instantaneous"


def encode_dib(
    data_field: int,
    *,
    storage: int = 0,
    tariff: int = 0,
    subunit: int = 0,
    function: str = "instantaneous",
) -> bytes:
    """The DIF and DIFEs for a data field, storage number, tariff, subunit and function."""
    if min(storage, tariff, subunit) < 0:
        raise ValueError("storage, tariff and subunit are not negative")
    dif = data_field | (_FUNCTIONS[function] << 4) | ((storage & 0x01) << 6)
    storage >>= 1
    difes = bytearray()
    while storage or tariff or subunit:
        difes.append((storage & 0x0F) | ((tariff & 0x03) << 4) | ((subunit & 0x01) << 6))
        storage, tariff, subunit = storage >> 4, tariff >> 2, subunit >> 1
    if len(difes) > _MAX_DIFES:
        raise ValueError("storage/tariff/subunit need more than 10 DIFEs")
    if difes:
        dif |= 0x80
        for index in range(len(difes) - 1):
            difes[index] |= 0x80
    return bytes([dif]) + bytes(difes)


def encode_record(record: DataRecord) -> bytes:
    """One data record: DIB, VIB, data."""
    data_field, size = _FIELDS[record.coding]
    dib = encode_dib(
        data_field,
        storage=record.storage,
        tariff=record.tariff,
        subunit=record.subunit,
        function=record.function,
    )
    return dib + record.vib + _data(record, size)


def encode_records(
    records: list[DataRecord], *, more_records_follow: bool = False, manufacturer_data: bytes = b""
) -> bytes:
    """Records followed by DIF 0x1F (more follow) or 0x0F with manufacturer data, if any."""
    body = b"".join(encode_record(record) for record in records)
    if more_records_follow:
        return body + b"\x1f" + manufacturer_data
    if manufacturer_data:
        return body + b"\x0f" + manufacturer_data
    return body


def _data(record: DataRecord, size: int) -> bytes:
    value, coding = record.value, record.coding
    if coding == "none":
        return b""
    if coding == "text":
        text = str(value).encode("latin-1")
        if len(text) > 0xBF:
            raise ValueError("LVAR text is at most 191 bytes")
        return bytes([len(text)]) + text[::-1]
    if coding == "binary":
        blob = bytes.fromhex(str(value))[::-1]
        if len(blob) > 15:
            raise ValueError("LVAR binary is at most 15 bytes here")
        return bytes([0xE0 + len(blob)]) + blob
    if coding == "lvar_bcd":
        number = int(str(value))
        digits = len(str(abs(number)))
        blob = types.bcd_encode(abs(number), (digits + 1) // 2)
        return bytes([(0xD0 if number < 0 else 0xC0) + len(blob)]) + blob
    if coding == "real":
        return types.real_encode(float(str(value)) if not isinstance(value, float) else value)
    if coding in ("date_g", "datetime_f", "datetime_i", "time_j"):
        return _date_data(value, coding)
    number = int(str(value))
    if coding.startswith("bcd"):
        return types.bcd_encode(number, size)
    return types.int_encode(number, size)


def _date_data(value: object, coding: str) -> bytes:
    if coding == "date_g" and isinstance(value, date) and not isinstance(value, datetime):
        return types.encode_date_g(value)
    if coding == "datetime_f" and isinstance(value, datetime):
        return types.encode_datetime_f(value)
    if coding == "datetime_i" and isinstance(value, datetime):
        return types.encode_datetime_i(value)
    if coding == "time_j" and isinstance(value, time):
        return types.encode_time_j(value)
    raise ValueError(f"{value!r} cannot be coded as {coding}")


def manufacturer_code(letters: str) -> int:
    """The 15-bit manufacturer code of a three-letter FLAG id ("KAM" -> 0x2C2D)."""
    text = letters.upper()
    if len(text) != 3 or not all("A" <= c <= "Z" for c in text):
        raise ValueError(f"manufacturer {letters!r} is not three letters A-Z")
    return ((ord(text[0]) - 64) << 10) | ((ord(text[1]) - 64) << 5) | (ord(text[2]) - 64)


def encode_long_header(
    id: str,
    manufacturer: str,
    version: int,
    medium: int,
    *,
    access_number: int,
    status: int = 0,
    signature: int = 0,
) -> bytes:
    """The 12-byte TPL long header (CI 0x72): id (8 BCD digits), M, version, medium, ACC, ST."""
    if len(id) != 8:
        raise ValueError(f"id {id!r} is not 8 digits")
    return (
        bytes.fromhex(id)[::-1]
        + manufacturer_code(manufacturer).to_bytes(2, "little")
        + bytes([version, medium, access_number, status])
        + signature.to_bytes(2, "little")
    )


# OBIS C.D -> (VIB without the direction/phase VIFEs, exponent of the raw number in the unit,
# family). Energy in 10 Wh and power in W are what the 382L's M-Bus module resolves.
_REGISTERS: dict[str, tuple[bytes, int]] = {
    "energy": (b"\x04", -2),  # 10 Wh, value in kWh
    "power": (b"\x2b", 0),  # W
    "reactive_energy": (b"\xfb\x82\x74", -2),  # kvarh x 10^-2
    "reactive_power": (b"\xfb\x14", 0),  # var
    "voltage": (b"\xfd\x48", -1),  # 0.1 V
    "current": (b"\xfd\x5a", -2),  # 0.01 A
    "frequency": (b"\xfb\x2d", -2),  # 0.01 Hz
}
_PHASE_VIFE = {0: None, 20: 0x01, 40: 0x02, 60: 0x03}


def obis_record(obis: str, value: Decimal | float | int) -> DataRecord:
    """A record for an electricity register ("1-0:1.8.1" = A+ tariff 1) in kWh, W, V, A, Hz."""
    code = obis.rsplit(":", maxsplit=1)[-1].split("*", maxsplit=1)[0]
    c_text, d_text, e_text = [*code.split("."), "0"][:3]
    c, d, e = int(c_text), int(d_text), int(e_text)
    function, tariff = "instantaneous", 0
    if d == 8:
        family, base, tariff = _energy_family(c), c % 20, e
    elif d in (6, 7):
        family, base = _power_family(c), c % 20
        function, tariff = ("maximum", e) if d == 6 else ("instantaneous", 0)
    else:
        raise ValueError(f"no M-Bus record for OBIS {obis}")
    phase = _PHASE_VIFE.get(c - base)
    if family in ("voltage", "current"):
        phase = {12: None, 32: 0x01, 52: 0x02, 72: 0x03, 11: None, 31: 0x01, 51: 0x02, 71: 0x03}[c]
    vib, exponent = _REGISTERS[family]
    extra = bytearray()
    if base in (2, 4):
        extra.append(0x3C)  # backward flow: export
    if phase is not None:
        extra += bytes([0xFC, phase])
    if extra:
        vib = vib[:-1] + bytes([vib[-1] | 0x80])
        for index in range(len(extra) - 1):
            extra[index] |= 0x80
    raw = (Decimal(str(value)).scaleb(-exponent)).to_integral_value(ROUND_HALF_EVEN)
    return DataRecord(vib + bytes(extra), int(raw), "int64", tariff=tariff, function=function)


def _energy_family(c: int) -> str:
    base = c % 20
    if base in (1, 2):
        return "energy"
    if base in (3, 4):
        return "reactive_energy"
    raise ValueError(f"no M-Bus energy register for OBIS C={c}")


def _power_family(c: int) -> str:
    if c in (12, 32, 52, 72):
        return "voltage"
    if c in (11, 31, 51, 71):
        return "current"
    if c == 14:
        return "frequency"
    base = c % 20
    if base in (1, 2):
        return "power"
    if base in (3, 4):
        return "reactive_power"
    raise ValueError(f"no M-Bus power register for OBIS C={c}")
