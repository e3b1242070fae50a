"""IEC 62056-21 data sets: ``address(value*unit)`` as on the wire, and what they mean.

Addresses become OBIS codes ("1.8.1" -> "1-0:1.8.1", "F.F" -> "0-0:97.97.0"), values become
Decimals (identifiers stay text), units Home Assistant's spellings. DSMR P1 lines share
this data-set syntax.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any, Final

from modules.codecs.records import Record

__all__ = [
    "NUMBER",
    "TEXT_VALUES",
    "DataSet",
    "DataValue",
    "add_records",
    "address_facts",
    "ha_unit",
    "normalize_obis",
    "obis_key",
    "records",
    "value_of",
]


@dataclass(frozen=True, slots=True)
class DataValue:
    """One ``(value*unit)`` group as on the wire; unit None when there is no ``*``."""

    value: str
    unit: str | None = None

    def __str__(self) -> str:
        return f"({self.value}*{self.unit})" if self.unit is not None else f"({self.value})"


@dataclass(frozen=True, slots=True)
class DataSet:
    """``address(value*unit)(value)...``: an address and one or more value groups."""

    address: str
    values: tuple[DataValue, ...]

    @classmethod
    def of(cls, address: str, value: Decimal | int | str, unit: str | None = None) -> DataSet:
        """A one-value data set; numbers written in plain notation, never with an exponent."""
        text = format(value, "f") if isinstance(value, Decimal) else str(value)
        return cls(address, (DataValue(text, unit),))

    def __str__(self) -> str:
        return self.address + "".join(map(str, self.values))


_ADDRESS = re.compile(
    r"(?:(?P<a>\d{1,3})-)?(?:(?P<b>\d{1,3}):)?"
    r"(?P<c>\d{1,3}|[CFLP])\.(?P<d>\d{1,3}|[CFLP])(?:\.(?P<e>\d{1,3}|[CFLP]))?"
    r"(?:[*&.](?P<f>\d{1,3}))?",
    re.IGNORECASE | re.ASCII,
)
_LETTERS = {"C": 96, "F": 97, "L": 98, "P": 99}
_ABSTRACT_C = {0, 96, 97, 98, 99}


def _group(text: str) -> int:
    return _LETTERS[text.upper()] if text.upper() in _LETTERS else int(text)


@lru_cache(maxsize=1024)
def normalize_obis(address: str) -> str | None:
    """A data-set address as "A-B:C.D.E[*F]": "1.8.1" -> "1-0:1.8.1", "F.F" -> "0-0:97.97.0"."""
    match = _ADDRESS.fullmatch(address.strip())
    if match is None:
        return None
    c, d = _group(match["c"]), _group(match["d"])
    e = _group(match["e"]) if match["e"] else 0
    a = int(match["a"]) if match["a"] else (0 if c in _ABSTRACT_C else 1)
    b = int(match["b"]) if match["b"] else 0
    f = f"*{int(match['f'])}" if match["f"] and int(match["f"]) != 255 else ""
    return f"{a}-{b}:{c}.{d}.{e}{f}"


_PHASE_C = {21: ("power_import", 1), 41: ("power_import", 2), 61: ("power_import", 3)}
_PHASE_C |= {22: ("power_export", 1), 42: ("power_export", 2), 62: ("power_export", 3)}
_PHASE_C |= {32: ("voltage", 1), 52: ("voltage", 2), 72: ("voltage", 3)}
_PHASE_C |= {31: ("current", 1), 51: ("current", 2), 71: ("current", 3)}
_TOTALS = {1: "energy_import", 2: "energy_export", 3: "reactive_energy_import"}
_TOTALS |= {4: "reactive_energy_export", 15: "energy_absolute"}
_POWERS = {1: "power_import", 2: "power_export", 3: "reactive_power_import"}
_POWERS |= {4: "reactive_power_export", 16: "power", 14: "frequency", 13: "power_factor"}
_NAMES = {
    (0, 0, 0): "device_address",
    (96, 1, 0): "meter_id",
    (97, 97, 0): "error_register",
    (96, 8, 0): "hour_counter",
    (96, 7, 0): "power_failures",
    (96, 5, 0): "status",
    (0, 2, 0): "firmware_version",
    (0, 9, 1): "time",
    (0, 9, 2): "date",
    (0, 1, 0): "billing_period_count",
    (91, 7, 0): "current_neutral",
}
# Data sets whose value is an identifier or a code: kept as text even when it looks numeric.
TEXT_VALUES: Final = {
    (0, 0, 0),
    (96, 1, 0),
    (96, 1, 1),
    (97, 97, 0),
    (0, 2, 0),
    (0, 9, 1),
    (0, 9, 2),
}
_UNITS = {"m3": "m³", "m3/h": "m³/h", "kVArh": "kvarh", "kVAr": "kvar", "kVarh": "kvarh"}
_UNITS_FOLDED = {
    u.lower(): u
    for u in ("Wh", "kWh", "kW", "W", "varh", "kvarh", "var", "kvar", "VAh", "kVAh", "VA", "kVA")
} | {u.lower(): u for u in ("V", "A", "Hz", "h", "s", "min", "GJ", "°C", "m³", "m³/h")}
_CANONICAL = re.compile(r"\d+-\d+:(\d+)\.(\d+)\.(\d+)(?:\*\d+)?", re.ASCII)
NUMBER: Final = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)", re.ASCII)


@lru_cache(maxsize=1024)
def obis_key(obis: str | None) -> tuple[int, int, int] | None:
    """(C, D, E) of a code normalize_obis made, None for anything else."""
    match = _CANONICAL.fullmatch(obis or "")
    return None if match is None else (int(match[1]), int(match[2]), int(match[3]))


@lru_cache(maxsize=1024)
def _name(key: tuple[int, int, int] | None, fallback: str) -> str:
    if key is None:
        return fallback
    c, d, e = key
    if key in _NAMES:
        return _NAMES[key]
    suffix = f"_t{e}" if e else ""
    if d == 8 and c in _TOTALS:
        return _TOTALS[c] + suffix
    if d == 7 and e == 0 and c in _POWERS:
        return _POWERS[c]
    if d == 7 and e == 0 and c in _PHASE_C:
        base, phase = _PHASE_C[c]
        return f"{base}_l{phase}"
    if d == 6 and c in (1, 2):
        return ("max_power_import" if c == 1 else "max_power_export") + suffix
    return fallback


@lru_cache(maxsize=1024)
def ha_unit(text: str | None) -> str | None:
    """A unit as Home Assistant spells it ("m3" -> "m³", "kVArh" -> "kvarh"); unknown as given."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    return _UNITS.get(text) or _UNITS_FOLDED.get(text.lower(), text)


