"""Z-Wave Meter Command Class (0x32), versions 1 to 6: Get, Report, Supported Get/Report, Reset.

Layouts: SDS13781 (Z-Wave Application Command Class specification) and zwave-js
``packages/cc/src/cc/MeterCC.ts``. A meter value is a signed big-endian integer of 1, 2 or 4
bytes divided by 10^precision; values here are exact Decimals. Scale numbers are the combined
ones: electric 0 kWh .. 6 power factor, 7 kvar and 8 kvarh, where the wire carries scale 7 plus a
"Scale 2" byte (V4+). What the scales mean (units, OBIS codes) is in ``zwave.meter_scales``,
re-exported here.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, ClassVar, Self

import msgspec

from modules.codecs.records import Record
from modules.codecs.zwave.cc.base import CcCommand, CommandClassId, Reader, plain_fields
from modules.codecs.zwave.meter_scales import (
    ElectricScale,
    MeterQuantity,
    MeterScale,
    MeterType,
    RateType,
    key_for_obis,
    meter_type_name,
    quantity,
    rate_type_name,
    scale_info,
)

__all__ = [
    "COMMANDS",
    "SCALE2_MARK",
    "ElectricScale",
    "MeterGet",
    "MeterQuantity",
    "MeterReport",
    "MeterReset",
    "MeterScale",
    "MeterSupportedGet",
    "MeterSupportedReport",
    "MeterType",
    "RateType",
    "key_for_obis",
    "meter_type_name",
    "quantity",
    "rate_type_name",
    "report_record",
    "scale_info",
    "value_layout",
]

SCALE2_MARK = 7  # a scale field of 7 means "read the Scale 2 byte" from V4 on
_MAX_SCALE = SCALE2_MARK + 0xFF
_SIZES = (1, 2, 4)
_MAX_PRECISION = 7  # three bits


def value_layout(
    value: Decimal, *, max_precision: int = _MAX_PRECISION
) -> tuple[Decimal, int, int]:
    """(value rounded to fit, precision, size): the most decimals that fit a 4-byte integer.

    A 7-digit kWh register with 2 decimals still fits an int32; larger values lose decimals.
    """
    (rounded,), precision, size = _layout((value,), max_precision)
    return rounded, precision, size


def _layout(
    values: tuple[Decimal, ...], max_precision: int
) -> tuple[tuple[Decimal, ...], int, int]:
    """Values rounded to one shared precision, and the smallest size that carries them all."""
    decimals = 0
    for value in values:
        if not value.is_finite():
            raise ValueError(f"a meter value must be finite, got {value}")
        exponent = value.normalize().as_tuple().exponent
        if isinstance(exponent, int) and exponent < 0:
            decimals = max(decimals, -exponent)
    for precision in range(min(decimals, max_precision, _MAX_PRECISION), -1, -1):
        scaled = [int(v.scaleb(precision).to_integral_value(ROUND_HALF_EVEN)) for v in values]
        for size in _SIZES:
            if all(_fits(raw, size) for raw in scaled):
                rounded = tuple(Decimal(raw).scaleb(-precision) for raw in scaled)
                return rounded, precision, size
    raise ValueError(f"{values} do not fit a 32-bit meter value")


def report_record(report: MeterReport, *, end_point: int = 0) -> Record:
    """The decode record of a Meter Report in Home Assistant units; the end point is its subunit."""
    found = quantity(report.meter_type, report.rate_type, report.scale)
    raw = {
        "meter_type": report.meter_type,
        "rate_type": report.rate_type,
        "scale": report.scale,
        "scale_name": found.label,
        "precision": report.precision,
        "size": report.size,
        "delta_time_s": report.delta_time_s,
        "previous_value": report.previous_value,
    }
    return Record(
        name=found.name,
        value=report.value,
        unit=found.unit,
        obis=found.obis,
        subunit=end_point,
        raw=raw,
    )


def _fits(raw: int, size: int) -> bool:
    limit = 1 << (8 * size - 1)
    return -limit <= raw < limit


def _value_bytes(value: Decimal, precision: int, size: int, what: str) -> bytes:
    if size not in _SIZES:
        raise ValueError(f"{what} size must be 1, 2 or 4, got {size}")
    if not 0 <= precision <= _MAX_PRECISION:
        raise ValueError(f"{what} precision must be 0..7, got {precision}")
    scaled = value.scaleb(precision)
    if not scaled.is_finite() or scaled != scaled.to_integral_value():
        raise ValueError(f"{what} {value} has more than {precision} decimals")
    raw = int(scaled)
    if not _fits(raw, size):
        raise ValueError(f"{what} {value} does not fit {size} byte(s) at precision {precision}")
    return raw.to_bytes(size, "big", signed=True)


def _check_field(what: str, value: int, limit: int) -> None:
    if not 0 <= value <= limit:
        raise ValueError(f"{what} must be 0..{limit}, got {value}")


def _header(
    meter_type: int, rate_type: int, scale: int, *, value: Decimal, precision: int, size: int
) -> bytes:
    """Type/rate byte, precision/scale/size byte and the value (Report and V6 Reset)."""
    _check_field("meter type", meter_type, 0x1F)
    _check_field("rate type", rate_type, 3)
    _check_field("scale", scale, _MAX_SCALE)
    value_bytes = _value_bytes(value, precision, size, "meter value")
    scale1 = min(scale, SCALE2_MARK)
    first = (scale1 >> 2) << 7 | rate_type << 5 | meter_type
    second = precision << 5 | (scale1 & 0x03) << 3 | size
    return bytes((first, second)) + value_bytes


class _Header(msgspec.Struct, frozen=True):
    meter_type: int
    rate_type: int
    scale1: int
    precision: int
    size: int
    value: Decimal


def _parse_header(reader: Reader) -> _Header:
    first = reader.u8("meter type")
    second = reader.u8("precision/scale/size")
    size = second & 0x07
    if size not in _SIZES:
        raise reader.invalid(f"meter value size {size} is not 1, 2 or 4")
    precision = second >> 5
    raw = reader.signed(size, "meter value")
    return _Header(
        meter_type=first & 0x1F,
        rate_type=(first >> 5) & 0x03,
        scale1=(first >> 7) << 2 | (second >> 3) & 0x03,
        precision=precision,
        size=size,
        value=Decimal(raw).scaleb(-precision),
    )


# ------------------------------------------------------------------------------------ commands


class MeterGet(CcCommand, frozen=True):
    """Meter Get; ``scale`` None is the V1 form, ``scale2_present`` the V4+ two-byte form."""

    scale: int | None = None
    rate_type: int = RateType.UNSPECIFIED
    scale2_present: bool = False

    CC: ClassVar[int] = CommandClassId.METER
    COMMAND: ClassVar[int] = 0x01
    NAME: ClassVar[str] = "METER_GET"

    @classmethod
    def for_version(
        cls, version: int, scale: int | None = None, rate_type: int = RateType.UNSPECIFIED
    ) -> MeterGet:
        """The Get a node implementing Meter ``version`` understands."""
        if version <= 1 or scale is None:
            return cls()
        limit = {2: 3, 3: 7}.get(version, _MAX_SCALE)
        _check_field(f"scale for Meter V{version}", scale, limit)
        if version < 4:
            return cls(scale)
        return cls(scale, rate_type, scale2_present=True)

    def body(self) -> bytes:
        """Nothing (V1); rate type bits 6-7 and scale bits 3-5; then Scale 2 (V4+)."""
        if self.scale is None:
            if self.rate_type or self.scale2_present:
                raise ValueError("a V1 Meter Get has no rate type or Scale 2")
            return b""
        _check_field("rate type", self.rate_type, 3)
        _check_field("scale", self.scale, _MAX_SCALE if self.scale2_present else SCALE2_MARK)
        scale1 = min(self.scale, SCALE2_MARK)
        first = self.rate_type << 6 | scale1 << 3
        if not self.scale2_present:
            return bytes((first,))
        return bytes((first, self.scale - SCALE2_MARK if self.scale >= SCALE2_MARK else 0))

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        """Any version's Get; Scale 2 counts only when scale is 7 (zwave-js MeterCCGet)."""
        if not reader.remaining:
            return cls()
        first = reader.u8("scale")
        scale = (first >> 3) & 0x07
        if not reader.remaining:
            return cls(scale, first >> 6)
        scale2 = reader.u8("scale 2")
        if scale == SCALE2_MARK:
            scale += scale2
        return cls(scale, first >> 6, scale2_present=True)

    def fields(self) -> dict[str, Any]:
        """Adds the rate type name."""
        return {**plain_fields(self), "rate_type_name": rate_type_name(self.rate_type)}


