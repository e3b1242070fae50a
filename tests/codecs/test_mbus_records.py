"""M-Bus application layer: data types, VIF tables, records, compact formats, encoders."""

from __future__ import annotations

import struct
from datetime import date, datetime, time
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modules.codecs.errors import FrameError, IncompleteFrame
from modules.codecs.mbus import types
from modules.codecs.mbus.encode import (
    DataRecord,
    encode_dib,
    encode_record,
    encode_records,
    obis_record,
)
from modules.codecs.mbus.records import (
    decode_compact,
    decode_records,
    more_records_follow,
    record_format,
)
from modules.codecs.records import Record

EXAMPLES = settings(max_examples=150, deadline=None)
INT_SIZES = {"int8": 1, "int16": 2, "int24": 3, "int32": 4, "int48": 6, "int64": 8}
BCD_SIZES = {"bcd2": 1, "bcd4": 2, "bcd6": 3, "bcd8": 4, "bcd12": 6}


def one(payload: bytes, *, medium: int | None = None, manufacturer: str | None = None) -> Record:
    records = decode_records(payload, medium=medium, manufacturer=manufacturer)
    assert len(records) == 1
    return records[0]


@given(st.integers(min_value=-(10**11) + 1, max_value=10**12 - 1))
@EXAMPLES
def test_bcd_round_trip_including_negative(value: int) -> None:
    encoded = types.bcd_encode(value, 6)
    assert types.bcd_decode(encoded) == (value, False)


def test_bcd_with_hex_digits_is_flagged_and_read_like_libmbus() -> None:
    assert types.bcd_decode(bytes.fromhex("DDB4EBDD")) == (13110413, True)
    assert types.bcd_decode(bytes.fromhex("99F9")) == (-999, False)
    record = one(bytes.fromhex("0B3ADDB4EB"))
    assert record.value == Decimal("11.0413")
    assert record.raw["bcd_invalid"] is True
    with pytest.raises(ValueError, match="does not fit"):
        types.bcd_encode(10**4, 2)


@given(st.sampled_from(sorted(INT_SIZES)), st.data())
@EXAMPLES
def test_integer_records_round_trip(coding: str, data: st.DataObject) -> None:
    bits = 8 * INT_SIZES[coding]
    value = data.draw(st.integers(min_value=-(2 ** (bits - 1)), max_value=2 ** (bits - 1) - 1))
    record = one(encode_record(DataRecord(b"\x03", value, coding)))  # type: ignore[arg-type]
    assert record.value == Decimal(value) / 1000
    assert record.unit == "kWh"


@given(st.sampled_from(sorted(BCD_SIZES)), st.data())
@EXAMPLES
def test_bcd_records_round_trip(coding: str, data: st.DataObject) -> None:
    digits = 2 * BCD_SIZES[coding]
    value = data.draw(st.integers(min_value=-(10 ** (digits - 1)) + 1, max_value=10**digits - 1))
    record = one(encode_record(DataRecord(b"\x13", value, coding)))  # type: ignore[arg-type]
    assert record.value == Decimal(value) / 1000
    assert record.unit == "m³"


@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
@EXAMPLES
def test_real_records_round_trip_to_the_same_float32(value: float) -> None:
    record = one(encode_record(DataRecord(b"\x2b", value, "real")))
    got = record.value
    assert isinstance(got, float)
    assert struct.pack("<f", got) == struct.pack("<f", value)


def test_real_values_read_as_the_decimal_the_meter_meant() -> None:
    record = one(bytes.fromhex("05 03") + struct.pack("<f", 33385.496))
    assert record.value == 33.385496
    nan = one(bytes.fromhex("05 03 0000C07F"))
    assert nan.value is None and nan.raw["real_invalid"]


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2080, 12, 31)))
@EXAMPLES
def test_date_g_round_trips(value: date) -> None:
    assert one(encode_record(DataRecord(b"\x6c", value, "date_g"))).value == value.isoformat()


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2080, 12, 31, 23, 59, 59)))
@EXAMPLES
def test_datetime_f_and_i_round_trip(value: datetime) -> None:
    minute = value.replace(second=0, microsecond=0)
    f = one(encode_record(DataRecord(b"\x6d", value, "datetime_f")))
    assert f.value == minute.isoformat()
    second = value.replace(microsecond=0)
    i = one(encode_record(DataRecord(b"\x6d", value, "datetime_i")))
    assert i.value == second.isoformat()


