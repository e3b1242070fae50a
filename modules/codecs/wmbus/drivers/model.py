"""The shape of a wM-Bus driver and the interpreter that reads manufacturer data with it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any, Literal

import msgspec

from modules.codecs.errors import UnknownFormat
from modules.codecs.mbus.types import date_g
from modules.codecs.mbus.vif import medium_name
from modules.codecs.records import Record

__all__ = [
    "Driver",
    "FieldSpec",
    "FixedFields",
    "FlaggedSections",
    "RegisterWalk",
    "Section",
    "TelegramLayout",
    "apply",
    "find",
]

# uint_le / bcd_le: numbers; date_g: an EN 13757-3 type G date (2 bytes), as ISO text.
Encoding = Literal["uint_le", "bcd_le", "date_g"]
FieldValue = Decimal | str


class LayoutMismatch(UnknownFormat):
    """The manufacturer data does not follow the driver's layout; ``at`` is where, in the data."""

    def __init__(self, message: str, at: int) -> None:
        super().__init__(message)
        self.at = at


class FieldSpec(msgspec.Struct, frozen=True):
    """One value: its record name, unit, power of ten and how its bytes are coded."""

    name: str
    unit: str | None
    exponent: int = 0  # value = raw number * 10**exponent, in ``unit``
    length: int = 4
    encoding: Encoding = "uint_le"
    offset: int = 0  # within the register's data (RegisterWalk) or the payload (FixedFields)
    divisor: int = 1  # for counts in units that are no power of ten (1/256000 m³)

    # For values that are no plain number: a mask on the raw number first, then a table of
    # what each masked number means (a battery code to volts), or a raw number from which on
    # the meter says "no value" (FFFFFF for a month not measured yet).
    mask: int | None = None
    table: Mapping[int, Decimal] | None = None
    invalid_from: int | None = None

    def read(self, data: bytes, at: int) -> FieldValue | None:
        """The value at ``at``; None when the meter marks it as not available."""
        raw = data[at : at + self.length]
        if len(raw) < self.length:
            raise LayoutMismatch(f"{self.name} needs {self.length} bytes", at)
        if self.encoding == "date_g":
            day = date_g(raw)
            return None if day is None else day.isoformat()
        if self.encoding == "bcd_le":
            digits = raw[::-1].hex()
            if not digits.isdigit():
                raise LayoutMismatch(f"{self.name} is not BCD: {digits}", at)
            number = int(digits)
        else:
            number = int.from_bytes(raw, "little")
        if self.invalid_from is not None and number >= self.invalid_from:
            return None
        if self.mask is not None:
            number &= self.mask
        if self.table is not None:
            return self.table.get(number)
        value = Decimal(number).scaleb(self.exponent)
        return value / self.divisor if self.divisor != 1 else value


Reading = tuple[FieldSpec, FieldValue | None, int]


class RegisterWalk(msgspec.Struct, frozen=True):
    """Registers tagged by one byte, each followed by a data field of a size the tag fixes."""

    skip: int  # bytes before the first tag (a header the meter always sends)
    sizes: Mapping[int, int]  # tag -> data bytes after it
    fields: Mapping[int, FieldSpec]  # tag -> what its data means (others are kept raw)
    end: int | None = None  # a tag that ends the registers (padding follows)
    trailer: int = 0  # bytes after the registers that are no register (a check word)

    def read(self, data: bytes) -> list[Reading]:
        found: list[Reading] = []
        pos = self.skip
        last = len(data) - self.trailer
        while pos < last:
            tag = data[pos]
            if tag == self.end:
                break
            size = self.sizes.get(tag)
            if size is None:
                raise LayoutMismatch(f"register 0x{tag:02X} has no known size", pos)
            if pos + 1 + size > last:
                raise LayoutMismatch(f"register 0x{tag:02X} runs past the end", pos)
            spec = self.fields.get(tag)
            if spec is not None:
                found.append((spec, spec.read(data, pos + 1 + spec.offset), pos))
            pos += 1 + size
        return found


