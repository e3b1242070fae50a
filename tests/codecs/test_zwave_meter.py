"""Meter CC 0x32: exact bytes against zwave-js, value layout, quantities, edge cases."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gateway import obis
from modules.codecs.errors import FrameError, IncompleteFrame
from modules.codecs.zwave.dispatch import parse_command
from modules.codecs.zwave.meter import (
    ElectricScale,
    MeterGet,
    MeterReport,
    MeterReset,
    MeterSupportedReport,
    MeterType,
    RateType,
    key_for_obis,
    quantity,
    report_record,
    value_layout,
)

D = Decimal
E = MeterType.ELECTRIC


@pytest.mark.parametrize(
    ("command", "wire"),
    [
        # zwave-js MeterCC.test.ts
        (MeterGet(), "3201"),
        (MeterGet.for_version(3, ElectricScale.POWER_FACTOR), "320130"),
        (MeterGet.for_version(4, ElectricScale.KVARH), "32013801"),
        (MeterReport(3, 2, D("5.5"), RateType.EXPORT, 1, 1, 0), "32024331370000"),
        (MeterReport(E, 6, D("5.5"), RateType.EXPORT, 1, 1, 5, D("5.4")), "3202c13137000536"),
        (MeterReport(E, 8, D("5.5"), RateType.EXPORT, 1, 1, 5, D("5.4")), "3202c1393700053601"),
        (MeterSupportedReport(21, (1, 2, 3, 5, 6), (), True), "3204956e"),
        (MeterSupportedReport(21, (0, 7, 15), (RateType.EXPORT,), True), "3204d581020101"),
        (MeterReset(7, 3, 0, D("12.3"), 1, 1), "320507397b"),
        (MeterReset(), "3205"),
        # the report inside zwave-js's meterReportPropertyKeyName frame
        (
            MeterReport.of(
                E,
                ElectricScale.KWH,
                D("796.23"),
                rate_type=1,
                delta_time_s=301,
                previous_value=D("796.23"),
            ),
            "3202214400013707012d00013707",
        ),
    ],
)
def test_bytes_match_zwave_js(command: object, wire: str) -> None:
    assert command.encode().hex() == wire  # type: ignore[attr-defined]
    assert parse_command(bytes.fromhex(wire)) == command


def test_get_for_each_version() -> None:
    assert MeterGet.for_version(1, 2).encode().hex() == "3201"
    assert MeterGet.for_version(2, 2).encode().hex() == "320110"
    assert MeterGet.for_version(4, ElectricScale.W, RateType.EXPORT).encode().hex() == "32019000"
    assert MeterGet.for_version(6, ElectricScale.KVAR, RateType.IMPORT).encode().hex() == "32017800"
    with pytest.raises(ValueError):
        MeterGet.for_version(2, ElectricScale.POWER_FACTOR)  # V2 has two scale bits
    with pytest.raises(ValueError):
        MeterGet(8).encode()  # kvarh needs the V4 Scale 2 byte


def test_get_ignores_scale2_unless_scale_is_7() -> None:
    assert parse_command(bytes.fromhex("32011005")) == MeterGet(2, 0, scale2_present=True)
    assert parse_command(bytes.fromhex("32013805")) == MeterGet(12, 0, scale2_present=True)


def test_supported_report_of_our_meter_advertises_kvarh_in_the_extra_byte() -> None:
    scales = (0, 2, 4, 5, 6, 8)
    wire = MeterSupportedReport(E, scales, (1, 2)).encode()
    assert wire.hex() == "320461f50102"
    parsed = parse_command(wire)
    assert isinstance(parsed, MeterSupportedReport)
    assert (parsed.scales, parsed.rate_types, parsed.supports_reset) == (scales, (1, 2), False)


def test_report_scale_7_without_scale2_byte_reads_as_kvar() -> None:
    # zwave-js refuses this; a V3 meter may send it, so it decodes as scale 7.
    report = parse_command(bytes.fromhex("3202a13937000536"))
    assert isinstance(report, MeterReport)
    assert (report.scale, report.value, report.previous_value) == (7, D("5.5"), D("5.4"))


def test_report_without_delta_time_is_v1() -> None:
    report = parse_command(bytes.fromhex("3202014400013707"))
    assert report == MeterReport(E, 0, D("796.23"), 0, 2, 4)


def test_negative_values_and_unknown_delta() -> None:
    report = MeterReport(E, ElectricScale.W, D("-1234.5"), 2, 1, 2, 0xFFFF, D("-1.0"))
    wire = report.encode()
    assert wire.hex() == "32024132cfc7fffffff6"
    assert parse_command(wire) == report


def test_bad_size_is_invalid_and_short_value_truncated() -> None:
    with pytest.raises(FrameError) as bad:
        parse_command(bytes.fromhex("320201230000"))
    assert (bad.value.code, bad.value.offset) == ("bad_frame", 3)
    with pytest.raises(IncompleteFrame) as short:
        parse_command(bytes.fromhex("320201440001"))
    assert short.value.code == "truncated"


@pytest.mark.parametrize(
    "report",
    [
        MeterReport(E, 0, D("1.5"), precision=1, size=1, delta_time_s=0, previous_value=D(1)),
        MeterReport(E, 0, D("1.5"), precision=1, size=1, delta_time_s=5),
        MeterReport(E, 8, D("1.5"), precision=1, size=1),
        MeterReport(E, 0, D("1.55"), precision=1, size=1),
        MeterReport(E, 0, D("12.8"), precision=1, size=1),
        MeterReport(E, 0, D("1"), size=3),
        MeterReport(E, 0, D("1"), precision=8),
        MeterReport(32, 0, D("1")),
        MeterReport(E, 0, D("1"), rate_type=4),
    ],
)
def test_report_encoder_refuses_what_the_wire_cannot_carry(report: MeterReport) -> None:
    with pytest.raises(ValueError):
        report.encode()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (D("5.5"), (D("5.5"), 1, 1)),
        (D("0"), (D("0"), 0, 1)),
        (D("1E+3"), (D("1000"), 0, 2)),
        (D("1234567.89"), (D("1234567.89"), 2, 4)),
        (D("99999999.99"), (D("100000000.0"), 1, 4)),
        (D("0.123456789"), (D("0.1234568"), 7, 4)),
        (D("-128"), (D("-128"), 0, 1)),
        (D("-129"), (D("-129"), 0, 2)),
    ],
)
def test_value_layout(value: Decimal, expected: tuple[Decimal, int, int]) -> None:
    rounded, precision, size = value_layout(value)
    assert (rounded, precision, size) == expected
    assert MeterReport(E, 0, rounded, precision=precision, size=size).encode()


@pytest.mark.parametrize("value", [D("NaN"), D("Infinity"), D("3E+9")])
def test_value_layout_refuses(value: Decimal) -> None:
    with pytest.raises(ValueError):
        value_layout(value)


def test_report_of_shares_one_layout_for_value_and_previous() -> None:
    report = MeterReport.of(E, 0, D("5.5"), delta_time_s=60, previous_value=D("5.45"))
    assert (report.precision, report.size) == (2, 2)
    assert parse_command(report.encode()) == report
    no_delta = MeterReport.of(E, 0, D("5.5"), previous_value=D("5.45"))
    assert (no_delta.delta_time_s, no_delta.previous_value) == (0, None)


@pytest.mark.parametrize(
    ("key", "name", "unit", "code"),
    [
        ((E, 1, 0), "energy_import", "kWh", "1-0:1.8.0"),
        ((E, 0, 0), "energy_import", "kWh", "1-0:1.8.0"),
        ((E, 2, 0), "energy_export", "kWh", "1-0:2.8.0"),
        ((E, 1, 1), "apparent_energy_import", "kVAh", "1-0:9.8.0"),
        ((E, 1, 2), "power_import", "W", "1-0:1.7.0"),
        ((E, 2, 2), "power_export", "W", "1-0:2.7.0"),
        ((E, 0, 3), "pulse_count", None, None),
        ((E, 0, 4), "voltage", "V", "1-0:12.7.0"),
        ((E, 0, 5), "current", "A", "1-0:11.7.0"),
        ((E, 0, 6), "power_factor", None, "1-0:13.7.0"),
        ((E, 1, 7), "reactive_power_import", "kvar", "1-0:3.7.0"),
        ((E, 2, 8), "reactive_export", "kvarh", "1-0:4.8.0"),
        ((MeterType.WATER, 2, 2), "water_volume_export", "gal", None),
        ((MeterType.GAS, 0, 0), "gas_volume", "m³", None),
        ((MeterType.HEATING, 0, 0), "heating_energy", "kWh", None),
        ((21, 0, 1), "meter_21_scale_1", None, None),
    ],
)
def test_quantity(key: tuple[int, int, int], name: str, unit: str | None, code: str | None) -> None:
    found = quantity(*key)
    assert (found.name, found.unit, found.obis) == (name, unit, code)


def test_record_names_agree_with_the_gateway_obis_table() -> None:
    for scale in ElectricScale:
        for rate in (RateType.IMPORT, RateType.EXPORT):
            found = quantity(E, rate, scale)
            known = obis.describe(found.obis) if found.obis else None
            if known is not None:
                assert known.name == found.name, found.obis


def test_key_for_obis_inverts_quantity() -> None:
    for code in ("1-0:1.8.0", "1-0:2.8.0", "1-0:3.8.0", "1-0:4.8.0", "1-0:1.7.0", "1-0:13.7.0"):
        key = key_for_obis(code)
        assert key is not None
        assert quantity(*key).obis == code
    assert key_for_obis("1-0:4.8.0") == (E, RateType.EXPORT, ElectricScale.KVARH)
    assert key_for_obis("1-0:32.7.0") is None


def test_report_record() -> None:
    record = report_record(MeterReport(E, 8, D("5.5"), 2, 1, 1, 5, D("5.4")))
    assert (record.name, record.value, record.unit, record.obis) == (
        "reactive_export",
        D("5.5"),
        "kvarh",
        "1-0:4.8.0",
    )
    assert record.raw["scale"] == 8
    assert record.raw["previous_value"] == D("5.4")
    assert record.raw["delta_time_s"] == 5