def test_time_j_invalid_dates_and_daylight_saving() -> None:
    assert one(encode_record(DataRecord(b"\x6d", time(13, 5, 9), "time_j"))).value == "13:05:09"
    assert one(bytes.fromhex("046D A115E917")).value is None
    assert one(bytes.fromhex("026C 0000")).value is None
    assert one(bytes.fromhex("026C FFFF")).value is None
    assert one(bytes.fromhex("026C 9F2C")).value == "2020-12-31"
    k = one(bytes.fromhex("04FD72 02 1D 53 14")).value
    assert isinstance(k, str) and k.startswith("begin --03-29T02")
    with pytest.raises(ValueError, match="outside"):
        types.encode_date_g(date(1999, 1, 1))


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=40))
@EXAMPLES
def test_lvar_text_round_trips(text: str) -> None:
    record = one(encode_record(DataRecord(b"\xfd\x11", text, "text")))
    assert record.value == text.rstrip("\x00")
    assert record.name == "customer"


@given(st.binary(min_size=1, max_size=15), st.integers(min_value=-(10**9), max_value=10**9))
@EXAMPLES
def test_lvar_binary_and_bcd_round_trip(blob: bytes, number: int) -> None:
    binary = one(encode_record(DataRecord(b"\xfd\x17", blob.hex(), "binary")))
    assert binary.value == blob.hex().upper()
    bcd = one(encode_record(DataRecord(b"\x03", number, "lvar_bcd")))
    assert bcd.value == Decimal(number) / 1000


@given(
    st.integers(min_value=0, max_value=2**41 - 1),
    st.integers(min_value=0, max_value=2**20 - 1),
    st.integers(min_value=0, max_value=2**10 - 1),
    st.sampled_from(["instantaneous", "maximum", "minimum", "error"]),
)
@EXAMPLES
def test_storage_tariff_subunit_function_round_trip(
    storage: int, tariff: int, subunit: int, function: str
) -> None:
    encoded = encode_record(
        DataRecord(b"\x06", 7, storage=storage, tariff=tariff, subunit=subunit, function=function)
    )
    record = one(encoded)
    assert (record.storage, record.tariff, record.subunit, record.function) == (
        storage,
        tariff,
        subunit,
        function,
    )


RECORD_SPECS = st.one_of(
    st.builds(DataRecord, st.just(b"\x06"), st.integers(0, 2**31 - 1), st.just("int32")),
    st.builds(DataRecord, st.just(b"\xfd\xc8\xfc\x01"), st.integers(0, 9999), st.just("bcd4")),
    st.builds(DataRecord, st.just(b"\x2b"), st.floats(width=32, allow_nan=False), st.just("real")),
    st.builds(DataRecord, st.just(b"\x78"), st.integers(0, 99999999), st.just("bcd8")),
    st.builds(DataRecord, st.just(b"\xfd\x0e"), st.text("ABC123", max_size=8), st.just("text")),
    st.builds(
        DataRecord,
        st.just(b"\x86\x3c"),
        st.integers(0, 2**47),
        st.just("int48"),
        st.integers(0, 15),
    ),
)


@given(st.lists(RECORD_SPECS, max_size=8), st.booleans())
@EXAMPLES
def test_compact_frames_decode_like_full_frames(specs: list[DataRecord], fill: bool) -> None:
    payload = (b"\x2f" if fill else b"") + encode_records(specs)
    full = decode_records(payload, offset=19, medium=2)
    fmt = record_format(payload)
    data = b"".join(encode_record(spec)[len(_header(spec)) :] for spec in specs)
    assert fmt == b"".join(_header(spec) for spec in specs)
    assert _facts(decode_compact(fmt, data, offset=19, medium=2)) == _facts(full)


def _header(spec: DataRecord) -> bytes:
    dib = encode_dib(0, storage=spec.storage, tariff=spec.tariff, subunit=spec.subunit)
    return encode_record(spec)[: len(dib) + len(spec.vib)]


def _facts(records: list[Record]) -> list[tuple[object, ...]]:
    return [(r.name, r.value, r.unit, r.obis, r.storage, r.tariff, r.raw["vife"]) for r in records]


def test_compact_decoding_checks_the_data_length() -> None:
    fmt = bytes.fromhex("0406 042B")
    records = decode_compact(fmt, bytes.fromhex("01000000 02000000"), offset=10)
    assert [(r.name, r.value) for r in records] == [("energy", 1), ("power", 2)]
    with pytest.raises(IncompleteFrame) as short:
        decode_compact(fmt, bytes.fromhex("01000000 0200"), offset=10)
    assert short.value.offset == 14
    with pytest.raises(FrameError, match="more than its format"):
        decode_compact(fmt, bytes(9))


def test_fill_bytes_manufacturer_data_and_more_records_follow() -> None:
    payload = bytes.fromhex("2F 2F 04 06 01000000 2F 0F 01 02 03")
    records = decode_records(payload)
    assert [r.name for r in records] == ["energy", "manufacturer_specific"]
    assert records[1].value == "010203"
    assert not more_records_follow(records)
    assert record_format(payload) == bytes.fromhex("0406")
    more = decode_records(bytes.fromhex("04 06 01000000 1F"))
    assert more_records_follow(more)
    assert more[1].value is None and more[1].raw["more_records_follow"] is True


