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
    values = {r.name: r.value for r in decoded.records if r.unit == "m³"}
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
