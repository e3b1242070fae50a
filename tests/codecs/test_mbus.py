"""Wired M-Bus codec: link layer, requests, and every libmbus/wmbusmeters frame in the vectors."""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from modules.codecs.errors import ChecksumError, FrameError, IncompleteFrame, UnknownFormat
from modules.codecs.mbus import frames as mbus
from modules.codecs.mbus import records as mbus_records
from modules.codecs.mbus.encode import encode_long_header, encode_records, obis_record
from modules.codecs.mbus.frames import MbusDecoder, SecondaryAddress
from modules.codecs.records import Decoded, Record, to_json

VECTORS = Path(__file__).parents[1] / "fixtures" / "vectors"
MBUS = json.loads((VECTORS / "mbus.json").read_text(encoding="utf-8"))
WIRED_IN_WMBUS = [
    item
    for item in json.loads((VECTORS / "wmbus.json").read_text(encoding="utf-8"))
    if item.get("frame_type") == "mbus_long"
]

# Our unit -> (libmbus's normalized unit, factor).
TO_LIBMBUS = {
    "kWh": ("Wh", 1000),
    "h": ("s", 3600),
    "d": ("s", 86400),
    "min": ("s", 60),
    "m³": ("m^3", 1),
    "m³/h": ("m^3/h", 1),
}
# libmbus names the base quantity for VIFEs it does not know; EN 13757-3 table 15 says
# 0x50/0x58 are durations of a limit exceed and 0x6F the date of the end of the last one.
STANDARD_NOT_LIBMBUS = {
    ("SEN_Pollustat", 12): ("volume_flow_lower_limit_exceed_duration_first", 11582321, "s"),
    ("SEN_Pollustat", 13): ("volume_flow_upper_limit_exceed_duration_first", 756, "s"),
    ("landis+gyr_ultraheat_t230", 19): ("power_end_last_datetime", None, None),
    ("landis+gyr_ultraheat_t230", 20): ("volume_flow_end_last_datetime", None, None),
    ("landis+gyr_ultraheat_t230", 21): (
        "flow_temperature_end_last_datetime",
        "2011-08-26T20:50:00",
        None,
    ),
    ("landis+gyr_ultraheat_t230", 22): (
        "return_temperature_end_last_datetime",
        "2011-08-09T11:43:00",
        None,
    ),
}
# ABB documents the DIFE unit of its energy registers (A43/A44 user manual, chapter 10):
# unit 2 is reactive import, so libmbus's "Energy (10 Wh)" is kvarh here.
STANDARD_NOT_LIBMBUS |= {
    ("berg_dz_plus", index): ("reactive_energy_import", 0, "kvarh") for index in range(5, 10)
}
FUNCTIONS = {
    "Instantaneous value": "instantaneous",
    "Maximum value": "maximum",
    "Minimum value": "minimum",
    "Value during error state": "error",
}


def decode(hex_text: str) -> Decoded:
    return MbusDecoder().decode(bytes.fromhex(hex_text), key=None, auth_key=None)


def by_name(name: str) -> dict[str, Any]:
    return next(item for item in MBUS if item["name"] == name)


def _close(got: float, want: float) -> bool:
    return math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-6)