class MeterReport(CcCommand, frozen=True):
    """Meter Report; ``delta_time_s`` None is the V1 layout, 0 means "no previous value"."""

    meter_type: int
    scale: int
    value: Decimal
    rate_type: int = RateType.UNSPECIFIED
    precision: int = 0
    size: int = 4
    delta_time_s: int | None = None  # 0xFFFF: unknown (zwave-js)
    previous_value: Decimal | None = None

    CC: ClassVar[int] = CommandClassId.METER
    COMMAND: ClassVar[int] = 0x02
    NAME: ClassVar[str] = "METER_REPORT"

    @classmethod
    def of(
        cls,
        meter_type: int,
        scale: int,
        value: Decimal,
        *,
        rate_type: int = RateType.UNSPECIFIED,
        delta_time_s: int = 0,
        previous_value: Decimal | None = None,
    ) -> MeterReport:
        """A V2+ report whose precision and size are chosen to carry ``value`` (and previous)."""
        if previous_value is None or not delta_time_s:
            (value,), precision, size = _layout((value,), _MAX_PRECISION)
            previous_value, delta_time_s = None, 0
        else:
            (value, previous_value), precision, size = _layout(
                (value, previous_value), _MAX_PRECISION
            )
        return cls(
            meter_type, scale, value, rate_type, precision, size, delta_time_s, previous_value
        )

    def body(self) -> bytes:
        """Header and value; V2+ delta time and previous value; V4+ Scale 2."""
        out = _header(
            self.meter_type,
            self.rate_type,
            self.scale,
            value=self.value,
            precision=self.precision,
            size=self.size,
        )
        if self.delta_time_s is None:
            if self.previous_value is not None or self.scale > SCALE2_MARK:
                raise ValueError("a V1 Meter Report has no previous value and no Scale 2")
            return out
        _check_field("delta time", self.delta_time_s, 0xFFFF)
        out += self.delta_time_s.to_bytes(2, "big")
        if self.delta_time_s == 0:
            if self.previous_value is not None:
                raise ValueError("a previous value needs a delta time other than 0")
        elif self.previous_value is None:
            raise ValueError("a delta time other than 0 needs a previous value")
        else:
            out += _value_bytes(self.previous_value, self.precision, self.size, "previous value")
        if self.scale >= SCALE2_MARK:
            out += bytes((self.scale - SCALE2_MARK,))
        return out

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        """Any version's Report (zwave-js MeterCCReport.from, without its strictness on Scale 2)."""
        head = _parse_header(reader)
        delta: int | None = None
        previous: Decimal | None = None
        if reader.remaining >= 2:
            delta = reader.u16("delta time")
            if delta and reader.remaining >= head.size:
                raw = reader.signed(head.size, "previous value")
                previous = Decimal(raw).scaleb(-head.precision)
        scale = head.scale1
        if scale == SCALE2_MARK and reader.remaining:
            scale += reader.u8("scale 2")
        return cls(
            head.meter_type,
            scale,
            head.value,
            head.rate_type,
            head.precision,
            head.size,
            delta,
            previous,
        )

    def fields(self) -> dict[str, Any]:
        """Adds the names of type, rate type and scale, and the unit."""
        found = quantity(self.meter_type, self.rate_type, self.scale)
        return {
            **plain_fields(self),
            "meter_type_name": meter_type_name(self.meter_type),
            "rate_type_name": rate_type_name(self.rate_type),
            "scale_name": found.label,
            "unit": found.unit,
        }


