"""wM-Bus drivers: manufacturer data of known meter types read into named values."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from modules.codecs.records import Record
from modules.codecs.wmbus import decode_telegram
from modules.codecs.wmbus.drivers import DRIVERS, FieldSpec, RegisterWalk, apply, find
from modules.codecs.wmbus.drivers.diehl import DEFAULT_KEYS, prios_descramble

VECTORS = Path(__file__).resolve().parents[1] / "fixtures" / "vectors" / "wmbus_all.json"
APATOR = [v for v in json.loads(VECTORS.read_text()) if v.get("driver") == "apator162"]


def test_apator_vectors_are_there() -> None:
    assert len(APATOR) >= 10


@pytest.mark.parametrize("vector", APATOR, ids=lambda v: v["source"].rsplit(":", 1)[-1])
def test_apator_16_2_total_volume(vector: dict[str, Any]) -> None:
    decoded = decode_telegram(bytes.fromhex(vector["hex"]))
    assert decoded.frame["driver"] == "apator162"
    totals = [r for r in decoded.records if r.name == "total_volume"]
    assert [(r.value, r.unit) for r in totals] == [
        (Decimal(str(vector["expected"]["total_m3"])), "m³")
    ]
    # The raw manufacturer data stays beside the values read from it.
    assert any(r.name == "manufacturer_specific" for r in decoded.records)


WALK = RegisterWalk(
    skip=2,
    sizes={0x10: 4, 0x43: 2},
    fields={0x10: FieldSpec("total_volume", "m³", exponent=-3)},
    end=0xFF,
    trailer=2,
)


def test_a_register_walk_reads_tagged_registers_and_stops_at_padding_and_check_word() -> None:
    data = bytes.fromhex("AAAA4301021039300000FFFF1234")
    [(spec, value, at)] = WALK.read(data)
    assert (spec.name, value, at) == ("total_volume", Decimal("12.345"), 5)


def test_an_unknown_register_keeps_the_data_raw_and_says_why() -> None:
    data = "00" * 7 + "99" + "0102" + "ABCD"  # header, an unknown tag 0x99, check word
    record = Record("manufacturer_specific", data.upper(), raw={"data": data, "offset": 20})
    meter = {"manufacturer": "APA", "version": 5, "device_type": 7}
    frame: dict[str, Any] = {}
    out = apply(DRIVERS, meter, frame, [record])
    assert out == [record]
    assert frame["driver"] == "apator162"
    # The tag sits at byte 7 of the data, which starts after the 0x0F at offset 20.
    assert frame["warnings"] == [
        "driver apator162: register 0x99 has no known size at byte 28; "
        "the manufacturer data stays raw"
    ]


def test_other_meter_types_are_left_alone() -> None:
    assert find(DRIVERS, "APA", 5, 0x04) is None
    assert find(DRIVERS, "KAM", 5, 0x07) is None
    record = Record("manufacturer_specific", "AA", raw={"data": "aa", "offset": 3})
    frame: dict[str, Any] = {}
    meter = {"manufacturer": "KAM", "version": 5, "device_type": 7}
    assert apply(DRIVERS, meter, frame, [record]) == [record]
    assert frame == {}


TECHEM = [v for v in json.loads(VECTORS.read_text()) if v.get("driver") in ("mkradio3", "mkradio4")]


@pytest.mark.parametrize("vector", TECHEM, ids=lambda v: v["source"].rsplit(":", 1)[-1])
def test_techem_mk_radio_total_and_period_start(vector: dict[str, Any]) -> None:
    decoded = decode_telegram(bytes.fromhex(vector["hex"]))
    assert decoded.frame["driver"] == vector["driver"]
    values: dict[str, Decimal] = {}
    for record in decoded.records:
        if record.unit == "m³":
            assert isinstance(record.value, Decimal), record
            values[record.name] = record.value
    expected = vector["expected"]
    assert values["total_volume"] == Decimal(str(expected["total_m3"]))
    assert values["volume_at_period_start"] == Decimal(str(expected["target_m3"]))
    assert values["total_volume"] == (
        values["volume_at_period_start"] + values["volume_this_period"]
    )


# compact5.xmq:94 is a Compact V variant whose billing values are laid out differently; no
# public description says how, so it is not claimed (it decodes, with the raw payload kept).
OTHERS = [
    v
    for v in json.loads(VECTORS.read_text())
    if v.get("driver") in ("compact5", "zenner0b") and not v["source"].endswith("compact5.xmq:94")
]


@pytest.mark.parametrize("vector", OTHERS, ids=lambda v: v["source"].rsplit("/", 1)[-1])
def test_compact_v_and_zenner_totals(vector: dict[str, Any]) -> None:
    decoded = decode_telegram(bytes.fromhex(vector["hex"]))
    assert decoded.frame["driver"] == vector["driver"]
    expected = vector["expected"]
    if "total_kwh" in expected:
        total = next(r for r in decoded.records if r.name == "total_energy")
        assert (total.value, total.unit) == (Decimal(str(expected["total_kwh"])), "kWh")
    else:
        total = next(r for r in decoded.records if r.name == "total_volume")
        assert (total.value, total.unit) == (Decimal(str(expected["total_m3"])), "m³")
        month = next(r for r in decoded.records if r.name == "volume_this_month")
        assert month.value == Decimal(str(expected["target_m3"]))


def _vector(driver: str) -> dict[str, Any]:
    return next(v for v in json.loads(VECTORS.read_text()) if v.get("driver") == driver)


def test_techem_fhkv_data_iii_allocation_units_and_temperatures() -> None:
    vector = _vector("fhkvdataiii")
    decoded = decode_telegram(bytes.fromhex(vector["hex"]))
    values = {r.name: (r.value, r.unit) for r in decoded.records}
    expected = vector["expected"]
    assert values["hca_this_period"] == (Decimal(expected["current_hca"]), None)
    assert values["hca_previous_period"] == (Decimal(expected["previous_hca"]), None)
    assert values["room_temperature"] == (Decimal(str(expected["temp_room_c"])), "°C")
    assert values["radiator_temperature"] == (Decimal(str(expected["temp_radiator_c"])), "°C")


def test_techem_vario_451_energy_in_gj() -> None:
    vector = _vector("vario451")
    decoded = decode_telegram(bytes.fromhex(vector["hex"]))
    values = {r.name: r for r in decoded.records}
    kwh_per_gj = Decimal(1) / Decimal("0.0036")
    total = values["total_energy"]
    assert total.unit == "GJ" and isinstance(total.value, Decimal)
    assert abs(total.value * kwh_per_gj - Decimal(str(vector["expected"]["total_kwh"]))) < 1


# ---------------------------------------------------------------- B METERS Hydrodigit

HYDRODIGIT = [v for v in json.loads(VECTORS.read_text()) if v.get("driver") == "hydrodigit"]
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August")


@pytest.mark.parametrize("vector", HYDRODIGIT, ids=lambda v: v["source"].rsplit(":", 1)[-1])
def test_hydrodigit_sections_named_by_the_content_byte(vector: dict[str, Any]) -> None:
    decoded = decode_telegram(bytes.fromhex(vector["hex"]))
    assert decoded.frame["driver"] == "hydrodigit"
    values = {r.name: (r.value, r.unit) for r in decoded.records}
    expected = vector["expected"]
    assert values["battery_voltage"] == (Decimal(str(expected["voltage_v"])), "V")
    if "backflow_m3" in expected:
        assert values["backflow_volume"] == (Decimal(str(expected["backflow_m3"])), "m³")
    for month in _MONTHS:
        if f"{month}_total_m3" in expected:
            got = values[f"volume_end_of_{month.lower()}"]
            assert got == (Decimal(str(expected[f"{month}_total_m3"])), "m³")


def _hydrodigit(mfct: str) -> bytes:
    # BMT v0x13 cold water, CI 0x7A (no encryption), total 3.866 m³, then DIF 0x0F and mfct.
    body = "44B40986868686130" + "77A" + "F0000000" + "0C1366380000" + "0F" + mfct
    return bytes([len(body) // 2]) + bytes.fromhex(body)


def test_hydrodigit_month_not_measured_is_no_value_and_a_short_block_is_a_warning() -> None:
    # content 0x11: battery (code 0x0B = 3.2 V) and twelve months, March not measured yet.
    months = "C10000" + "D10000" + "FFFFFF" + "E60000" * 9
    decoded = decode_telegram(_hydrodigit("11" + "0B" + months))
    names = {r.name: r.value for r in decoded.records}
    assert names["battery_voltage"] == Decimal("3.2")
    assert names["volume_end_of_february"] == Decimal("2.09")
    assert "volume_end_of_march" not in names  # FFFFFF: unknown, never 0
    assert names["volume_end_of_april"] == Decimal("2.30")
    short = decode_telegram(_hydrodigit("10" + "C10000" * 5))
    assert "volume_end_of_january" not in {r.name for r in short.records}
    assert any("section 0x10 runs past the end" in w for w in short.frame["warnings"])
    # The standard total is decoded either way.
    assert any(r.unit == "m³" and r.value == Decimal("3.866") for r in short.records)


# ---------------------------------------------------------------- Qundis Q water 5.5

QWATER_WALK_BY = [
    v
    for v in json.loads(VECTORS.read_text())
    if v.get("driver") in ("qwater", "qwaterv2") and "0DFF5F" in v["hex"].upper()
]


def test_qwater_walk_by_vectors_are_there() -> None:
    assert len(QWATER_WALK_BY) >= 5


@pytest.mark.parametrize("vector", QWATER_WALK_BY, ids=lambda v: v["source"].rsplit(":", 1)[-1])
def test_qwater_walk_by_record(vector: dict[str, Any]) -> None:
    decoded = decode_telegram(bytes.fromhex(vector["hex"]))
    assert decoded.frame["driver"] == "qwaterv2"
    values = {r.name: r.value for r in decoded.records}
    expected = vector["expected"]
    assert values["total_volume"] == Decimal(str(expected["total_m3"]))
    due = expected.get("target_m3", expected.get("due_17_date_m3"))
    due_date = expected.get("target_date", expected.get("due_17_date"))
    assert values["volume_at_due_date"] == Decimal(str(due))
    assert values.get("due_date") == due_date  # FFFF (None): no due date stored yet
    year_end = expected.get("target_year_m3", expected.get("due_date_m3"))
    assert values["volume_at_year_end"] == Decimal(str(year_end))
    assert "error_date" not in values  # FFFF: no error ever


def test_qwater_record_without_the_litre_marker_stays_raw() -> None:
    vector = QWATER_WALK_BY[0]
    telegram = bytearray(bytes.fromhex(vector["hex"]))
    marker = telegram.index(bytes.fromhex("0DFF5F")) + 4 + 9  # DIF VIF VIFE LVAR, 9 bytes
    assert telegram[marker] == 0x13
    telegram[marker] = 0x14
    decoded = decode_telegram(bytes(telegram))
    assert "total_volume" not in {r.name for r in decoded.records}
    assert any("expected 13 here" in w for w in decoded.frame["warnings"])


# ---------------------------------------------------------------- Diehl IZAR (PRIOS)

IZAR = [v for v in json.loads(VECTORS.read_text()) if v.get("driver") == "izarv2"]


@pytest.mark.parametrize("vector", IZAR, ids=lambda v: v["source"].rsplit(":", 1)[-1])
def test_izar_prios_payload_unscrambled(vector: dict[str, Any]) -> None:
    decoded = decode_telegram(bytes.fromhex(vector["hex"]))
    assert decoded.frame["driver"] == "izar"
    values = {r.name: (r.value, r.unit) for r in decoded.records}
    expected = vector["expected"]
    assert values["total_volume"] == (Decimal(str(expected["total_m3"])), "m³")
    assert values["volume_at_last_billing"] == (Decimal(str(expected["target_m3"])), "m³")
    assert values["last_billing_date"] == (expected["target_date"], None)
    assert values["battery_remaining"] == (Decimal(str(expected["battery_y"])), "y")
    assert values["transmit_period"] == (Decimal(expected["transmit_period_s"]), "s")
    # Diehl and Hydrometer PRIOS meters code their A field as version, type, id.
    assert decoded.meter["id"] == expected["id"].upper()


def test_izar_alarms_and_a_payload_scrambled_with_the_other_default_key() -> None:
    # A Sappel IZAR header (SAP, id 21242472, CI 0xA2); bytes 11-14 in clear: period code,
    # battery and alarms (meter blocked), alarms (underflow), one more; scrambled from byte 15.
    head = bytes.fromhex("44304C72242421D401A2013D4013")
    clear = bytes.fromhex("4B" + "10270000" + "E8030000" + "BE2C")  # 10 m³, 1 m³, 2021-12-30
    plain = bytes([len(head) + len(clear)]) + head + clear
    scrambled = plain[:15] + prios_descramble(plain, DEFAULT_KEYS[1])
    decoded = decode_telegram(scrambled)
    values = {r.name: r.value for r in decoded.records}
    assert values["total_volume"] == Decimal("10.000")
    assert values["volume_at_last_billing"] == Decimal("1.000")
    assert values["last_billing_date"] == "2021-12-30"
    assert values["alarms"] == "meter_blocked,underflow"
    # A meter key of its own: without it the payload stays raw, with a warning; with it (the
    # first 8 bytes of the key given for the meter) the values come out.
    own = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
    other = plain[:15] + prios_descramble(plain, own[:8])
    kept = decode_telegram(other)
    assert "total_volume" not in {r.name for r in kept.records}
    assert any("nor a default PRIOS key" in w for w in kept.frame["warnings"])
    assert kept.frame["manufacturer_payload"]
    opened = decode_telegram(other, key=own)
    assert {r.name: r.value for r in opened.records}["total_volume"] == Decimal("10.000")


# ---------------------------------------------------------------- Apator E-ITN 30, Apator 08

E_ITN = [v for v in json.loads(VECTORS.read_text()) if v.get("driver") == "apatoreitn"]


@pytest.mark.parametrize("vector", E_ITN, ids=lambda v: v["source"].rsplit(":", 1)[-1])
def test_apator_e_itn_allocation_units_and_room_temperatures(vector: dict[str, Any]) -> None:
    # CI 0xA0 carries the 15 bytes alone; CI 0xB6 puts a length-prefixed block and 0xA0 first.
    decoded = decode_telegram(bytes.fromhex(vector["hex"]))
    assert decoded.frame["driver"] == "apatoreitn"
    values = {r.name: (r.value, r.unit) for r in decoded.records}
    expected = vector["expected"]
    assert values["hca_this_period"] == (Decimal(expected["current_hca"]), None)
    assert values["hca_previous_period"] == (Decimal(expected["previous_hca"]), None)
    room = values["room_temperature_this_season"]
    assert room == (Decimal(str(expected["temp_room_avg_c"])), "°C")
    previous = values["room_temperature_previous_season"]
    assert previous == (Decimal(str(expected["temp_room_prev_avg_c"])), "°C")


def test_apator_e_itn_prefix_without_its_marker_stays_raw() -> None:
    b6 = next(v for v in E_ITN if "B6" in v["hex"][20:24].upper())
    telegram = bytearray(bytes.fromhex(b6["hex"]))
    marker = len(telegram) - 16  # the 0xA0 just before the last 15 bytes
    assert telegram[marker] == 0xA0
    telegram[marker] = 0xA1
    decoded = decode_telegram(bytes(telegram))
    assert "hca_this_period" not in {r.name for r in decoded.records}
    assert any("expected A0 here" in w for w in decoded.frame["warnings"])


@pytest.mark.parametrize(
    "vector",
    [v for v in json.loads(VECTORS.read_text()) if v.get("driver") == "apator08"],
    ids=lambda v: v["source"].rsplit(":", 1)[-1],
)
def test_apator_08_total_in_thirds_of_a_litre(vector: dict[str, Any]) -> None:
    decoded = decode_telegram(bytes.fromhex(vector["hex"]))
    total = next(r for r in decoded.records if r.name == "total_volume")
    assert total.unit == "m³"
    assert isinstance(total.value, Decimal)
    assert round(total.value, 6) == Decimal(str(vector["expected"]["total_m3"]))


# ---------------------------------------------------------------- families with standard records

_STANDARD_FAMILIES = (
    "itron",
    "itronheat",
    "supercom587",
    "sensostar",
    "qcaloric",
    "qheatv2",
    "sharky774",
    "ultrimis",
)
STANDARD = [
    v
    for v in json.loads(VECTORS.read_text())
    if v.get("driver") in _STANDARD_FAMILIES and v.get("frame_type") == "wmbus"
] + [v for v in json.loads(VECTORS.read_text()) if v["source"].endswith("engelmann_faw.xmq:125")]


def test_standard_family_vectors_are_there() -> None:
    assert {v["driver"] for v in STANDARD} >= set(_STANDARD_FAMILIES) - {"sensostar"}


@pytest.mark.parametrize("vector", STANDARD, ids=lambda v: v["source"].rsplit("/", 1)[-1])
def test_families_without_a_driver_decode_their_volumes_and_energies(
    vector: dict[str, Any],
) -> None:
    # The README's claim: these meters need no driver. Every volume (m³) and energy (kWh) the
    # public driver test expects is among the standard records.
    key = bytes.fromhex(vector["key"]) if vector.get("key") else None
    decoded = decode_telegram(bytes.fromhex(vector["hex"]), key=key)
    assert "driver" not in decoded.frame
    # Energy may come in another unit of its family (MWh, GJ, MJ): compared in kWh.
    to_base = {
        "m³": ("m³", Decimal(1)),
        "kWh": ("kWh", Decimal(1)),
        "Wh": ("kWh", Decimal("0.001")),
    }
    to_base |= {"MWh": ("kWh", Decimal(1000)), "MJ": ("kWh", 1 / Decimal("3.6"))}
    to_base["GJ"] = ("kWh", 1000 / Decimal("3.6"))
    found: dict[str, list[Decimal]] = {}
    for record in decoded.records:
        if record.unit in to_base and isinstance(record.value, (Decimal, int, float)):
            family, factor = to_base[record.unit]
            found.setdefault(family, []).append(Decimal(str(record.value)) * factor)
    checked = 0
    for name, value in vector["expected"].items():
        unit = "m³" if name.endswith("_m3") else "kWh" if name.endswith("_kwh") else None
        if unit is None or not isinstance(value, (int, float)):
            continue
        want = Decimal(str(value))
        assert any(abs(got - want) <= abs(want) * Decimal("1e-9") for got in found.get(unit, [])), (
            name,
            value,
        )
        checked += 1
    assert checked or not any(k.endswith(("_m3", "_kwh")) for k in vector["expected"])