def _check_record(name: str, expected: dict[str, Any], record: Record) -> None:
    if (name, expected["id"]) in STANDARD_NOT_LIBMBUS:
        label, value, unit = STANDARD_NOT_LIBMBUS[(name, expected["id"])]
        assert (record.name, record.value, record.unit) == (label, value, unit)
        return
    if "storage" in expected:
        assert record.storage == expected["storage"]
        assert record.tariff == expected.get("tariff", 0)
        assert record.subunit == expected.get("device", 0)
        assert record.function == FUNCTIONS[expected["function"]]
    quantity = expected.get("quantity") or ""
    if quantity.startswith("Time point"):
        text = expected["value"].rstrip("Z")
        if re.search(r"-00[T-]|-00$", text):  # libmbus prints invalid dates as day/month 0
            assert record.value is None
        else:
            assert isinstance(record.value, str)
            assert record.value[: len(text)] == text[: len(record.value)]
        return
    if expected.get("value_num") is not None:
        assert isinstance(record.value, (int, float, Decimal)) or record.value is not None
        unit, factor = TO_LIBMBUS.get(record.unit or "", (record.unit, 1))
        got = float(Decimal(str(record.value))) * factor
        assert _close(got, expected["value_num"]), (record, expected)
        if expected.get("unit") in ("Wh", "W", "s", "m^3", "m^3/h", "°C", "K", "V", "A"):
            assert unit == expected["unit"]


@pytest.mark.parametrize(
    "item", [i for i in MBUS if i["kind"] == "rsp_ud"], ids=lambda item: item["name"]
)
def test_libmbus_rsp_ud_frames(item: dict[str, Any]) -> None:
    result = decode(item["hex"])
    header = item["expected"]["header"]
    assert result.meter["id"].lstrip("0") == header["id"].lstrip("0")
    if "manufacturer" in header:
        assert result.meter["manufacturer"] == header["manufacturer"]
    if "version" in header:
        assert result.meter["version"] == header["version"]
    records = result.records
    for expected in item["expected"]["records"]:
        if expected["function"] in ("Manufacturer specific", "More records follow"):
            assert records[expected["id"]].name == "manufacturer_specific"
            continue
        if expected.get("quantity") == "Manufacturer specific":
            # Named only when the manufacturer documents the code (mbus_manufacturers).
            record = records[expected["id"]]
            known = record.raw["vif"] == "ff" and record.name != "manufacturer_specific"
            assert known or record.name.startswith("manufacturer_specific")
            if known and expected.get("value_num") is not None:
                assert _close(float(record.value), expected["value_num"])
            continue
        _check_record(item["name"], expected, records[expected["id"]])
    json.loads(to_json(result))  # the CLI can print every result


@pytest.mark.parametrize(
    "item", [i for i in MBUS if i["kind"] == "error_frame"], ids=lambda item: item["name"]
)
def test_libmbus_error_frames_are_refused(item: dict[str, Any]) -> None:
    with pytest.raises(FrameError) as caught:
        decode(item["hex"])
    if "error" in item["expected"]:
        assert caught.value.code == "application_error"
        assert item["expected"]["error"].split()[0].lower() in str(caught.value).lower()
    assert caught.value.offset is not None


def test_unsupported_frames_with_a_broken_link_layer_are_refused() -> None:
    for name, error in (("invalid_length", FrameError), ("manual_frame1", FrameError)):
        with pytest.raises(error):
            decode(by_name(name)["hex"])


def test_snd_ud_data_send_decodes_its_records() -> None:
    result = decode(by_name("manual_frame4")["hex"])  # set primary address to 8
    assert result.frame["name"] == "SND_UD"
    assert result.frame["ci"] == 0x51
    assert [(r.name, r.value) for r in result.records] == [("bus_address", 8)]
    records = decode(by_name("manual_frame6")["hex"]).records
    assert (records[0].name, records[0].value) == ("enhanced_id", "12345678")
    assert (records[1].name, records[1].value, records[1].unit) == ("energy", 107, "kWh")


def test_kamstrup_382_fills_the_engine_registers() -> None:
    records = decode(by_name("kamstrup_382_005")["hex"]).records
    by_obis = {r.obis: r for r in records if r.obis}
    assert set(by_obis) == {"1-0:1.8.0", "1-0:1.7.0", "1-0:1.6.0", "1-0:1.8.1", "1-0:1.8.2"}
    assert by_obis["1-0:1.8.1"].tariff == 1
    meter = decode(by_name("kamstrup_382_005")["hex"]).meter
    assert meter["secondary_address"] == "148391202D2C0102"
    assert SecondaryAddress.parse(meter["secondary_address"]).manufacturer == "KAM"
    assert by_obis["1-0:1.8.0"].unit == "kWh"
    assert records[1].name == "on_time"
    assert (records[1].value, records[1].unit) == (9, "h")
    assert records[-1].raw["dif"] == "0f"