class MeterSupportedGet(CcCommand, frozen=True):
    """Meter Supported Get (V2+)."""

    CC: ClassVar[int] = CommandClassId.METER
    COMMAND: ClassVar[int] = 0x03
    NAME: ClassVar[str] = "METER_SUPPORTED_GET"


class MeterSupportedReport(CcCommand, frozen=True):
    """Meter Supported Report (V2+): meter type, reset flag, rate types, supported scales."""

    meter_type: int
    scales: tuple[int, ...]
    rate_types: tuple[int, ...] = ()  # (1,), (2,) or (1, 2) from V4
    supports_reset: bool = False

    CC: ClassVar[int] = CommandClassId.METER
    COMMAND: ClassVar[int] = 0x04
    NAME: ClassVar[str] = "METER_SUPPORTED_REPORT"

    def body(self) -> bytes:
        """Reset/rate/type byte, 7-bit scale mask, then (V4+) "more scale types" bytes."""
        _check_field("meter type", self.meter_type, 0x1F)
        if not set(self.rate_types) <= {RateType.IMPORT, RateType.EXPORT}:
            raise ValueError(
                f"supported rate types are import (1) and export (2): {self.rate_types}"
            )
        rates = sum(set(self.rate_types))
        first = self.supports_reset << 7 | rates << 5 | self.meter_type
        mask = 0
        for scale in set(self.scales):
            _check_field("supported scale", scale, SCALE2_MARK + 8 * 0xFF - 1)
            mask |= 1 << scale
        base = mask & 0x7F
        # From V4, bit 7 says more scales follow; their bitmask bytes start at scale 7.
        extra = mask >> SCALE2_MARK
        if not extra:
            return bytes((first, base))
        more = extra.to_bytes((extra.bit_length() + 7) // 8, "little")
        return bytes((first, base | 0x80, len(more))) + more

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        """The report (zwave-js MeterCCSupportedReport.from)."""
        first = reader.u8("meter type")
        second = reader.u8("supported scales")
        scales = [bit for bit in range(7) if second >> bit & 1]
        if second & 0x80:
            count = reader.u8("number of scale bytes")
            more = reader.take(count, "supported scales")
            scales += [
                SCALE2_MARK + 8 * index + bit
                for index, byte in enumerate(more)
                for bit in range(8)
                if byte >> bit & 1
            ]
        rates = (first >> 5) & 0x03
        rate_types = tuple(rate for rate in (RateType.IMPORT, RateType.EXPORT) if rates & rate)
        return cls(
            first & 0x1F, tuple(scales), tuple(int(r) for r in rate_types), bool(first & 0x80)
        )

    def fields(self) -> dict[str, Any]:
        """Adds the meter type name and the unit label of each scale."""
        labels = []
        for scale in self.scales:
            info = scale_info(self.meter_type, scale)
            labels.append(info.label if info else None)
        return {
            **plain_fields(self),
            "meter_type_name": meter_type_name(self.meter_type),
            "units": labels,
        }


class MeterReset(CcCommand, frozen=True):
    """Meter Reset: empty resets every register (V2-V5); V6 sets one register to ``value``."""

    meter_type: int | None = None
    scale: int = 0
    rate_type: int = RateType.UNSPECIFIED
    value: Decimal | None = None
    precision: int = 0
    size: int = 1

    CC: ClassVar[int] = CommandClassId.METER
    COMMAND: ClassVar[int] = 0x05
    NAME: ClassVar[str] = "METER_RESET"

    def body(self) -> bytes:
        """Nothing, or the V6 type, rate, scale and target value."""
        if self.meter_type is None or self.value is None:
            if self.meter_type is not None or self.value is not None:
                raise ValueError("a V6 Meter Reset needs both a meter type and a value")
            return b""
        out = _header(
            self.meter_type,
            self.rate_type,
            self.scale,
            value=self.value,
            precision=self.precision,
            size=self.size,
        )
        if self.scale >= SCALE2_MARK:
            out += bytes((self.scale - SCALE2_MARK,))
        return out

    @classmethod
    def parse_body(cls, reader: Reader) -> Self:
        """Either form."""
        if not reader.remaining:
            return cls()
        head = _parse_header(reader)
        scale = head.scale1
        if scale == SCALE2_MARK and reader.remaining:
            scale += reader.u8("scale 2")
        return cls(head.meter_type, scale, head.rate_type, head.value, head.precision, head.size)

    def fields(self) -> dict[str, Any]:
        """Reset-all, or the targeted register with its names."""
        if self.meter_type is None:
            return {"reset_all": True}
        return {
            **plain_fields(self),
            "meter_type_name": meter_type_name(self.meter_type),
            "rate_type_name": rate_type_name(self.rate_type),
            "scale_name": quantity(self.meter_type, self.rate_type, self.scale).label,
        }


COMMANDS: dict[tuple[int, int], type[CcCommand]] = {
    (cls.CC, cls.COMMAND): cls
    for cls in (MeterGet, MeterReport, MeterSupportedGet, MeterSupportedReport, MeterReset)
}
