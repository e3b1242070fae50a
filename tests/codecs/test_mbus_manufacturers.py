"""Manufacturers' documented M-Bus codes: Schneider, Eltako, eBZ, IME, Kamstrup, Zenner."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from modules.codecs.mbus.frames import MbusDecoder
from modules.codecs.mbus.records import decode_records
from modules.codecs.records import Record
from modules.codecs.wmbus.telegrams import WmbusDecoder

VECTORS = Path(__file__).parent.parent / "fixtures" / "vectors"
ELECTRICITY = 0x02


def _vector(source_part: str) -> dict[str, Any]:
    items: list[dict[str, Any]] = json.loads((VECTORS / "wmbus_all.json").read_text("utf-8"))
    return next(item for item in items if source_part in str(item.get("source")))


def _wired(source_part: str) -> list[Record]:
    return MbusDecoder().decode(bytes.fromhex(_vector(source_part)["hex"])).records


def _wireless(source_part: str) -> list[Record]:
    item = _vector(source_part)
    key = bytes.fromhex(item["key"]) if item.get("key") else None
    return WmbusDecoder().decode(bytes.fromhex(item["hex"]), key=key, auth_key=None).records


def _table(records: list[Record]) -> dict[str, tuple[Any, str | None, str | None]]:
    """name -> (value, unit, obis) for records with a unique name."""
    out: dict[str, tuple[Any, str | None, str | None]] = {}
    for record in records:
        out.setdefault(record.name, (record.value, record.unit, record.obis))
    return out


def test_schneider_reactive_energy_lives_in_subunit_1() -> None:
    records = _wired("iem3000.xmq:1704")
    by_raw = {(r.raw["dif"], r.raw["dife"], r.raw["vif"], r.raw["vife"]): r for r in records}
    reactive = by_raw[("87", "40", "03", "")]
    assert (reactive.name, reactive.value, reactive.unit, reactive.obis) == (
        "reactive_energy_import",
        Decimal("55.764"),
        "kvarh",
        "1-0:3.8.0",
    )
    export = by_raw[("87", "40", "83", "ff09")]
    assert (export.name, export.value, export.unit, export.obis) == (
        "reactive_energy_export",
        Decimal("114433.696"),
        "kvarh",
        "1-0:4.8.0",
    )
    active_export = by_raw[("07", "", "83", "ff09")]
    assert (active_export.name, active_export.value, active_export.obis) == (
        "energy_export",
        Decimal("0.001"),
        "1-0:2.8.0",
    )
    partial = by_raw[("07", "", "83", "ff0d")]
    assert (partial.name, partial.value, partial.obis) == (
        "energy_partial",
        Decimal("76248.301"),
        None,
    )
    phases = [by_raw[("07", "", "83", f"ff0{n}")] for n in (1, 2, 3)]
    assert [(p.value, p.obis) for p in phases] == [
        (Decimal("25203.574"), "1-0:21.8.0"),
        (Decimal("26746.229"), "1-0:41.8.0"),
        (Decimal("24299.607"), "1-0:61.8.0"),
    ]
    # Only the real active import carries 1.8.0: subunit 1 is reactive, not a second A+.
    assert [r.obis for r in records].count("1-0:1.8.0") == 0
    assert by_raw[("04", "", "ed", "ff0c")].name == "datetime_partial_energy_reset"
    assert _table(records)["pulse_constant"][0] == 500.0


def test_schneider_phases_frequency_and_power_subunits() -> None:
    table = _table(_wired("iem3000.xmq:1734"))
    assert table["frequency"] == (pytest.approx(50.048115), "Hz", "1-0:14.7.0")
    assert table["voltage_l1"] == (pytest.approx(230.02022), "V", "1-0:32.7.0")
    assert table["voltage_l3_l1"] == (pytest.approx(398.47897), "V", None)
    assert table["voltage_average_l_n"] == (pytest.approx(229.66014), "V", None)
    assert table["voltage_average_l_l"] == (pytest.approx(397.77518), "V", None)
    assert table["current_l2"] == (0.0, "A", "1-0:51.7.0")
    assert table["current_average"] == (0.0, "A", None)
    assert table["power_import_l3"] == (0.0, "W", "1-0:61.7.0")
    assert table["reactive_power_import"] == (0.0, "var", "1-0:3.7.0")
    assert table["apparent_power_import"] == (0.0, "VA", "1-0:9.7.0")
    assert table["energy_import"] == (Decimal("534411.606"), "kWh", "1-0:1.8.0")


def test_schneider_settings_after_vif_ff() -> None:
    table = _table(_wired("iem3000.xmq:1692"))
    assert table["nominal_frequency"] == (50, "Hz", None)
    assert table["phases"] == (3, None, None)
    assert table["wires"] == (4, None, None)
    assert table["operating_timer"] == (10970881, None, None)
    assert table["reactive_energy_import"] == (pytest.approx(33.717668), "kvarh", "1-0:3.8.0")
    assert table["reactive_energy_export"] == (0.0, "kvarh", "1-0:4.8.0")
    assert table["reactive_energy_partial"][:2] == (pytest.approx(33.717668), "kvarh")


# VIF 0xFF codes of the iEM3000 manual's manufacturer-specific table -> (name, unit).
SCHNEIDER_VIFS = {
    0x0A: ("power_factor", None),
    0x0B: ("frequency", "Hz"),
    0x10: ("active_tariff", None),
    0x11: ("tariff_control_mode", None),
    0x20: ("operating_timer", None),
    0x21: ("phases", None),
    0x22: ("wires", None),
    0x23: ("power_system_configuration", None),
    0x24: ("nominal_frequency", "Hz"),
    0x25: ("vt_count", None),
    0x26: ("vt_primary", "V"),
    0x27: ("vt_secondary", "V"),
    0x28: ("ct_count", None),
    0x29: ("ct_primary", "A"),
    0x2A: ("ct_secondary", "A"),
    0x2B: ("vt_connection_type", None),
    0x2C: ("energy_pulse_duration", "ms"),
    0x2D: ("pulse_output_association", None),
    0x2E: ("pulse_weight", None),
    0x2F: ("pulse_constant", None),
    0x30: ("digital_input_association", None),
    0x32: ("digital_input_status", None),
    0x34: ("overload_alarm_setup", None),
    0x35: ("overload_pickup_setpoint", None),
    0x36: ("overload_output_association", None),
    0x37: ("alarm_activated_status", None),
    0x38: ("alarm_acknowledgement", None),
    0x3A: ("last_alarm_value", None),
}


@pytest.mark.parametrize("code", sorted(SCHNEIDER_VIFS))
def test_schneider_vif_ff_table(code: int) -> None:
    payload = bytes([0x02, 0xFF, code, 0x2A, 0x01])
    (record,) = decode_records(payload, medium=ELECTRICITY, manufacturer="SEC")
    name, unit = SCHNEIDER_VIFS[code]
    assert (record.name, record.value, record.unit) == (name, 298, unit)
    (other,) = decode_records(payload, medium=ELECTRICITY, manufacturer="NES")
    assert other.name == "manufacturer_specific"


# VIFE after a VIFE 0xFF on an energy record (VIF 0x83 = Wh) -> (name, obis).
SCHNEIDER_VIFES = {
    0x00: ("energy_average", None),
    0x01: ("energy_import_l1", "1-0:21.8.0"),
    0x02: ("energy_import_l2", "1-0:41.8.0"),
    0x03: ("energy_import_l3", "1-0:61.8.0"),
    0x04: ("energy_average_l_n", None),
    0x05: ("energy_import_l1_l2", None),
    0x06: ("energy_import_l2_l3", None),
    0x07: ("energy_import_l3_l1", None),
    0x08: ("energy_average_l_l", None),
    0x09: ("energy_export", "1-0:2.8.0"),
    0x0D: ("energy_partial", None),
    0x72: ("energy_resettable", None),
}


@pytest.mark.parametrize("code", sorted(SCHNEIDER_VIFES))
def test_schneider_vife_table(code: int) -> None:
    payload = bytes([0x04, 0x83, 0xFF, code]) + (1234).to_bytes(4, "little")
    (record,) = decode_records(payload, medium=ELECTRICITY, manufacturer="SEC")
    assert (record.name, record.obis) == SCHNEIDER_VIFES[code]
    assert (record.value, record.unit) == (Decimal("1.234"), "kWh")


def test_schneider_vife_dates() -> None:
    for code, name in ((0x0C, "partial_energy_reset"), (0x0E, "input_metering_reset")):
        payload = bytes([0x04, 0xED, 0xFF, code]) + bytes.fromhex("0A0B3F2C")
        (record,) = decode_records(payload, medium=ELECTRICITY, manufacturer="SEC")
        assert (record.name, record.value) == (f"datetime_{name}", "2017-12-31T11:10:00")
    payload = bytes([0x04, 0xED, 0xFF, 0x39]) + bytes.fromhex("0A0B3F2C")
    (record,) = decode_records(payload, medium=ELECTRICITY, manufacturer="SEC")
    assert record.name == "datetime_last_alarm"


# (DIF, DIFEs, VIF, VIFEs) of a Schneider record -> (name, unit, obis).
SCHNEIDER_SUBUNITS = {
    "84 40 03": ("reactive_energy_import", "kvarh", "1-0:3.8.0"),
    "84 50 03": ("energy_export", "kWh", "1-0:2.8.1"),
    "84 40 83 FF 01": ("energy_export_l1", "kWh", "1-0:22.8.0"),
    "84 80 10 03": ("energy_import", "kWh", "1-0:1.8.4"),
    "84 90 40 03": ("reactive_energy_import", "kvarh", "1-0:3.8.1"),
    "84 80 40 83 FF 02": ("reactive_energy_import_l2", "kvarh", "1-0:43.8.0"),
    "84 D0 40 03": ("reactive_energy_export", "kvarh", "1-0:4.8.1"),
    "84 C0 40 83 FF 03": ("reactive_energy_export_l3", "kvarh", "1-0:64.8.0"),
    "84 80 80 40 03": ("apparent_energy_import", "kVAh", "1-0:9.8.0"),
    "84 80 80 40 83 FF 01": ("apparent_energy_import_l1", "kVAh", "1-0:29.8.0"),
    "84 C0 80 40 03": ("apparent_energy_export", "kVAh", "1-0:10.8.0"),
    "84 C0 80 40 83 FF 02": ("apparent_energy_export_l2", "kVAh", "1-0:50.8.0"),
    "84 80 C0 40 03": ("energy_net", "kWh", None),
    "84 C0 C0 40 83 FF 01": ("reactive_energy_l1_net", "kvarh", None),
    "84 80 80 80 40 03": ("apparent_energy_net", "kVAh", None),
    "84 40 2B": ("reactive_power_import", "var", "1-0:3.7.0"),
    "84 80 40 2B": ("apparent_power_import", "VA", "1-0:9.7.0"),
    "84 80 40 AB FF 01": ("reactive_power_import_l1", "var", "1-0:23.7.0"),
    "84 80 80 40 AB FF 03": ("apparent_power_import_l3", "VA", "1-0:69.7.0"),
    # A subunit Schneider documents without a known meaning here: named, but no OBIS.
    "84 C0 40 03": ("energy_import", "kWh", None),
}


@pytest.mark.parametrize("header", sorted(SCHNEIDER_SUBUNITS))
def test_schneider_subunits(header: str) -> None:
    payload = bytes.fromhex(header) + (2500).to_bytes(4, "little")
    (record,) = decode_records(payload, medium=ELECTRICITY, manufacturer="SEC")
    name, unit, obis = SCHNEIDER_SUBUNITS[header]
    assert (record.name, record.unit, record.obis) == (name, unit, obis)
    assert record.value in (Decimal("2.5"), 2500)


def test_schneider_conventions_need_an_electricity_meter() -> None:
    payload = bytes.fromhex("84 40 03") + (2500).to_bytes(4, "little")
    (record,) = decode_records(payload, medium=0x04, manufacturer="SEC")
    assert (record.name, record.unit) == ("energy", "kWh")


def test_eltako_phases_total_and_reactive_subunit() -> None:
    table = _table(_wired("eltako.xmq"))
    assert table["power_import"] == (980, "W", "1-0:1.7.0")
    assert table["reactive_power_import"] == (250, "var", "1-0:3.7.0")
    assert table["power_import_l2"] == (360, "W", "1-0:41.7.0")
    assert table["reactive_power_import_l3"] == (60, "var", "1-0:63.7.0")
    assert table["current_l1"] == (Decimal("1.6"), "A", "1-0:31.7.0")
    assert table["voltage_l2"] == (239, "V", "1-0:52.7.0")
    assert table["ct_ratio"] == (1, None, None)
    assert table["active_tariff"] == (0, None, None)


def test_ebz_phase_powers_and_no_invented_total() -> None:
    records = _wireless("ebzwmbe.xmq:70")
    table = _table(records)
    assert table["power_import_l1"] == (Decimal("94.71"), "W", "1-0:21.7.0")
    assert table["power_import_l2"] == (Decimal("106.02"), "W", "1-0:41.7.0")
    assert table["power_import_l3"] == (Decimal("16.06"), "W", "1-0:61.7.0")
    # The meter sends no total power; a sum of the phases is the reader's to make.
    assert "power_import" not in table
    assert table["energy_import"] == (Decimal("2816.304"), "kWh", "1-0:1.8.0")


def test_ime_powers_use_the_tariff_field_for_phases() -> None:
    records = _wired("ime.xmq:795")
    got = [(r.name, r.value, r.unit, r.obis, r.tariff) for r in records[:12]]
    assert got == [
        ("power_import", 6, "W", "1-0:1.7.0", 0),
        ("power_import_l1", 0, "W", "1-0:21.7.0", 0),
        ("power_import_l2", 6, "W", "1-0:41.7.0", 0),
        ("power_import_l3", 0, "W", "1-0:61.7.0", 0),
        ("reactive_power_import", 0, "var", "1-0:3.7.0", 0),
        ("reactive_power_import_l1", 0, "var", "1-0:23.7.0", 0),
        ("reactive_power_import_l2", 0, "var", "1-0:43.7.0", 0),
        ("reactive_power_import_l3", 0, "var", "1-0:63.7.0", 0),
        ("apparent_power_import", 8, "VA", "1-0:9.7.0", 0),
        ("apparent_power_import_l1", 0, "VA", "1-0:29.7.0", 0),
        ("apparent_power_import_l2", 8, "VA", "1-0:49.7.0", 0),
        ("apparent_power_import_l3", 0, "VA", "1-0:69.7.0", 0),
    ]


# The other three telegrams of wmbusmeters' ime driver tests (IME Conto D4).
IME_ENERGY = (
    "68CBCB6808017278563412A525660200000000849010FF80843B362A0C00849010FF80843C00000000"
    "849010FF81843BD1490700849010FF81843C060000008410FF80843BFE180C008420FF80843B381100"
    "008410FF80843C000000008420FF80843C000000008410FF81843B393D07008420FF81843B980C0000"
    "8410FF81843C060000008420FF81843C0000000084A010FF80843B362A0C0084A010FF80843C000000"
    "0084A010FF81843BD149070084A010FF81843C0600000004FF90290000000002FF912B00001F000000"
    "00004116"
)
IME_INSTRUMENTS = (
    "6875756808017278563412A525660202000000848020FF8748F6080000849020FF87489F08000084A0"
    "20FF8748E2080000848020FF88482D0F0000849020FF8848460F000084A020FF8848640F0000848020"
    "FF895900000000849020FF89592600000084A020FF89590000000002FF8A48F4011F0000000000B116"
)
IME_DEMAND = (
    "685C5C6808017278563412A52566020300000082B010FF8B28EB0282B010FF8C2B01008410FF8D2B07"
    "0000008410FF8E2B691D00008420FF8E2BC50D000084B010FF8F21BB260C008410FF8F215A1C0C0084"
    "20FF8F21610A00000F00000000006216"
)


def test_ime_energies_scaled_by_their_unit_vife() -> None:
    records = MbusDecoder().decode(bytes.fromhex(IME_ENERGY)).records
    got = {(r.name, r.tariff): (r.value, r.unit, r.obis) for r in records}
    assert got[("energy_import", 0)] == (Decimal("7972.38"), "kWh", "1-0:1.8.0")
    assert got[("energy_export", 0)] == (0, "kWh", "1-0:2.8.0")
    assert got[("reactive_energy_import", 0)] == (Decimal("4776.49"), "kvarh", "1-0:3.8.0")
    assert got[("reactive_energy_export", 0)] == (Decimal("0.06"), "kvarh", "1-0:4.8.0")
    assert got[("energy_import", 1)] == (Decimal("7928.3"), "kWh", "1-0:1.8.1")
    assert got[("energy_import", 2)] == (Decimal("44.08"), "kWh", "1-0:1.8.2")
    assert got[("reactive_energy_import", 1)] == (Decimal("4744.25"), "kvarh", "1-0:3.8.1")
    assert got[("reactive_energy_import", 2)] == (Decimal("32.24"), "kvarh", "1-0:3.8.2")
    assert got[("energy_partial_forward", 0)] == (Decimal("7972.38"), "kWh", None)


def test_ime_voltages_currents_frequency() -> None:
    records = MbusDecoder().decode(bytes.fromhex(IME_INSTRUMENTS)).records
    table = _table(records)
    assert table["voltage_l1"] == (Decimal("229.4"), "V", "1-0:32.7.0")
    assert table["voltage_l3"] == (Decimal("227.4"), "V", "1-0:72.7.0")
    assert table["voltage_l1_l2"] == (Decimal("388.5"), "V", None)
    assert table["voltage_l2_l3"] == (391, "V", None)
    assert table["voltage_l3_l1"] == (394, "V", None)
    assert table["current_l2"] == (Decimal("0.038"), "A", "1-0:51.7.0")
    assert table["frequency"] == (50, "Hz", "1-0:14.7.0")


def test_ime_power_factor_demand_and_run_time() -> None:
    records = MbusDecoder().decode(bytes.fromhex(IME_DEMAND)).records
    got = {(r.name, r.tariff): (r.value, r.unit) for r in records}
    assert got[("power_factor", 0)] == (Decimal("0.747"), None)
    assert got[("power_factor_sector", 0)] == (1, None)
    assert got[("power_demand", 1)] == (7, "W")
    assert got[("power_demand_maximum", 1)] == (7529, "W")
    assert got[("power_demand_maximum", 2)] == (3525, "W")
    assert got[("run_time", 0)] == (796347, "min")
    assert got[("run_time", 2)] == (2657, "min")


def test_kamstrup_vif_ff_table() -> None:
    expected = {
        0x07: ("forward_energy", "m³·°C"),
        0x08: ("return_energy", "m³·°C"),
        0x20: ("info_codes", None),
        0x22: ("info_codes", None),
        0x23: ("status", None),
    }
    for code, (name, unit) in expected.items():
        payload = bytes([0x04, 0xFF, code]) + (77).to_bytes(4, "little")
        (record,) = decode_records(payload, medium=0x04, manufacturer="KAM")
        assert (record.name, record.value, record.unit) == (name, 77, unit)


def test_monthly_maximum_power_keeps_its_unit() -> None:
    # Zenner C5: DIF 94 (maximum), storage 32, VIF AE (kW), VIFE 25 (per month).
    records = _wireless("c5isf.xmq:280")
    maximum = next(r for r in records if r.function == "maximum")
    assert (maximum.name, maximum.value, maximum.unit) == ("power_period_month", 9000, "W")
    # An instantaneous rate per time stays what the standard says.
    (rate,) = decode_records(bytes.fromhex("04BB22 05000000"))
    assert (rate.name, rate.unit) == ("volume_flow_per_hour", "m³/h/h")


def test_ime_nemo_subunit_2_is_reactive_without_obis() -> None:
    records = _wired("nemo.xmq:356")
    got = [(r.name, r.value, r.unit, r.obis, r.tariff, r.subunit) for r in records[:4]]
    assert got == [
        ("energy_import", 6735835, "kWh", None, 1, 1),
        ("power_import", 97830.0, "W", None, 1, 1),
        ("reactive_energy_import", 1254529, "kvarh", None, 1, 2),
        ("reactive_power_import", 8254.0, "var", None, 1, 2),
    ]


def test_gran_system_s_phases_in_subunits() -> None:
    records = _wireless("gransystems.xmq:267")
    got = [(r.name, r.value, r.obis) for r in records if r.subunit]
    assert got == [
        ("voltage_l1", Decimal("234.1"), "1-0:32.7.0"),
        ("voltage_l2", 0, "1-0:52.7.0"),
        ("voltage_l3", 0, "1-0:72.7.0"),
        ("current_l1", 0, "1-0:31.7.0"),
        ("current_l2", 0, "1-0:51.7.0"),
        ("current_l3", 0, "1-0:71.7.0"),
    ]


def test_abb_vif_ff_settings_and_product_number() -> None:
    table = _table(_wireless("abbb23.xmq:1115"))
    assert table["energy_import"] == (Decimal("5249.17"), "kWh", "1-0:1.8.0")
    assert table["ct_ratio_numerator"] == (0, None, None)
    assert table["alarm_flags"] == (0, None, None)
    assert table["product_number"] == ("B23 111-100", None, None)


# (DIF, DIFEs, VIF, VIFEs) of an ABB record (each ends with the status VIFE 00).
ABB_RECORDS = {
    "84 40 84 00": ("energy_export", "kWh", "1-0:2.8.0"),
    "84 80 40 84 00": ("reactive_energy_import", "kvarh", "1-0:3.8.0"),
    "84 C0 40 84 00": ("reactive_energy_export", "kvarh", "1-0:4.8.0"),
    "84 80 80 40 84 00": ("apparent_energy_import", "kVAh", "1-0:9.8.0"),
    "84 C0 80 40 84 00": ("apparent_energy_export", "kVAh", "1-0:10.8.0"),
    "84 50 84 00": ("energy_export", "kWh", "1-0:2.8.1"),
    "84 40 84 FF 82 00": ("energy_export_l2", "kWh", "1-0:42.8.0"),
    "84 80 40 AB FF 81 00": ("reactive_power_import_l1", "var", "1-0:23.7.0"),
    "84 80 80 40 AB 00": ("apparent_power_import", "VA", "1-0:9.7.0"),
    "04 FD C8 FF 83 00": ("voltage_l3", "V", "1-0:72.7.0"),
    "04 FD C8 FF 85 00": ("voltage_l1_l2", "V", None),
    "04 84 FF F2 00": ("energy_resettable", "kWh", None),
}


@pytest.mark.parametrize("header", sorted(ABB_RECORDS))
def test_abb_subunits_and_phases(header: str) -> None:
    payload = bytes.fromhex(header) + (1200).to_bytes(4, "little")
    (record,) = decode_records(payload, medium=ELECTRICITY, manufacturer="ABB")
    assert (record.name, record.unit, record.obis) == ABB_RECORDS[header]
    assert record.value in (Decimal("12"), 1200, Decimal("120.0"), 120)


def test_abb_frequency_power_factor_and_angle() -> None:
    payload = bytes.fromhex("0AFFD900 8849 02FFE000 E503 02FFD2FF8100 2C01")
    frequency, factor, angle = decode_records(payload, medium=ELECTRICITY, manufacturer="ABB")
    assert (frequency.name, frequency.value, frequency.unit, frequency.obis) == (
        "frequency",
        Decimal("49.88"),
        "Hz",
        "1-0:14.7.0",
    )
    assert (factor.name, factor.value) == ("power_factor", Decimal("0.997"))
    assert (angle.name, angle.value, angle.unit) == ("phase_angle_power", 30, "°")


def _profile(source_part: str) -> tuple[Record, dict[str, Any]]:
    records = _wireless(source_part)
    record = next(r for r in records if "profile" in r.name)
    return record, record.raw["profile"]


def test_inverse_compact_profile_of_bcd_monthly_values() -> None:
    # Caltose HCA: 8D EE 13, spacing control 3B (absolute, months, 6-digit BCD), spacing FE.
    record, profile = _profile("caltose.xmq:123")
    assert (record.name, record.value) == ("hca_inverse_compact_profile", None)
    assert profile["mode"] == "absolute"
    assert profile["spacing"] == "1 month"
    assert profile["elements"][:5] == [627, 395, 176, 7, None]
    assert len(profile["elements"]) == 14


def test_compact_profile_increments_and_invalid_elements() -> None:
    _, increments = _profile("fhkvdataiv.xmq:88")
    assert (increments["mode"], increments["spacing"]) == ("increments", "1 month")
    assert increments["elements"][-2:] == [3, 22]
    # 0x800000, the most negative 24-bit number, is annex A's "invalid".
    _, invalid = _profile("minomess.xmq:198")
    assert invalid["elements"] == [None] * 14
    record, registers = _profile("supercom587.xmq:41")
    assert record.name == "volume_compact_profile_with_register"
    assert registers["elements"][-2:] == [Decimal("0.016"), Decimal("1.331")]


def test_undocumented_manufacturer_lvar_data_stays_hex() -> None:
    records = _wireless("qwaterv2.xmq:266")
    blob = next(r for r in records if r.raw.get("lvar") == "35")
    assert blob.name == "manufacturer_specific"
    assert blob.value == blob.raw["data"].upper()