def test_heat_meter_energy_gets_no_electricity_obis() -> None:
    records = decode(by_name("kamstrup_multical_601")["hex"]).records
    assert all(record.obis is None for record in records)
    assert records[1].name == "energy"


def test_per_phase_voltage_current_and_export_map_to_obis() -> None:
    body = bytes.fromhex("72 78563412 2D2C 01 02 07 00 0000")
    body += bytes.fromhex("04 83 3C 10270000")  # A- 10000 Wh
    body += bytes.fromhex("02 FD C8 FC 01 FA08")  # U L1 230.2 V
    body += bytes.fromhex("02 FD DA FC 03 E803")  # I L3 10.00 A
    body += bytes.fromhex("04 AB 3C E8030000")  # P- 1000 W
    body += bytes.fromhex("02 FB AD FC 02 8813")  # frequency 50.00 Hz at L2: no OBIS
    result = MbusDecoder().decode(mbus.encode_long(0x08, 1, body[0], body[1:]))
    got = [(r.name, r.obis, r.value, r.unit) for r in result.records]
    assert got == [
        ("energy_export", "1-0:2.8.0", 10, "kWh"),
        ("voltage_l1", "1-0:32.7.0", Decimal("229.8"), "V"),
        ("current_l3", "1-0:71.7.0", 10, "A"),
        ("power_export", "1-0:2.7.0", 1000, "W"),
        ("frequency_l2", None, 50, "Hz"),
    ]


@pytest.mark.parametrize("item", WIRED_IN_WMBUS, ids=lambda item: item["source"])
def test_wired_frames_from_wmbusmeters_decode(item: dict[str, Any]) -> None:
    result = decode(item["hex"])
    assert result.meter["id"] == item["expected"]["id"]
    values = {
        (r.unit, float(r.value))
        for r in result.records
        if isinstance(r.value, (int, float, Decimal))
    }
    for name in ("total_energy_consumption_kwh", "forward_energy_m3c", "total_volume_m3"):
        if name in item["expected"] and item["driver"] == "kamheat":
            unit = {"kwh": "kWh", "m3c": "m³·°C", "m3": "m³"}[name.rsplit("_", 1)[1]]
            assert any(u == unit and _close(v, item["expected"][name]) for u, v in values)


def test_ack_short_and_control_frames() -> None:
    assert decode("E5").frame == {"type": "ack", "name": "ACK"}
    short = decode("10 7B 01 7C 16")
    assert short.frame["name"] == "REQ_UD2"
    assert (short.frame["a"], short.frame["fcb"], short.frame["fcv"]) == (1, True, True)
    assert decode("10 40 FE 3E 16").frame["name"] == "SND_NKE"
    control = decode(mbus.switch_baud_rate(5, 9600).hex())
    assert (control.frame["type"], control.frame["baud_rate"]) == ("control", 9600)