class FixedFields(msgspec.Struct, frozen=True):
    """Values at fixed offsets of the manufacturer data."""

    fields: tuple[FieldSpec, ...]
    # (offset, bytes) the data must hold there, or it is another layout (a marker byte).
    expect: tuple[tuple[int, bytes], ...] = ()
    # The fields sit in the last ``tail`` bytes (after a prefix of varying length); a longer
    # payload must have ``tail_marker`` just before them.
    tail: int | None = None
    tail_marker: int | None = None

    def read(self, data: bytes) -> list[Reading]:
        base = 0
        if self.tail is not None:
            base = len(data) - self.tail
            if base < 0:
                raise LayoutMismatch(f"needs {self.tail} bytes, has {len(data)}", 0)
            if base and self.tail_marker is not None and data[base - 1] != self.tail_marker:
                raise LayoutMismatch(f"expected {self.tail_marker:02X} here", base - 1)
        for at, marker in self.expect:
            if data[base + at : base + at + len(marker)] != marker:
                raise LayoutMismatch(f"expected {marker.hex().upper()} here", base + at)
        return [
            (spec, spec.read(data, base + spec.offset), base + spec.offset) for spec in self.fields
        ]


class Section(msgspec.Struct, frozen=True):
    """A block of the data that is there when ``bit`` is set in the content byte."""

    bit: int
    size: int
    fields: tuple[FieldSpec, ...]  # offsets within the section


class FlaggedSections(msgspec.Struct, frozen=True):
    """A content byte whose bits say which sections follow it, always in the same order."""

    sections: tuple[Section, ...]
    flags_at: int = 0

    def read(self, data: bytes) -> list[Reading]:
        if len(data) <= self.flags_at:
            raise LayoutMismatch("no content byte", self.flags_at)
        flags = data[self.flags_at]
        found: list[Reading] = []
        pos = self.flags_at + 1
        for section in self.sections:
            if not flags & section.bit:
                continue
            if pos + section.size > len(data):
                raise LayoutMismatch(f"section 0x{section.bit:02X} runs past the end", pos)
            found.extend(
                (spec, spec.read(data, pos + spec.offset), pos + spec.offset)
                for spec in section.fields
            )
            pos += section.size
        return found


class TelegramLayout(ABC):
    """A layout that needs the whole telegram, not only the data after the CI field.

    Diehl's PRIOS scrambling, for one, is seeded from the link header.
    """

    @abstractmethod
    def read_telegram(self, telegram: bytes, start: int, key: bytes | None) -> list[Reading]:
        """The values of the payload that starts at ``start`` of ``telegram``.

        ``key`` is the one given for the meter, if any.
        """


Layout = RegisterWalk | FixedFields | FlaggedSections | TelegramLayout


class Driver(msgspec.Struct, frozen=True):
    """A meter type and how to read its manufacturer data."""

    name: str
    manufacturer: str  # FLAG id, e.g. "APA"
    versions: frozenset[int] | None  # None: any version
    device_types: frozenset[int] | None  # None: any device type
    layout: Layout
    source: str  # the public description the offsets come from
    # Only where a value needs arithmetic beyond scaling: name -> (value, unit) from the fields.
    derive: Callable[[dict[str, Decimal]], dict[str, tuple[Decimal, str | None]]] | None = None
    # Some meters code the A field as version, device type, then the id (Diehl PRIOS): the
    # header's version and type are then read from there, and the meter's facts corrected.
    address_swapped: bool = False

    def matches(self, manufacturer: str | None, version: int | None, kind: int | None) -> bool:
        return (
            manufacturer == self.manufacturer
            and (self.versions is None or version in self.versions)
            and (self.device_types is None or kind in self.device_types)
        )