def value_of(key: tuple[int, int, int] | None, value: DataValue) -> Decimal | str:
    """A number when the text is one (units or not), except for identifiers and codes."""
    return _value(key, value.value, value.unit)


def _value(key: tuple[int, int, int] | None, value: str, unit: str | None) -> Decimal | str:
    text = value.strip()
    # Plain ASCII digits are the usual number; the pattern decides the rest.
    if (unit or key not in TEXT_VALUES) and (
        (text.isdigit() and text.isascii()) or NUMBER.fullmatch(text)
    ):
        return Decimal(text)
    return text


@lru_cache(maxsize=1024)
def address_facts(address: str) -> tuple[tuple[int, int, int] | None, str, str | None]:
    """A data-set address's (C, D, E) key, record name and the OBIS code its records carry."""
    obis = normalize_obis(address)
    key = obis_key(obis)
    return key, _name(key, obis or address), obis or address or None


def records(data_sets: Iterable[DataSet]) -> list[Record]:
    """One record per non-empty value group, with OBIS code and Home Assistant unit."""
    out: list[Record] = []
    for data_set in data_sets:
        add_records(out, data_set.address, [(v.value, v.unit) for v in data_set.values])
    return out


def add_records(out: list[Record], address: str, values: Sequence[tuple[str, str | None]]) -> None:
    """The records of one data set (its address and its (value, unit) groups) onto ``out``."""
    key, name, obis = address_facts(address)
    many = len(values) > 1
    for index, (value, unit) in enumerate(values):
        if not value.strip():
            continue
        raw: dict[str, Any] = {"address": address, "value": value}
        if unit is not None:
            raw["unit"] = unit
        if many:
            raw["index"] = index
        out.append(
            Record(
                name if index == 0 else f"{name}_{index}",
                _value(key, value, unit),
                ha_unit(unit) if unit is not None else None,
                obis,
                0,
                0,
                0,
                "instantaneous",
                raw,
            )
        )