def test_link_layer_errors_name_the_byte() -> None:
    frame = bytearray(bytes.fromhex(by_name("kamstrup_382_005")["hex"]))
    bad_checksum = bytes(frame[:-2]) + bytes([(frame[-2] + 1) & 0xFF, 0x16])
    with pytest.raises(ChecksumError) as caught:
        MbusDecoder().decode(bad_checksum)
    assert (caught.value.code, caught.value.offset) == ("bad_crc", len(frame) - 2)
    with pytest.raises(IncompleteFrame) as truncated:
        MbusDecoder().decode(bytes(frame[:40]))
    assert truncated.value.code == "truncated"
    with pytest.raises(FrameError, match="length bytes differ") as lengths:
        MbusDecoder().decode(bytes([0x68, 0x46, 0x47]) + bytes(frame[3:]))
    assert lengths.value.offset == 2
    with pytest.raises(FrameError, match="stop byte"):
        MbusDecoder().decode(bytes(frame[:-1]) + b"\x17")
    with pytest.raises(FrameError, match="after the end"):
        MbusDecoder().decode(bytes(frame) + b"\xe5")
    with pytest.raises(FrameError, match="starts no"):
        MbusDecoder().decode(b"\x42")
    with pytest.raises(ChecksumError):
        MbusDecoder().decode(bytes.fromhex("10 5B 01 00 16"))
    with pytest.raises(UnknownFormat):
        MbusDecoder().decode(mbus.encode_long(0x08, 1, 0xA5, b"\x00"))


def test_request_encoders_are_byte_exact() -> None:
    assert mbus.snd_nke(1) == bytes.fromhex("10 40 01 41 16")
    assert mbus.snd_nke(mbus.BROADCAST_ADDRESS) == bytes.fromhex("10 40 FF 3F 16")
    assert mbus.req_ud2(1, fcb=False) == bytes.fromhex("10 5B 01 5C 16")
    assert mbus.req_ud2(1, fcb=True) == bytes.fromhex("10 7B 01 7C 16")
    assert mbus.req_ud1(254, fcb=False) == bytes.fromhex("10 5A FE 58 16")
    assert mbus.set_primary_address(0xFE, 8) == bytes.fromhex(by_name("manual_frame4")["hex"])
    assert mbus.application_reset(1) == bytes.fromhex("68 03 03 68 53 01 50 A4 16")
    assert mbus.application_reset(1, 0x10)[7] == 0x10
    with pytest.raises(ValueError, match="outside"):
        mbus.set_primary_address(1, 251)
    with pytest.raises(ValueError, match="baud"):
        mbus.switch_baud_rate(1, 1234)


def test_secondary_select_with_wildcards() -> None:
    address = SecondaryAddress("1483912F", "KAM", None, 2)
    frame = mbus.select_secondary(address)
    assert frame == bytes.fromhex("68 0B 0B 68 53 FD 52 2F 91 83 14 2D 2C FF 02 53 16")
    decoded = decode(frame.hex())
    assert decoded.frame["secondary_address"] == "1483912F2D2CFF02"
    assert SecondaryAddress.parse("1483912F2D2CFF02") == address
    assert SecondaryAddress.from_bytes(frame[7:15]) == address
    assert str(address) == "1483912F2D2CFF02"
    meter = SecondaryAddress.parse("148391202D2C0102")
    assert address.matches(meter)
    assert SecondaryAddress.parse("FFFFFFFF").matches(meter)
    assert not SecondaryAddress("14839121").matches(meter)
    assert not SecondaryAddress("1483912F", "ELS").matches(meter)
    with pytest.raises(ValueError, match="hex digits"):
        SecondaryAddress.parse("1234")
    with pytest.raises(ValueError, match="wildcards"):
        SecondaryAddress("1234567A").encode()


def test_rsp_ud_encoder_round_trips_through_the_decoder() -> None:
    header = encode_long_header("14839120", "KAM", 1, 2, access_number=7)
    records = [obis_record("1-0:1.8.0", Decimal("1234.56")), obis_record("1-0:32.7.0", 231.4)]
    frame = mbus.rsp_ud(
        120, mbus.CI_VARIABLE, header + encode_records(records, more_records_follow=True)
    )
    result = MbusDecoder().decode(frame)
    assert result.meter["id"] == "14839120"
    assert result.meter["manufacturer"] == "KAM"
    assert (result.meter["medium"], result.meter["access_number"]) == ("electricity", 7)
    assert result.frame["more_records_follow"] is True
    assert [(r.obis, r.value) for r in result.records[:2]] == [
        ("1-0:1.8.0", Decimal("1234.56")),
        ("1-0:32.7.0", Decimal("231.4")),
    ]