def test_errors_name_the_byte_relative_to_the_offset() -> None:
    with pytest.raises(FrameError, match="more than 10 DIFEs") as difes:
        decode_records(bytes([0x84] + [0x80] * 10 + [0x00, 0x06]), offset=100)
    assert difes.value.offset == 111
    with pytest.raises(FrameError, match="more than 10 VIFEs"):
        decode_records(bytes([0x04, 0x86] + [0xF0] * 11))
    with pytest.raises(FrameError, match="reserved DIF"):
        decode_records(b"\x3f")
    with pytest.raises(FrameError, match="reserved LVAR") as lvar:
        decode_records(bytes.fromhex("0D 06 FA 00"), offset=5)
    assert lvar.value.offset == 7
    with pytest.raises(IncompleteFrame, match="DIFE"):
        decode_records(b"\x84")
    with pytest.raises(IncompleteFrame, match="VIF"):
        decode_records(b"\x04")
    with pytest.raises(IncompleteFrame, match="needs 4 bytes"):
        decode_records(bytes.fromhex("04 06 0100"))
    with pytest.raises(IncompleteFrame, match="plain-text"):
        decode_records(bytes.fromhex("02 7C 05 4142"))


def test_vif_tables_and_combinable_vifes() -> None:
    cases = {
        "04FB8275 64000000": ("reactive_energy_import", Decimal("10.0"), "kvarh", "1-0:3.8.0"),
        "02FBB5FC02 E803": ("apparent_power_import_l2", 10000, "VA", "1-0:49.7.0"),
        "02FB2D 8813": ("frequency", 50, "Hz", "1-0:14.7.0"),
        "04FD59 39300000": ("current", Decimal("12.345"), "A", "1-0:11.7.0"),
        "0413 01000000": ("volume", Decimal("0.001"), "m³", None),
        "04BB22 05000000": ("volume_flow_per_hour", Decimal("0.005"), "m³/h/h", None),
        "04AB28 05000000": ("power_per_input_pulse_0", 5, "W", None),
        "04BB7D 05000000": ("volume_flow", 5, "m³/h", None),
        "049342 05000000": ("volume_lower_limit_exceed_begin_first_datetime", None, None, None),
        "02FD1C 6009": ("baud_rate", 2400, "Bd", None),
        "01FF21 07": ("manufacturer_specific", 7, None, None),
        "0406 05000000": ("energy_import", 5, "kWh", "1-0:1.8.0"),
        "14AB3C 05000000": ("power_export", 5, "W", "1-0:2.6.0"),
        "4406 05000000": ("energy_import", 5, "kWh", None),
        "02FC03485225 74 2215": ("rh", Decimal("54.10"), "%RH", None),
        "0493 12 01000000": ("volume_average", Decimal("0.001"), "m³", None),
    }
    for hex_text, (name, value, unit, obis) in cases.items():
        record = one(bytes.fromhex(hex_text), medium=2)
        got = (record.name, record.value, record.unit, record.obis)
        assert got == (name, value, unit, obis), hex_text
    error = one(bytes.fromhex("04 86 15 00000000"))
    assert error.raw["record_error"] == "no_data_available" and error.obis is None


def test_kamstrup_manufacturer_vifs_need_the_manufacturer() -> None:
    payload = bytes.fromhex("04FF07 34440200")
    assert one(payload).name == "manufacturer_specific"
    kamstrup = one(payload, manufacturer="KAM")
    assert (kamstrup.name, kamstrup.value, kamstrup.unit) == ("forward_energy", 148532, "m³·°C")


def test_duplicate_obis_codes_stay_on_the_first_record_only() -> None:
    payload = bytes.fromhex("0406 01000000 8440 06 02000000")
    first, second = decode_records(payload, medium=2)
    assert (first.obis, second.obis, second.subunit) == ("1-0:1.8.0", None, 1)


@pytest.mark.parametrize(
    "obis",
    [
        "1-0:1.8.0",
        "1-0:1.8.2",
        "1-0:2.8.1",
        "1-0:3.8.0",
        "1-0:4.8.0",
        "1-0:1.7.0",
        "1-0:2.7.0",
        "1-0:21.7.0",
        "1-0:62.7.0",
        "1-0:32.7.0",
        "1-0:72.7.0",
        "1-0:31.7.0",
        "1-0:51.7.0",
        "1-0:14.7.0",
        "1-0:1.6.0",
        "1-0:3.7.0",
    ],
)
def test_obis_records_decode_to_their_obis(obis: str) -> None:
    record = one(encode_record(obis_record(obis, Decimal("12.34"))), medium=2)
    assert record.obis == obis
    assert isinstance(record.value, Decimal | int), record
    assert abs(record.value - Decimal("12.34")) <= Decimal("0.5")
    with pytest.raises(ValueError, match="no M-Bus"):
        obis_record("1-0:99.1.0", 1)
