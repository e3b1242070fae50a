"""The shape of a wM-Bus driver and the interpreter that reads manufacturer data with it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from modules.codecs.errors import UnknownFormat
from modules.codecs.records import Record

__all__ = ["Driver", "FieldSpec", "FixedFields", "RegisterWalk", "apply", "find"]

Encoding = Literal["uint_le", "bcd_le"]


class LayoutMismatch(UnknownFormat):
    """The manufacturer data does not follow the driver's layout; ``at`` is where, in the data."""

    def __init__(self, message: str, at: int) -> None:
        super().__init__(message)
        self.at = at


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One value: its record name, unit, power of ten and how its bytes are coded."""

    name: str
    unit: str | None
    exponent: int = 0  # value = raw number * 10**exponent, in ``unit``
    length: int = 4
    encoding: Encoding = "uint_le"
    offset: int = 0  # within the register's data (RegisterWalk) or the payload (FixedFields)
    divisor: int = 1  # for counts in units that are no power of ten (1/256000 m³)

    def read(self, data: bytes, at: int) -> Decimal:
        raw = data[at : at + self.length]
        if len(raw) < self.length:
            raise LayoutMismatch(f"{self.name} needs {self.length} bytes", at)
        if self.encoding == "bcd_le":
            digits = raw[::-1].hex()
            if not digits.isdigit():
                raise LayoutMismatch(f"{self.name} is not BCD: {digits}", at)
            number = int(digits)
        else:
            number = int.from_bytes(raw, "little")
        value = Decimal(number).scaleb(self.exponent)
        return value / self.divisor if self.divisor != 1 else value


@dataclass(frozen=True, slots=True)
class RegisterWalk:
    """Registers tagged by one byte, each followed by a data field of a size the tag fixes."""

    skip: int  # bytes before the first tag (a header the meter always sends)
    sizes: Mapping[int, int]  # tag -> data bytes after it
    fields: Mapping[int, FieldSpec]  # tag -> what its data means (others are kept raw)
    end: int | None = None  # a tag that ends the registers (padding follows)
    trailer: int = 0  # bytes after the registers that are no register (a check word)

    def read(self, data: bytes) -> list[tuple[FieldSpec, Decimal, int]]:
        found: list[tuple[FieldSpec, Decimal, int]] = []
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


@dataclass(frozen=True, slots=True)
class FixedFields:
    """Values at fixed offsets of the manufacturer data."""

    fields: tuple[FieldSpec, ...]

    def read(self, data: bytes) -> list[tuple[FieldSpec, Decimal, int]]:
        return [(spec, spec.read(data, spec.offset), spec.offset) for spec in self.fields]


@dataclass(frozen=True, slots=True)
class Driver:
    """A meter type and how to read its manufacturer data."""

    name: str
    manufacturer: str  # FLAG id, e.g. "APA"
    versions: frozenset[int]
    device_types: frozenset[int]
    layout: RegisterWalk | FixedFields
    source: str  # the public description the offsets come from
    # Only where a value needs arithmetic beyond scaling: name -> (value, unit) from the fields.
    derive: Callable[[dict[str, Decimal]], dict[str, tuple[Decimal, str | None]]] | None = field(
        default=None
    )

    def matches(self, manufacturer: str | None, version: int | None, kind: int | None) -> bool:
        return (
            manufacturer == self.manufacturer
            and version in self.versions
            and kind in self.device_types
        )


def find(
    drivers: Iterable[Driver], manufacturer: str | None, version: int | None, kind: int | None
) -> Driver | None:
    """The driver for a meter type, or None."""
    return next((d for d in drivers if d.matches(manufacturer, version, kind)), None)


def apply(
    drivers: Iterable[Driver],
    meter: Mapping[str, Any],
    frame: dict[str, Any],
    records: list[Record],
    payload: tuple[bytes, int] | None = None,
) -> list[Record]:
    """Records with the manufacturer data of a known meter type read into named values.

    The data is a ``manufacturer_specific`` record's (after DIF 0x0F), or ``payload``: the
    bytes after a manufacturer CI field (0xA0-0xB7) and their offset in the telegram.
    """
    kind = meter.get("device_type")
    driver = find(drivers, meter.get("manufacturer"), meter.get("version"), kind)
    if driver is None:
        return records
    out: list[Record] = []
    sources: list[tuple[bytes, int]] = [] if payload is None else [payload]
    for record in records:
        out.append(record)
        if record.name == "manufacturer_specific" and record.raw.get("data"):
            # The data starts after the 0x0F DIF at the record's offset.
            sources.append((bytes.fromhex(record.raw["data"]), int(record.raw["offset"]) + 1))
    for data, start in sources:
        frame["driver"] = driver.name
        try:
            values = driver.layout.read(data)
        except LayoutMismatch as err:
            frame.setdefault("warnings", []).append(
                f"driver {driver.name}: {err} at byte {start + err.at}; "
                "the manufacturer data stays raw"
            )
            continue
        named = {spec.name: value for spec, value, _ in values}
        derived = driver.derive(named) if driver.derive is not None else {}
        for spec, value, at in values:
            raw = {"driver": driver.name, "offset": start + at}
            out.append(Record(spec.name, value, unit=spec.unit, raw=raw))
        for name, (value, unit) in derived.items():
            out.append(Record(name, value, unit=unit, raw={"driver": driver.name}))
    return out
