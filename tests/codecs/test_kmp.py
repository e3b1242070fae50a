"""KMP codec: the shared vectors, round trips, error codes and a fuzz test."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modules.codecs.errors import FrameError
from modules.codecs.kmp import commands as kmp
from modules.codecs.kmp.commands import (
    Ack,
    Frame,
    FrameSplitter,
    GetRegisterRequest,
    GetRegisterResponse,
    GetSerialNoRequest,
    GetSerialNoResponse,
    GetTypeRequest,
    GetTypeResponse,
    KmpDecoder,
    OtherMessage,
    RegisterValue,
    SetClockRequest,
)
from modules.codecs.kmp.registers import (
    DEFAULT_382_REGISTERS,
    REGISTERS,
    chunked,
    register_id,
)
from modules.kmp.readings import readings as kmp_readings
from tests.support.fuzz import mutated

VECTORS = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "vectors" / "kmp.json").read_text(encoding="utf-8")
)
FRAME_VECTORS = [v for v in VECTORS if "physical_frame_hex" in v["input"]]
FLOAT_VECTORS = [v for v in VECTORS if "kmp_float_hex" in v["input"]]
# The vectors' unit spellings -> ours (Home Assistant's).
HA_UNIT = {"l/h": "L/h", "MWh": "MWh", "kW": "kW", "°C": "°C", "m3": "m³"}


def decode_hex(text: str) -> dict[str, Any]:
    """Decode like the CLI does, as plain JSON-able data."""
    result = KmpDecoder().decode(bytes.fromhex(text), key=None, auth_key=None)
    return {"meter": result.meter, "frame": result.frame, "records": result.records}


# ------------------------------------------------------------------ vectors


@pytest.mark.parametrize("vector", FRAME_VECTORS, ids=lambda v: v["input"]["physical_frame_hex"])
def test_frame_vectors(vector: dict[str, Any]) -> None:
    expected = vector["expected"]
    raw = bytes.fromhex(vector["input"]["physical_frame_hex"])
    frame = kmp.decode_frame(raw)
    assert frame.to_meter is (vector["input"]["direction"] == "to_meter")
    assert frame.address == int(expected["destination_address"], 16)
    assert frame.cid == int(expected["cid"], 16)
    assert frame.data.hex() == expected["app_data"]
    assert frame.crc == int(expected["crc"], 16)
    link = bytes.fromhex(expected["data_link_bytes"])
    assert kmp.crc16(link) == 0
    assert kmp.encode_frame(frame) == raw

    decoded = decode_hex(vector["input"]["physical_frame_hex"])
    assert decoded["frame"]["cid"] == int(expected["cid"], 16)
    requested = [int(r, 16) for r in expected.get("registers_requested", [])]
    if requested:
        assert decoded["frame"]["registers"] == requested
        assert len(requested) == expected["num_registers"]
    for register in expected.get("registers", []):
        (record,) = [r for r in decoded["records"] if r.raw["register"] == register["register_dec"]]
        assert record.raw["unit_code"] == register["unit_code"]
        if "date" in expected:
            assert record.value == expected["date"]
            assert record.unit is None
        else:
            assert record.value == Decimal(register["value"])
            assert record.unit == HA_UNIT[register["unit"]]
    if "serial_no" in expected:
        assert decoded["meter"]["id"] == str(expected["serial_no"])


def test_stuffing_vector() -> None:
    (vector,) = [
        v for v in VECTORS if "data_link_bytes_hex" in v["input"] and "direction" in v["input"]
    ]
    link = bytes.fromhex(vector["input"]["data_link_bytes_hex"])
    physical = bytes.fromhex(vector["expected"]["physical_frame_hex"])
    assert b"\x80" + kmp.stuff(link) + b"\x0d" == physical
    assert kmp.unstuff(physical[1:-1]) == link


def test_get_type_response_vector() -> None:
    (vector,) = [v for v in VECTORS if "software_revision" in v["expected"]]
    link = bytes.fromhex(vector["input"]["data_link_bytes_hex"])
    assert kmp.crc16(link) == int(vector["expected"]["crc_residual"], 16)
    message = kmp.decode_message(
        Frame(to_meter=False, cid=link[1], data=link[2:-2], address=link[0])
    )
    assert message == GetTypeResponse(
        meter_type=int(vector["expected"]["meter_type"], 16),
        software_revision=vector["expected"]["software_revision"],
    )
    physical = kmp.encode(message)
    assert kmp.unstuff(physical[1:-1]) == link  # 0x06 in the data goes out stuffed
    decoded = decode_hex(physical.hex())
    assert decoded["meter"]["software_revision"] == "F1"
    assert decoded["meter"]["type"] == 4


@pytest.mark.parametrize("vector", FLOAT_VECTORS, ids=lambda v: v["input"]["kmp_float_hex"])
def test_float_vectors(vector: dict[str, Any]) -> None:
    encoded = bytes.fromhex(vector["input"]["kmp_float_hex"])
    value, used = kmp.decode_number(encoded)
    assert used == len(encoded)
    assert value == Decimal(vector["expected"]["value"])
    assert kmp.encode_number(value, length=vector["expected"]["length"]) == encoded


def test_crc_vector() -> None:
    (vector,) = [v for v in VECTORS if "crc16_xmodem" in v["expected"]]
    data = bytes.fromhex(vector["input"]["bytes_hex"])
    assert kmp.crc16(data) == int(vector["expected"]["crc16_xmodem"], 16)
    frame = kmp.encode(GetRegisterRequest((0x3C,)))
    assert frame.hex() == vector["expected"]["transmitted_frame"]


@pytest.mark.parametrize(
    ("encoded", "value"),
    [
        ("04C200003039", "-123.45"),  # Kamstrup doc 4.2 example 1 (PyKMP test_codec.py)
        ("024218C8", "63.44"),  # a float64 would give 63.440000000000005
    ],
)
def test_number_examples(encoded: str, value: str) -> None:
    number, _ = kmp.decode_number(bytes.fromhex(encoded))
    assert number == Decimal(value)
    assert str(number) == value


def test_eight_register_request() -> None:
    # golles/ha-kamstrup_403#188
    decoded = decode_hex("803f1008003c003f0050005600570059004a0044c1380d")
    assert decoded["frame"]["registers"] == [0x3C, 0x3F, 0x50, 0x56, 0x57, 0x59, 0x4A, 0x44]


# ------------------------------------------------------------------ 382 register map


def test_register_lookup() -> None:
    assert register_id("energy_import") == 0x0001
    assert register_id("Power Import") == 0x03FF
    assert register_id("0x0420") == 0x0420
    assert register_id("1004") == 1004
    assert register_id(0x0541) == 0x0541
    with pytest.raises(ValueError, match="unknown KMP register"):
        register_id("no_such_register")
    with pytest.raises(ValueError, match="outside"):
        register_id(0x10000)
    assert GetRegisterRequest.of("voltage_l1", 0x041F).registers == (0x041E, 0x041F)


def test_default_382_registers_fit_requests() -> None:
    groups = chunked(DEFAULT_382_REGISTERS)
    assert all(1 <= len(g) <= 8 for g in groups)
    assert [r for g in groups for r in g] == list(DEFAULT_382_REGISTERS)
    obis = {REGISTERS[r].obis for r in DEFAULT_382_REGISTERS}
    for code in ("1-0:1.8.0", "1-0:2.8.0", "1-0:1.7.0", "1-0:2.7.0", "1-0:32.7.0", "1-0:71.7.0"):
        assert code in obis


def test_382_response_fills_engine_readings() -> None:
    response = GetRegisterResponse(
        (
            RegisterValue(0x0001, 2, Decimal("6753")),
            RegisterValue(0x000D, 2, Decimal("6753.3242")),
            RegisterValue(0x041E, 33, Decimal("229")),
            RegisterValue(0x0434, 34, Decimal("5.41")),
            RegisterValue(0x0438, 22, Decimal("0.976")),
            RegisterValue(1004, 46, Decimal("11923")),
        )
    )
    back = kmp.decode(kmp.encode(response))
    assert isinstance(back, GetRegisterResponse)
    by_obis = {r.obis: r for r in kmp_readings(back)}
    assert by_obis["1-0:1.8.0"].value == Decimal("6753.3242")  # hi-res wins
    assert by_obis["1-0:1.8.0"].unit == "kWh"
    assert by_obis["1-0:32.7.0"].value == Decimal("229")
    assert by_obis["1-0:31.7.0"].unit == "A"
    assert by_obis["1-0:21.7.0"].value == Decimal("0.976")
    assert by_obis["0-0:96.8.0"].unit == "h"
    names = {r.name for r in kmp.records(back)}
    assert {"energy_import", "energy_import_hires", "voltage_l1", "hour_counter"} <= names


def test_meter_time_and_set_clock() -> None:
    request = kmp.GetRegisterRequest.of("clock", "date")
    assert request.registers == (1002, 1003)
    response = GetRegisterResponse(
        (RegisterValue(1002, 47, Decimal(134501)), RegisterValue(1003, 48, Decimal(240229)))
    )
    assert kmp.meter_time(response) == datetime(2024, 2, 29, 13, 45, 1)
    decoded = decode_hex(kmp.encode(response).hex())
    assert decoded["frame"]["meter_time"] == "2024-02-29T13:45:01"
    assert [r.value for r in decoded["records"]] == ["13:45:01", "2024-02-29"]
    at = datetime(2031, 12, 31, 23, 59, 58)
    assert kmp.decode(kmp.encode(SetClockRequest(at))) == SetClockRequest(at)
    assert decode_hex(kmp.encode(SetClockRequest(at)).hex())["frame"]["clock"] == at.isoformat()
    assert kmp.decode(b"\x06") == Ack()


def test_unit_table_is_complete() -> None:
    assert set(range(65)) <= set(kmp.UNITS)
    assert kmp.UNITS[22][1] == "kW" and kmp.UNITS[21][1] == "W" and kmp.UNITS[25][1] == "var"
    scaled = RegisterValue(68, 55, Decimal("12.5")).reading()
    assert scaled == (Decimal("125.0"), "m³")
    assert RegisterValue(138, 48, Decimal(220901)).reading() == (date(2022, 9, 1).isoformat(), None)
    assert RegisterValue(1, 49, Decimal(20220901)).reading() == ("2022-09-01", None)
    assert RegisterValue(1, 50, Decimal(1231)).reading() == ("--12-31", None)
    assert RegisterValue(1, 48, Decimal(221399)).reading() == (Decimal(221399), None)  # no date


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("403f0201234567e9570d", "bad_crc"),  # PyKMP: GetSerialNo with its CRC off by one
        ("403f021b000d", "bad_stuffing"),  # 1B 00 stands for no reserved byte
        ("403f021b0d", "bad_stuffing"),  # escape with nothing after it
        ("803f10010080d4080d", "bad_stuffing"),  # 0x80 inside, not stuffed
        ("15", "nak"),
        ("", "truncated"),
        ("403f0201234567e956", "truncated"),  # no stop byte
        ("40560d", "truncated"),  # PyKMP "40 56 0D": one link byte
        ("0d", "bad_frame"),
        ("403f10003c0304430000d6", "truncated"),
    ],
)
def test_error_codes(frame: str, code: str) -> None:
    with pytest.raises(FrameError) as caught:
        KmpDecoder().decode(bytes.fromhex(frame), key=None, auth_key=None)
    assert caught.value.code == code


def test_register_entry_cut_short_is_bad_length() -> None:
    raw = kmp.encode_frame(Frame(False, 0x10, bytes.fromhex("003c0304430000d6")))
    with pytest.raises(FrameError) as caught:
        kmp.decode(raw)
    assert caught.value.code == "bad_length"
    zero_length = kmp.encode_frame(Frame(False, 0x10, bytes.fromhex("003c030043")))
    with pytest.raises(FrameError, match="0-byte mantissa"):
        kmp.decode(zero_length)


def test_echo_then_reply() -> None:
    echo = "803f0235e90d"
    reply = "403f0201234567e9560d"
    decoded = decode_hex(echo + reply)
    assert decoded["meter"]["id"] == "19088743"
    assert decoded["frame"]["preceding"] == ["GetSerialNo"]
    with pytest.raises(FrameError) as caught:
        KmpDecoder().decode(bytes.fromhex(echo + "403f0201234567e9570d"), key=None, auth_key=None)
    assert caught.value.code == "bad_crc"
    assert caught.value.offset == 6 + 7  # counted from the start of the whole input


def test_splitter_one_byte_at_a_time() -> None:
    stream = bytes.fromhex("7f" + "803f0235e90d" + "06" + "403f10001b7f160411012af02463030d")
    splitter = FrameSplitter()
    frames = [frame for byte in stream for frame in splitter.feed(bytes((byte,)))]
    assert [f.hex() for f in frames] == [
        "803f0235e90d",
        "06",
        "403f10001b7f160411012af02463030d",
    ]
    # A frame cut off by a new start byte is dropped, the next one survives.
    assert FrameSplitter().feed(bytes.fromhex("403f0201" + "403f0201234567e9560d")) == [
        bytes.fromhex("403f0201234567e9560d")
    ]


# ------------------------------------------------------------------ round trips

register_ids = st.integers(0, 0xFFFF)
decimals = st.builds(
    lambda sign, mantissa, exponent: Decimal((sign, tuple(map(int, str(mantissa))), exponent)),
    st.integers(0, 1),
    st.integers(0, 2**64 - 1),
    st.integers(-63, 63),
)
register_values = st.builds(RegisterValue, register_ids, st.integers(0, 255), decimals)
messages = st.one_of(
    st.just(GetTypeRequest()),
    st.just(GetSerialNoRequest()),
    st.builds(
        GetTypeResponse,
        st.integers(0, 0xFFFF),
        st.none()
        | st.builds(
            lambda letter, n: f"{letter}{n}", st.sampled_from("ABCDEFZ"), st.integers(0, 255)
        ),
    ),
    st.builds(GetSerialNoResponse, st.integers(0, 2**32 - 1)),
    st.builds(GetRegisterRequest, st.lists(register_ids, min_size=1, max_size=8).map(tuple)),
    st.builds(GetRegisterResponse, st.lists(register_values, max_size=8).map(tuple)),
    st.builds(
        SetClockRequest, st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31, 23, 59, 59))
    ),
    st.builds(
        OtherMessage, st.booleans(), st.sampled_from([0x11, 0x9B, 0xA0]), st.binary(max_size=20)
    ),
    st.just(Ack()),
)


@settings(max_examples=300)
@given(message=messages, address=st.sampled_from([0x3F, 0x7F, 0xBF, 0x3A]))
def test_message_round_trip(message: kmp.Message, address: int) -> None:
    raw = kmp.encode(message, address=address)
    assert kmp.decode(raw) == message
    if not isinstance(message, Ack):
        assert kmp.decode_frame(raw).address == address
        assert raw[1:-1].count(0x0D) == 0  # the stop byte never occurs inside


@settings(max_examples=300)
@given(value=decimals, extra=st.integers(0, 3))
def test_number_round_trip(value: Decimal, extra: int) -> None:
    shortest = kmp.encode_number(value)
    assert kmp.decode_number(shortest)[0] == value
    padded = kmp.encode_number(value, length=shortest[0] + extra)
    assert kmp.decode_number(padded) == (value, len(padded))


def test_number_limits() -> None:
    assert kmp.encode_number(Decimal("1.1E+65"), length=4) == bytes.fromhex("04 3F 0000006E")
    with pytest.raises(ValueError, match="does not fit"):
        kmp.encode_number(Decimal(12345678901234567890), length=4)
    with pytest.raises(ValueError, match="cannot carry"):
        kmp.encode_number(Decimal("NaN"))
    with pytest.raises(ValueError, match="below -63"):
        kmp.encode_number(Decimal("1E-64"))


@settings(max_examples=200)
@given(
    to_meter=st.booleans(),
    cid=st.integers(0, 255),
    data=st.binary(max_size=40),
    address=st.integers(0, 255),
)
def test_frame_round_trip(to_meter: bool, cid: int, data: bytes, address: int) -> None:
    frame = Frame(to_meter, cid, data, address)
    raw = kmp.encode_frame(frame)
    assert kmp.decode_frame(raw) == frame
    assert FrameSplitter().feed(raw) == [raw]


# ------------------------------------------------------------------ fuzz

REAL_FRAMES = [bytes.fromhex(v["input"]["physical_frame_hex"]) for v in FRAME_VECTORS]


@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow])
@given(data=mutated(REAL_FRAMES, st.binary(min_size=1, max_size=4)))
def test_fuzz_only_frame_errors(data: bytes) -> None:
    try:
        KmpDecoder().decode(data, key=None, auth_key=None)
    except FrameError as err:
        assert err.code in {
            "bad_crc",
            "bad_stuffing",
            "truncated",
            "bad_frame",
            "bad_length",
            "nak",
        }
    FrameSplitter().feed(data)
