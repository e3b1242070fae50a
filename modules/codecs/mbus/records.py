"""The M-Bus application layer (EN 13757-3): data records, shared by wired and wireless M-Bus.

Public, stable entry points (the wM-Bus codec uses them):

- ``decode_records(payload, offset=0)``: the data records after the TPL header;
- ``record_format(payload)``: the DIF/DIFE/VIF/VIFE bytes of those records, the "format"
  a compact frame (CI 0x79) refers to by its CRC signature;
- ``decode_compact(format, data, offset=0)``: data bytes laid out by a known format;
- ``decode_fixed(body)``: the fixed data structure (CI 0x73/0x77).

The record decoders take optional header facts: ``medium`` (the device type byte; with
electricity, 0x02, energy and power records get OBIS codes), ``manufacturer`` (the FLAG id,
for documented manufacturer-specific VIFs such as Kamstrup's) and ``msb_first`` (CI 0x76/0x77).
Errors are ``FrameError`` subclasses whose offset is ``offset`` + the index in ``payload``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec

from modules.codecs.errors import FrameError, IncompleteFrame, UnknownFormat
from modules.codecs.mbus.fixed import FixedData, decode_fixed
from modules.codecs.mbus.meaning import BCD_LENGTHS, Meaning, apply_header, decode_value, describe
from modules.codecs.mbus.obis import obis_code, record_name
from modules.codecs.records import Record, RecordValue

__all__ = [
    "MAX_DIFES",
    "MAX_VIFES",
    "FixedData",
    "RecordHeader",
    "clear_plans",
    "decode_compact",
    "decode_fixed",
    "decode_records",
    "iter_headers",
    "more_records_follow",
    "record_format",
    "undecoded_warnings",
]

MAX_DIFES = 10  # EN 13757-3 6.3.3: at most ten DIFEs
MAX_VIFES = 10  # EN 13757-3 6.4.1: at most ten VIFEs
FILLER = 0x2F
MANUFACTURER_DATA = 0x0F
MORE_RECORDS_FOLLOW = 0x1F
GLOBAL_READOUT = 0x7F

FUNCTIONS = ("instantaneous", "maximum", "minimum", "error")
# Data field (DIF bits 0-3) -> data length in bytes; 0x0D is LVAR, 0x0F special functions.
_LENGTHS = {0x0: 0, 0x1: 1, 0x2: 2, 0x3: 3, 0x4: 4, 0x5: 4, 0x6: 6, 0x7: 8, 0x8: 0}
_LVAR = 0x0D


@dataclass(frozen=True, slots=True)
class RecordHeader:
    """The DIB and VIB of one data record: where it is and what its data means."""

    start: int  # index of the DIF in the buffer
    end: int  # index just after the last VIFE: the data starts here
    dif: int
    difes: bytes
    vif: int | None  # None for the special DIFs 0x0F, 0x1F, 0x7F
    vifes: bytes
    plain_text: str | None = None

    @property
    def data_field(self) -> int:
        """DIF bits 0-3: the coding and length of the data."""
        return self.dif & 0x0F

    @property
    def function(self) -> str:
        """DIF bits 4-5 as a word: instantaneous, maximum, minimum or error."""
        return FUNCTIONS[(self.dif >> 4) & 0x03]

    @property
    def storage(self) -> int:
        """The storage number: DIF bit 6, then 4 bits per DIFE."""
        number = (self.dif >> 6) & 0x01
        for index, dife in enumerate(self.difes):
            number |= (dife & 0x0F) << (1 + 4 * index)
        return number

    @property
    def tariff(self) -> int:
        """The tariff: 2 bits per DIFE."""
        return sum(((dife >> 4) & 0x03) << (2 * i) for i, dife in enumerate(self.difes))

    @property
    def subunit(self) -> int:
        """The subunit (device unit): 1 bit per DIFE."""
        return sum(((dife >> 6) & 0x01) << i for i, dife in enumerate(self.difes))

    @property
    def manufacturer_data(self) -> bool:
        """DIF 0x0F/0x1F: the rest of the buffer is manufacturer specific."""
        return self.dif in (MANUFACTURER_DATA, MORE_RECORDS_FOLLOW)


def decode_records(
    payload: bytes,
    *,
    offset: int = 0,
    medium: int | None = None,
    manufacturer: str | None = None,
    msb_first: bool = False,
    keep_going: bool = False,
    salvage: bool = False,
    layout: list[bytes] | None = None,
) -> list[Record]:
    """Decode the data records of a variable data structure (the bytes after the TPL header).

    With ``keep_going`` a record this decoder does not know (a reserved DIF or LVAR) ends the
    decoding without failing it: the records before it stay, and the rest becomes one
    ``undecoded`` record with its offset and the reason, so one odd record never costs the whole
    telegram. Structural damage (a record running past the end, more extensions than the
    standard allows) still fails: that is a corrupted frame, and its values can't be trusted.
    Without any good record before it, the error stands as well.

    ``salvage`` goes further, for wireless telegrams whose link layer was already checked (CRC,
    or the decryption's 2F2F): any record that can't be read, first or not, damaged or unknown,
    becomes the ``undecoded`` rest, so the header facts and the good records still come out.

    ``layout``, when given, gets each decoded record's header bytes appended: joined, they are
    ``record_format(payload)``, read on the way (what a wM-Bus decoder learns compact formats
    from).
    """
    records: list[Record] = []
    plans = _plans_for(manufacturer, medium)
    size = len(payload)
    position = 0  # where the record being read starts (fill bytes before it included)
    cursor = 0
    try:
        while cursor < size:
            dif = payload[cursor]
            if dif == FILLER:
                cursor += 1
                continue
            end = _header_end(payload, cursor, size)
            plan = plans.get(payload[cursor:end]) if end else None
            if plan is None:
                header = _header(payload, cursor, offset)
                if header.manufacturer_data:
                    records.append(_manufacturer_record(header, payload[header.end :], offset))
                    break
                plan = _plan(header, manufacturer, medium)
                if end:
                    _remember(plans, payload[cursor:end], plan)
            end = cursor + plan.size
            if layout is not None:
                layout.append(payload[cursor:end])
            length, start, lvar = _span(plan.fixed, payload, end, offset)
            data = payload[start : start + length]
            records.append(_apply(plan, data, lvar, offset + cursor, msb_first))
            cursor = position = start + length
    except FrameError as err:
        unknown = isinstance(err, UnknownFormat) and keep_going and bool(records)
        if not (salvage or unknown):
            raise
        records.append(_undecoded_record(payload[position:], offset + position, err))
    return _unique_obis(records)


def undecoded_warnings(records: list[Record]) -> list[str]:
    """One line per ``undecoded`` tail: what a decoder reports beside the records it kept."""
    return [
        f"records from byte {r.raw['offset']} on were kept raw: {r.raw['reason']}"
        for r in records
        if r.name == "undecoded"
    ]


def record_format(payload: bytes) -> bytes:
    """The concatenated DIF/DIFE/VIF/VIFE bytes of the records (fill bytes and data left out)."""
    layout: list[bytes] = []
    decode_records(payload, layout=layout)
    return b"".join(layout)


def decode_compact(
    format: bytes,
    data: bytes,
    *,
    offset: int = 0,
    medium: int | None = None,
    manufacturer: str | None = None,
    msb_first: bool = False,
) -> list[Record]:
    """Decode ``data`` laid out by ``format`` (headers from a full frame, values from here)."""
    records: list[Record] = []
    plans = _plans_for(manufacturer, medium)
    position = 0
    for header in iter_headers(format, data=False):
        if header.manufacturer_data:
            break
        key = format[header.start : header.end]
        plan = plans.get(key)
        if plan is None:
            plan = _plan(header, manufacturer, medium)
            _remember(plans, key, plan)
        length, start, lvar = _span(plan.fixed, data, position, offset)
        value = data[start : start + length]
        records.append(_apply(plan, value, lvar, offset + header.start, msb_first))
        position = start + length
    if position != len(data):
        raise FrameError(
            f"compact frame has {len(data) - position} bytes more than its format describes",
            offset=offset + position,
            code="bad_frame",
        )
    return _unique_obis(records)


def more_records_follow(records: list[Record]) -> bool:
    """Whether the last record is DIF 0x1F: the meter has more records for the next REQ_UD2."""
    return bool(records) and bool(records[-1].raw.get("more_records_follow"))


def iter_headers(buffer: bytes, *, offset: int = 0, data: bool = True) -> Iterator[RecordHeader]:
    """The record headers in ``buffer``; with ``data`` the data bytes sit between them."""
    position = 0
    while position < len(buffer):
        dif = buffer[position]
        if dif == FILLER:
            position += 1
            continue
        header = _header(buffer, position, offset)
        yield header
        if header.manufacturer_data:
            return
        position = header.end
        if data:
            length, start = _data_span(header, buffer, position, offset)
            position = start + length


def _header(buffer: bytes, start: int, offset: int) -> RecordHeader:
    dif = buffer[start]
    if dif & 0x0F == 0x0F:
        if dif in (MANUFACTURER_DATA, MORE_RECORDS_FOLLOW, GLOBAL_READOUT):
            return RecordHeader(start, start + 1, dif, b"", None, b"")
        # Unknown, not broken: the records before it are sound (see decode_records).
        raise UnknownFormat(f"reserved DIF 0x{dif:02x}", offset=offset + start, code="bad_frame")
    position = start + 1
    difes = bytearray()
    extended = dif & 0x80
    while extended:
        if len(difes) == MAX_DIFES:
            raise FrameError("more than 10 DIFEs", offset=offset + position, code="bad_frame")
        dife = _byte(buffer, position, offset, "DIFE")
        difes.append(dife)
        extended = dife & 0x80
        position += 1
    vif = _byte(buffer, position, offset, "VIF")
    position += 1
    plain_text = None
    if vif & 0x7F == 0x7C:
        # The plain-text unit follows the VIF itself, before any VIFE (as meters send it).
        size = _byte(buffer, position, offset, "plain-text VIF length")
        text = buffer[position + 1 : position + 1 + size]
        if len(text) < size:
            raise IncompleteFrame("plain-text VIF runs past the end", offset=offset + position)
        plain_text = text[::-1].decode("latin-1")
        position += 1 + size
    vifes = bytearray()
    extended = vif & 0x80
    while extended:
        if len(vifes) == MAX_VIFES:
            raise FrameError("more than 10 VIFEs", offset=offset + position, code="bad_frame")
        vife = _byte(buffer, position, offset, "VIFE")
        vifes.append(vife)
        extended = vife & 0x80
        position += 1
    return RecordHeader(start, position, dif, bytes(difes), vif, bytes(vifes), plain_text)


def _byte(buffer: bytes, position: int, offset: int, what: str) -> int:
    if position >= len(buffer):
        raise IncompleteFrame(f"premature end of data in the {what}", offset=offset + position)
    return buffer[position]


def _data_span(header: RecordHeader, buffer: bytes, position: int, offset: int) -> tuple[int, int]:
    """(length, start) of the record's data at ``position``; LVAR's length byte is skipped."""
    field = header.data_field
    if header.vif is None:
        return 0, position
    if field == _LVAR:
        lvar = _byte(buffer, position, offset, "LVAR")
        length = _lvar_length(lvar, offset + position)
        start = position + 1
    else:
        length = _LENGTHS.get(field) or BCD_LENGTHS.get(field, 0)
        start = position
    if start + length > len(buffer):
        raise IncompleteFrame(
            f"record data needs {length} bytes, {len(buffer) - start} left",
            offset=offset + start,
        )
    return length, start


def _lvar_length(lvar: int, where: int) -> int:
    if lvar <= 0xBF:
        return lvar
    if 0xC0 <= lvar <= 0xC9 or 0xD0 <= lvar <= 0xD9:
        return lvar & 0x0F
    if 0xE0 <= lvar <= 0xEF:
        return lvar - 0xE0
    if 0xF0 <= lvar <= 0xF4:
        return 4 * (lvar - 0xEC)
    if lvar == 0xF5:
        return 48
    if lvar == 0xF6:
        return 64
    raise UnknownFormat(f"reserved LVAR 0x{lvar:02x}", offset=where, code="bad_frame")


# Meters send the same record headers in every telegram, so what a header means (name, unit,
# OBIS code, scale) is worked out once per header bytes, manufacturer and medium, and each
# record then only decodes its data. Bounded: random or fuzzed input must not grow it forever.
MAX_PLANS = 4096
_PLANS: dict[tuple[str | None, int | None], dict[bytes, _Plan]] = {}
_PLAN_COUNT = [0]
# Data field -> data length; -1 is LVAR (the length is in the data), 0x0F has no data here.
_FIXED_LENGTHS = tuple(
    -1 if field == _LVAR else _LENGTHS.get(field) or BCD_LENGTHS.get(field, 0)
    for field in range(16)
)
_INT_FIELDS = frozenset({0x1, 0x2, 0x3, 0x4, 0x6, 0x7})


@dataclass(frozen=True, slots=True)
class _Plan:
    """What one record header says, decoded once: all a record needs besides its data."""

    size: int  # header bytes (DIF to the last VIFE)
    fixed: int  # data bytes, -1 for LVAR
    field: int
    head: tuple[str, str, str, str]  # dif, dife, vif, vife as raw shows them
    extras: tuple[tuple[str, str], ...]  # plain_text, record_error, manufacturer_vife
    meaning: Meaning | None  # None: a global readout request (DIF 0x7F)
    name: str
    unit: str | None
    obis: str | None
    storage: int
    tariff: int
    subunit: int
    function: str
    # A number record (binary integer or valid BCD) without oddities is decoded inline:
    # 1 binary, 2 BCD, 0 through decode_value; its scale as a whole number, or as
    # numerator / denominator for a fraction.
    number: int
    numerator: int
    denominator: int


def clear_plans() -> None:
    """Forget every record plan (tests start cold with it)."""
    _PLANS.clear()
    _PLAN_COUNT[0] = 0


def _plans_for(manufacturer: str | None, medium: int | None) -> dict[bytes, _Plan]:
    plans = _PLANS.get((manufacturer, medium))
    if plans is None:
        plans = _PLANS[(manufacturer, medium)] = {}
    return plans


def _remember(plans: dict[bytes, _Plan], key: bytes, plan: _Plan) -> None:
    if _PLAN_COUNT[0] >= MAX_PLANS:
        _PLANS.clear()
        plans.clear()
        _PLAN_COUNT[0] = 0
    plans[key] = plan
    _PLAN_COUNT[0] += 1


def _header_end(buffer: bytes, start: int, size: int) -> int:
    """Where a plain record header ends, or 0 when ``_header`` must read it (a special DIF,
    a plain-text VIF, too many extensions or the end of the buffer: its errors say which)."""
    dif = buffer[start]
    if dif & 0x0F == 0x0F:
        return 0
    position = _extended(buffer, start + 1, dif, size, MAX_DIFES)
    if not position or position >= size:
        return 0
    vif = buffer[position]
    if vif & 0x7F == 0x7C:
        return 0
    return _extended(buffer, position + 1, vif, size, MAX_VIFES)


def _extended(buffer: bytes, position: int, byte: int, size: int, most: int) -> int:
    """Where the extensions after ``byte`` (each with bit 7 set while one more follows) end,
    or 0 past ``most`` of them or past the buffer's end."""
    count = 0
    while byte & 0x80:
        if position >= size or count == most:
            return 0
        byte = buffer[position]
        position += 1
        count += 1
    return position


def _span(fixed: int, buffer: bytes, position: int, offset: int) -> tuple[int, int, int | None]:
    """(length, start, LVAR byte or None) of a record's data at ``position``, ``fixed`` bytes
    long or, when it is -1, as long as the LVAR byte there says."""
    if fixed < 0:
        length, start = _lvar_span(buffer, position, offset)
        return length, start, buffer[position]
    if position + fixed > len(buffer):
        raise IncompleteFrame(
            f"record data needs {fixed} bytes, {len(buffer) - position} left",
            offset=offset + position,
        )
    return fixed, position, None


def _lvar_span(buffer: bytes, position: int, offset: int) -> tuple[int, int]:
    """(length, start) of LVAR data whose length byte is at ``position``."""
    lvar = _byte(buffer, position, offset, "LVAR")
    length = _lvar_length(lvar, offset + position)
    start = position + 1
    if start + length > len(buffer):
        raise IncompleteFrame(
            f"record data needs {length} bytes, {len(buffer) - start} left",
            offset=offset + start,
        )
    return length, start


def _plan(header: RecordHeader, manufacturer: str | None, medium: int | None) -> _Plan:
    """Everything ``header`` fixes about its record, for ``_apply``."""
    head = (
        f"{header.dif:02x}",
        header.difes.hex(),
        f"{header.vif:02x}" if header.vif is not None else "",
        header.vifes.hex(),
    )
    size = header.end - header.start
    field = header.data_field
    if header.vif is None:  # global readout request (DIF 0x7F), sent by masters
        request = "global_readout_request"
        return _Plan(
            size, 0, field, head, (), None, request, None, None, 0, 0, 0, header.function, 0, 1, 1
        )
    meaning = describe(header.vif, header.vifes, header.plain_text, manufacturer, medium)
    tariff, obis_allowed = apply_header(
        meaning,
        manufacturer,
        medium,
        subunit=header.subunit,
        tariff=header.tariff,
        function=header.function,
    )
    extras: list[tuple[str, str]] = []
    if header.plain_text is not None:
        extras.append(("plain_text", header.plain_text))
    if meaning.record_error:
        extras.append(("record_error", meaning.record_error))
    if meaning.manufacturer_vifes:
        extras.append(("manufacturer_vife", meaning.manufacturer_vifes.hex()))
    family = meaning.quantity.family
    backward = meaning.direction == "backward"
    name = None
    obis = None
    if meaning.plain and family:
        name = record_name(family, backward=backward, medium=medium)
        if header.storage == 0 and obis_allowed:
            obis = obis_code(
                family,
                backward=backward,
                phase=meaning.phase,
                function=header.function,
                tariff=tariff,
                medium=medium,
            )
    parts = [name or meaning.quantity.name, *meaning.suffixes]
    if name is None and meaning.direction is not None:
        parts.append(meaning.direction)
    if meaning.phase is not None and meaning.phase not in meaning.suffixes:
        parts.append(meaning.phase)
    number = 0
    if meaning.kind == "number":
        number = 1 if field in _INT_FIELDS else 2 if field in BCD_LENGTHS else 0
    numerator, denominator = _ratio(meaning.scale)
    return _Plan(
        size=size,
        fixed=_FIXED_LENGTHS[field],
        field=field,
        head=head,
        extras=tuple(extras),
        meaning=meaning,
        name="_".join(parts),
        unit=meaning.unit,
        obis=obis,
        storage=header.storage,
        tariff=tariff,
        subunit=header.subunit,
        function=header.function,
        number=number,
        numerator=numerator,
        denominator=denominator,
    )


def _ratio(scale: Decimal) -> tuple[int, int]:
    """A decimal scale as (numerator, power-of-ten denominator)."""
    sign, digits, exponent = scale.as_tuple()
    if not isinstance(exponent, int):  # NaN or infinity: never a VIF's scale
        return 0, 0
    numerator = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
    if exponent >= 0:
        return numerator * 10**exponent, 1
    return numerator, 10**-exponent


def _apply(plan: _Plan, data: bytes, lvar: int | None, where: int, msb_first: bool) -> Record:
    """One record from its plan and its data bytes (wire order); ``where``: the DIF's offset."""
    dif, dife, vif, vife = plan.head
    raw: dict[str, Any] = {
        "dif": dif,
        "dife": dife,
        "vif": vif,
        "vife": vife,
        "data": data.hex(),
        "offset": where,
    }
    meaning = plan.meaning
    if meaning is None:
        return Record(plan.name, None, raw=raw, function=plan.function)
    if plan.extras:
        raw.update(plan.extras)
    value: RecordValue = None
    number = None
    if plan.number == 1:
        number = int.from_bytes(data, "big" if msb_first else "little", signed=True)
    elif plan.number == 2:
        digits = (data if msb_first else data[::-1]).hex()
        if digits.isdigit():  # no sign nibble, no invalid digit: else decode_value says so
            number = int(digits)
    if number is not None:
        if plan.denominator == 1:
            value = number * plan.numerator
        else:
            whole, rest = divmod(number * plan.numerator, plan.denominator)
            value = whole if not rest else Decimal(number) * meaning.scale
    else:
        if msb_first and lvar is None:
            data = data[::-1]
        value = decode_value(plan.field, lvar, data, meaning, raw)
    unit = plan.unit if isinstance(value, (int, float, Decimal)) else None
    return Record(
        plan.name,
        value,
        unit,
        plan.obis,
        plan.storage,
        plan.tariff,
        plan.subunit,
        plan.function,
        raw,
    )


def _undecoded_record(rest: bytes, offset: int, error: FrameError) -> Record:
    raw: dict[str, Any] = {"offset": offset, "code": error.code, "reason": str(error)}
    raw["data"] = rest.hex()
    return Record("undecoded", rest.hex().upper() or None, raw=raw)


def _manufacturer_record(header: RecordHeader, rest: bytes, offset: int) -> Record:
    raw: dict[str, Any] = {"dif": f"{header.dif:02x}", "dife": "", "vif": "", "vife": ""}
    raw["data"] = rest.hex()
    raw["offset"] = offset + header.start
    if header.dif == MORE_RECORDS_FOLLOW:
        raw["more_records_follow"] = True
    return Record("manufacturer_specific", rest.hex().upper() or None, raw=raw)


def _unique_obis(records: list[Record]) -> list[Record]:
    """Keep each OBIS code on its first record: meters that use subunits for other registers
    (e.g. export) would otherwise give the engine two values for one register."""
    seen: set[str] = set()
    unique: list[Record] = []
    for record in records:
        if record.obis is not None and record.obis in seen:
            unique.append(msgspec.structs.replace(record, obis=None))
            continue
        if record.obis is not None:
            seen.add(record.obis)
        unique.append(record)
    return unique