def test_short_header_msb_first_and_fixed_structures() -> None:
    short = decode(
        mbus.encode_long(0x08, 3, 0x7A, bytes.fromhex("11 00 0000 04 06 05000000")).hex()
    )
    assert (short.meter["address"], short.meter["access_number"]) == (3, 0x11)
    assert short.records[0].value == 5
    msb = bytes.fromhex("12345678 2C2D 01 02 07 00 0000 04 06 00000105")
    result = decode(mbus.encode_long(0x08, 3, 0x76, msb).hex())
    assert (result.meter["id"], result.meter["manufacturer"]) == ("12345678", "KAM")
    assert result.records[0].value == 0x105
    fixed = decode(by_name("manual_frame2")["hex"])
    assert (fixed.meter["id"], fixed.meter["medium"]) == ("12345678", "water")
    assert [(r.value, r.unit, r.storage) for r in fixed.records] == [(1, "L", 0), (135, "L", 1)]
    binary = bytes.fromhex("78563412 0A 80 E9 29 01000000 35010000")
    assert decode(mbus.encode_long(0x08, 5, 0x73, binary).hex()).records[1].value == 0x135


def test_error_alarm_and_reset_frames() -> None:
    with pytest.raises(FrameError, match="too busy") as caught:
        decode(by_name("application_busy")["hex"])
    assert caught.value.code == "application_error"
    alarm = decode(mbus.encode_long(0x08, 1, 0x71, b"\x02").hex())
    assert alarm.frame["alarm"] == 2
    reset = decode(mbus.application_reset(1, 0x10).hex())
    assert reset.frame["reset_subcode"] == 0x10


def test_split_frame_finds_frame_boundaries() -> None:
    frame = bytes.fromhex(by_name("kamstrup_382_005")["hex"])
    assert mbus.split_frame(frame + b"\xe5") == ("long", len(frame))
    assert mbus.split_frame(b"\xe5\x10") == ("ack", 1)
    with pytest.raises(IncompleteFrame):
        mbus.split_frame(frame[:3])
    assert re.fullmatch(r"[A-Z]{3}", mbus.decode_manufacturer(0x2C2D))


def test_record_plans_reused_or_evicted_give_the_same_records(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Record headers are decoded once per layout and reused for every later record with the
    # same header bytes; a reused plan must not carry anything over from its first record.
    frames = [bytes.fromhex(item["hex"]) for item in MBUS if item["kind"] == "rsp_ud"]
    mbus_records.clear_plans()
    cold = [to_json(MbusDecoder().decode(f)) for f in frames]
    warm = [to_json(MbusDecoder().decode(f)) for f in frames]
    reversed_warm = [to_json(MbusDecoder().decode(f)) for f in reversed(frames)][::-1]
    monkeypatch.setattr(mbus_records, "MAX_PLANS", 1)
    evicted = [to_json(MbusDecoder().decode(f)) for f in frames]
    assert warm == cold
    assert reversed_warm == cold
    assert evicted == cold
    assert len(cold) > 40


def test_the_format_read_while_decoding_is_the_record_format() -> None:
    # wM-Bus learns compact formats from the headers read while decoding a full frame.
    payloads = [bytes.fromhex(item["hex"])[19:-2] for item in MBUS if item["kind"] == "rsp_ud"]
    compared = 0
    for p in payloads:
        try:
            plain = mbus_records.decode_records(p)
        except FrameError:
            continue
        layout: list[bytes] = []
        assert mbus_records.decode_records(p, layout=layout) == plain
        fmt = b"".join(layout)
        headers = mbus_records.iter_headers(p, data=True)
        assert fmt == b"".join(p[h.start : h.end] for h in headers if not h.manufacturer_data)
        compared += bool(fmt)
    assert compared > 30