def find(
    drivers: Iterable[Driver], manufacturer: str | None, version: int | None, kind: int | None
) -> Driver | None:
    """The driver for a meter type, or None (drivers with a swapped address are not found here)."""
    return next(
        (d for d in drivers if not d.address_swapped and d.matches(manufacturer, version, kind)),
        None,
    )


def _swapped(drivers: Iterable[Driver], manufacturer: str | None, telegram: bytes) -> Driver | None:
    version, kind = telegram[4], telegram[5]
    return next(
        (d for d in drivers if d.address_swapped and d.matches(manufacturer, version, kind)), None
    )


def _record_data_start(raw: Mapping[str, Any]) -> int:
    """Where a manufacturer record's data starts: after its DIF(E)s, VIF(E)s and LVAR."""
    header = (
        1 + (len(raw.get("dife", "")) + len(raw.get("vif", "")) + len(raw.get("vife", ""))) // 2
    )
    return int(raw["offset"]) + header + (1 if raw.get("lvar") else 0)


def apply(
    drivers: Iterable[Driver],
    meter: dict[str, Any],
    frame: dict[str, Any],
    records: list[Record],
    payload: tuple[bytes, int] | None = None,
    *,
    telegram: bytes | None = None,
    key: bytes | None = None,
) -> list[Record]:
    """Records with the manufacturer data of a known meter type read into named values.

    The data is a ``manufacturer_specific`` record's (after DIF 0x0F, or a manufacturer VIF
    0x7F/0xFF), or ``payload``: the bytes after a manufacturer CI field (0xA0-0xB7) and their
    offset in ``telegram`` (the whole telegram without its CRCs). ``key`` is the meter's key,
    for layouts whose payload is scrambled with a meter key of its own.
    """
    drivers = tuple(drivers)
    manufacturer = meter.get("manufacturer")
    driver = find(drivers, manufacturer, meter.get("version"), meter.get("device_type"))
    if driver is None and telegram is not None and payload is not None and len(telegram) >= 10:
        driver = _swapped(drivers, manufacturer, telegram)
        if driver is not None:
            _unswap(meter, telegram)
            frame["address_swapped"] = True
    if driver is None:
        return records
    out: list[Record] = []
    sources: list[tuple[bytes, int]] = [] if payload is None else [payload]
    for record in records:
        out.append(record)
        if record.name == "manufacturer_specific" and record.raw.get("data"):
            sources.append((bytes.fromhex(record.raw["data"]), _record_data_start(record.raw)))
    for data, start in sources:
        whole_telegram = isinstance(driver.layout, TelegramLayout)
        if whole_telegram and (telegram is None or payload is None or start != payload[1]):
            continue  # a layout of the manufacturer CI payload, not of a record
        frame["driver"] = driver.name
        try:
            if isinstance(driver.layout, TelegramLayout):
                assert telegram is not None
                values = driver.layout.read_telegram(telegram, start, key)
            else:
                values = driver.layout.read(data)
        except LayoutMismatch as err:
            frame.setdefault("warnings", []).append(
                f"driver {driver.name}: {err} at byte {start + err.at}; "
                "the manufacturer data stays raw"
            )
            continue
        named = {spec.name: value for spec, value, _ in values if isinstance(value, Decimal)}
        derived = driver.derive(named) if driver.derive is not None else {}
        for spec, value, at in values:
            if value is None:
                continue  # the meter says it has no value there: unknown, not zero
            raw = {"driver": driver.name, "offset": start + at}
            out.append(Record(spec.name, value, unit=spec.unit, raw=raw))
        for name, (number, unit) in derived.items():
            out.append(Record(name, number, unit=unit, raw={"driver": driver.name}))
    return out


def _unswap(meter: dict[str, Any], telegram: bytes) -> None:
    """The meter's facts from an A field coded as version, device type, id (LSB first)."""
    meter["version"] = telegram[4]
    meter["device_type"] = telegram[5]
    meter["medium"] = medium_name(telegram[5])
    meter["id"] = telegram[6:10][::-1].hex().upper()
