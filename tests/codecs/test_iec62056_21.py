"""IEC 62056-21 codec: the shared vectors, Kamstrup 382 readouts, round trips and fuzz."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modules.codecs.errors import FrameError
from modules.codecs.iec62056_21 import messages as iec
from modules.codecs.iec62056_21.messages import (
    Ack,
    CommandMessage,
    DataMessage,
    DataSet,
    DataValue,
    Identification,
    IecDecoder,
    Nak,
    OptionSelect,
    SignOn,
)
from modules.codecs.records import Decoded, error_result, to_json
from modules.iec62056_21.readings import readings as iec_readings
from tests.support.fuzz import mutated

VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "vectors" / "iec62056_21.json").read_text(
        encoding="utf-8"
    )
)


def vector_bytes(vector: dict[str, Any]) -> bytes:
    """The received bytes of a vector: its text, else its hex (Latin-1, as the CLI passes it)."""
    given = vector["input"]
    if "text" in given:
        return str(given["text"]).encode("latin-1")
    return bytes.fromhex(given.get("hex") or given["text_escaped"])


def decode(data: bytes) -> Decoded:
    return IecDecoder().decode(data, key=None, auth_key=None)


def value_at(decoded: Decoded, address: str) -> list[Any]:
    """Values of the records whose OBIS code is the address's (our own normalisation)."""
    obis = iec.normalize_obis(address) or address
    return [r.value for r in decoded.records if r.obis == obis]


def same_value(got: Any, expected: str | float) -> bool:
    text = str(expected).strip()
    if isinstance(got, Decimal):
        return got == Decimal(text)
    return bool(got.strip() == text or Decimal(got) == Decimal(text))


# ------------------------------------------------------------------ vectors


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["source"])
def test_vectors(vector: dict[str, Any]) -> None:
    expected = vector["expected"]
    data = vector_bytes(vector)
    if expected.get("bcc_valid") is False:
        with pytest.raises(FrameError) as caught:
            decode(data)
        assert caught.value.code == "bad_crc"
        return
    if "telegrams" in expected:
        telegrams = [p for p in re.split(rb"(?m)^(?=/)", data) if p.strip()]
        assert len(telegrams) == len(expected["telegrams"])
        pairs = list(zip(telegrams, expected["telegrams"], strict=True))
    else:
        pairs = [(data, expected)]
    for part, wanted in pairs:
        decoded = decode(part)
        for data_set in [*wanted.get("data_sets", []), *wanted.get("readings", [])]:
            address = data_set.get("address") or data_set.get("obis")
            if not str(data_set["value"]).strip():
                continue
            values = value_at(decoded, address)
            assert any(same_value(v, data_set["value"]) for v in values), (address, values)
            records = [
                r for r in decoded.records if r.obis == (iec.normalize_obis(address) or address)
            ]
            if data_set.get("unit"):
                assert records[0].unit == data_set["unit"]
        ident = wanted.get("identification")
        maker = ident.get("manufacturer") if isinstance(ident, dict) else wanted.get("manufacturer")
        if maker:
            assert decoded.meter["manufacturer"] == maker.upper()
        if isinstance(ident, dict):
            assert decoded.frame["baud_char"] == ident["baud_char"]
        if "device_address" in wanted:
            assert decoded.frame["address"] == wanted["device_address"]
        if "bcc" in wanted:
            assert decoded.frame["bcc"] == wanted["bcc"][2:].upper()
            assert decoded.frame["bcc_ok"] is True
        if "baud" in wanted and "mode_char" in wanted:  # an option select
            assert decoded.frame["option"]["baud"] == wanted["baud"]
            assert decoded.frame["option"]["mode"] == "programming"
        if "command" in wanted:
            assert decoded.frame["command"] == wanted["command"] + wanted["command_type"]


def test_identification_vector_details() -> None:
    (message,) = iec.parse(b"/Els6\\2EK280\r\n")
    assert message == Identification("Els", "6", "EK280", enhanced="2")
    assert isinstance(message, Identification)
    assert (message.mode, message.baud, message.slow_reaction) == ("C", 19200, True)


def test_password_stays_off_the_output() -> None:
    decoded = decode(b"\x01P0\x02(1234567)\x03P")
    assert "1234567" not in json.dumps(decoded.frame)
    assert decoded.frame["command"] == "P0"
    assert decoded.records == []


# ------------------------------------------------------------------ Kamstrup 382

KAMSTRUP_382C = (  # madspeterbach/kamstrup-382C README.md: mode A only, 300 7E1
    b"/KAM 68438BC450000\r\n0.0.0(14410000)\r\n1.8.0(0036886*kWh)\r\n1.8.1(0036886*kWh)\r\n"
    b"1.8.2(0000000*kWh)\r\n1.8.3(0000000*kWh)\r\n1.8.4(0000000*kWh)\r\n96.8.0(0119899*h)\r\n"
    b"0.128.1(0000000)\r\n1.6.0(1.078*kW)\r\n"
)


def test_kamstrup_382c_mode_a_readout() -> None:
    decoded = decode(KAMSTRUP_382C)
    assert decoded.meter["manufacturer"] == "KAM"
    assert decoded.meter["id"] == "14410000"
    assert (decoded.frame["mode"], decoded.frame["baud"]) == ("A", 300)
    by_obis = {r.obis: r for r in decoded.records}
    assert by_obis["1-0:1.8.0"].value == Decimal(36886)
    assert by_obis["1-0:1.8.0"].unit == "kWh"
    assert by_obis["1-0:1.8.4"].name == "energy_import_t4"
    assert by_obis["0-0:96.8.0"].value == Decimal(119899)
    assert by_obis["0-0:96.8.0"].unit == "h"
    assert by_obis["1-0:1.6.0"].value == Decimal("1.078")
    assert by_obis["1-0:1.6.0"].name == "max_power_import"


def test_kamstrup_382l_session() -> None:
    # jogi19/PyKamstrup382L read_USBx.py: sign-on, then ACK 0 5 0 (9600 baud data readout).
    lines = KAMSTRUP_382C.replace(b"/KAM 68438BC450000\r\n", b"").decode("latin-1")
    body = (lines + "!\r\n").encode("latin-1") + b"\x03"
    session = b"/?!\r\n/KAM5382L\r\n\x06050\r\n\x02" + body + bytes((iec.bcc(body),))
    decoded = decode(session)
    assert decoded.frame["messages"] == ["sign_on", "identification", "option_select", "readout"]
    assert decoded.frame["option"] == {
        "protocol_control": "0",
        "baud_char": "5",
        "baud": 9600,
        "mode": "data_readout",
    }
    assert decoded.frame["bcc_ok"] is True
    assert decoded.frame["mode"] == "C"
    readings = iec_readings(iec.parse(session)[-1])  # type: ignore[arg-type]
    assert {r.obis for r in readings} >= {"1-0:1.8.0", "0-0:96.8.0", "1-0:1.6.0"}


def test_kamstrup_arithmetic_bcc_is_accepted_only_for_kamstrup() -> None:
    body = b"1.8.0(0036886*kWh)\r\n!\r\n\x03"
    summed = sum(body) & 0x7F
    assert summed != iec.bcc(body)
    block = b"\x02" + body + bytes((summed,))
    assert decode(b"/KAM 382C\r\n" + block).frame["bcc_ok"] is True
    with pytest.raises(FrameError) as caught:
        decode(b"/LGZ4ZMF100\r\n" + block)
    assert caught.value.code == "bad_crc"


# ------------------------------------------------------------------ OBIS and values


@pytest.mark.parametrize(
    ("address", "obis"),
    [
        ("1.8.1", "1-0:1.8.1"),
        ("1-0:1.8.0*255", "1-0:1.8.0"),
        ("1-0:1.8.0.255", "1-0:1.8.0"),
        ("F.F", "0-0:97.97.0"),
        ("C.1.0", "0-0:96.1.0"),
        ("32.7", "1-0:32.7.0"),
        ("0.0.0", "0-0:0.0.0"),
        ("1.8.0*01", "1-0:1.8.0*1"),
        ("3:171.0", "1-3:171.0.0"),
        ("3:14", None),
        ("", None),
    ],
)
def test_normalize_obis(address: str, obis: str | None) -> None:
    assert iec.normalize_obis(address) == obis


def test_units_and_text_values() -> None:
    assert iec.ha_unit("m3") == "m³"
    assert iec.ha_unit("kVArh") == "kvarh"
    assert iec.ha_unit("KWH") == "kWh"
    assert iec.ha_unit("") is None
    decoded = decode(b"0.2.0(M27)\r\nC.1.0(00012345)\r\nC.7.0(0004)\r\n1.8.0(013925.5*)\r\n")
    values = {r.name: r.value for r in decoded.records}
    assert values == {
        "firmware_version": "M27",
        "meter_id": "00012345",
        "power_failures": Decimal(4),
        "energy_import": Decimal("13925.5"),
    }


def test_multiple_values_per_data_set() -> None:
    decoded = decode(b"1.6.0(02.345*kW)(2301151230)\r\n!")
    first, second = decoded.records
    assert (first.name, first.value, first.unit) == ("max_power_import", Decimal("2.345"), "kW")
    assert second.name == "max_power_import_1"
    assert second.raw["index"] == 1


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "truncated"),
        (b"\r\n", "truncated"),
        (b"/?12345", "truncated"),
        (b"/KAM5", "truncated"),
        (b"\x021.8.0(1*kWh)\r\n", "truncated"),
        (b"\x021.8.0(1*kWh)!\r\n\x03", "truncated"),
        (b"\x021.8.0(1*kWh)!\r\n\x03\x00", "bad_crc"),
        (b"1.8.0(1*kWh", "truncated"),
        (b"1.8.0 1 kWh\r\n", "bad_frame"),
        (b"/12\r\n", "bad_frame"),
        (b"\x05", "bad_frame"),
        (b"1.8.0(1)!x", "bad_frame"),
    ],
)
def test_error_codes(data: bytes, code: str) -> None:
    with pytest.raises(FrameError) as caught:
        decode(data)
    assert caught.value.code == code


def test_lone_control_bytes() -> None:
    assert decode(b"\x06").frame["name"] == "ACK"
    assert decode(b"\x15").frame["name"] == "NAK"
    assert iec.parse(b"\x06\x15") == [Ack(), Nak()]


# ------------------------------------------------------------------ round trips

ADDRESS_CHARS = "0123456789.:-*CFLP"
VALUE_CHARS = "0123456789.+- ABCDEFabcdef"
UNIT_CHARS = "kWhVArmz3°/"
data_values = st.builds(
    DataValue,
    st.text(VALUE_CHARS, max_size=12),
    st.none() | st.text(UNIT_CHARS, max_size=5),
)
data_sets = st.builds(
    DataSet,
    st.text(ADDRESS_CHARS, min_size=1, max_size=14),
    st.lists(data_values, min_size=1, max_size=3).map(tuple),
)
lines = st.lists(st.lists(data_sets, min_size=1, max_size=3).map(tuple), max_size=5).map(tuple)
printable = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcxyz0123456789.-_", max_size=16)


@st.composite
def data_messages(draw: st.DrawFn) -> DataMessage:
    framed = draw(st.booleans())
    body = draw(lines)
    if not framed and not body:
        body = (draw(st.lists(data_sets, min_size=1, max_size=2).map(tuple)),)
    return DataMessage(body, end=draw(st.booleans()), framed=framed)


messages = st.one_of(
    st.builds(SignOn, st.text("0123456789ABCabc ", max_size=32)),
    st.builds(
        Identification,
        st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabc", min_size=3, max_size=3),
        st.sampled_from("0123456ABCDEF Z"),
        printable,
        st.none() | st.sampled_from("0123456789"),
    ),
    st.builds(
        OptionSelect,
        st.sampled_from("0123456"),
        st.sampled_from("012"),
        st.sampled_from("01"),
    ),
    st.builds(
        CommandMessage,
        st.sampled_from("PWRBE"),
        st.sampled_from("0123"),
        st.none() | st.lists(data_sets, max_size=3).map(tuple),
    ),
    st.just(Ack()),
    st.just(Nak()),
)


def without_checks(message: iec.Message) -> iec.Message:
    """The message as encoded: the received BCC and its verdict are parse results."""
    if isinstance(message, DataMessage | CommandMessage):
        assert message.bcc_ok in (True, None)
        return replace(message, bcc=None, bcc_ok=None)
    return message


@settings(max_examples=300)
@given(message=st.one_of(messages, data_messages()))
def test_message_round_trip(message: iec.Message) -> None:
    (back,) = iec.parse(iec.encode(message))
    assert without_checks(back) == message


@settings(max_examples=150)
@given(
    address=st.text("0123456789", max_size=8),
    ident=st.builds(Identification, st.just("KAM"), st.sampled_from("5 "), printable),
    body=lines,
)
def test_session_round_trip(address: str, ident: Identification, body: Any) -> None:
    session: list[iec.Message] = [SignOn(address), ident, OptionSelect("5"), DataMessage(body)]
    wire = b"".join(iec.encode(m) for m in session)
    assert [without_checks(m) for m in iec.parse(wire)] == session
    decoded = decode(wire)
    assert decoded.frame["bcc_ok"] is True
    assert len(
        [r for ds in DataMessage(body).data_sets for r in ds.values if r.value.strip()]
    ) == len(decoded.records)


def test_data_set_of_formats_numbers_plainly() -> None:
    assert str(DataSet.of("1.8.0", Decimal("1.2E+3"), "kWh")) == "1.8.0(1200*kWh)"
    assert str(DataSet.of("0.0.0", "14410000")) == "0.0.0(14410000)"


def test_encode_matches_vector_bytes() -> None:
    answer = DataMessage(((DataSet("3:171.0", (DataValue("0"),)),),), end=False)
    assert iec.encode(answer) == b"\x023:171.0(0)\x03\x12"
    assert iec.encode(SignOn("45678903")) == b"/?45678903!\r\n"
    assert iec.encode(OptionSelect("5", "1")) == b"\x06051\r\n"
    password = CommandMessage("P", "0", (DataSet("", (DataValue("1234567"),)),))
    assert iec.encode(password) == b"\x01P0\x02(1234567)\x03P"
    assert iec.encode(CommandMessage("B", "0")) == b"\x01B0\x03q"


# ------------------------------------------------------------------ fuzz

REAL = [vector_bytes(v) for v in VECTORS] + [KAMSTRUP_382C]


@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=mutated(
        REAL,
        st.binary(min_size=1, max_size=3)
        | st.sampled_from([b"\x02", b"\x03", b"(", b")", b"!", b"/", b"\r\n", b"\x06", b"*"]),
    )
)
def test_fuzz_only_frame_errors(data: bytes) -> None:
    try:
        decode(data)
    except FrameError as err:
        assert err.code in {"bad_crc", "truncated", "bad_frame"}


# ------------------------------------------------------------------ the short path

SHORT_SHAPES = [
    b"\x023:171.0(0)\x03\x12",
    b"\x01W2\x02C003(910324092239)\x03\x1b",
    b"/?45678903!\r\n",
    b"/Els6\\2EK280\r\n",
    b"\x06051\r\n",
]
SPACED = [b"\x02 1.8.0 (1*kWh)(2)\r\n\t(3)\r\n!\r\n\x03", b"\x01R1\x02 C.1 (x)(y)(z*)\x03"]


def outcome(data: bytes, decode_with: Any) -> bytes:
    try:
        return to_json(decode_with(data))
    except FrameError as err:
        return to_json(error_result("iec62056-21", err))


def test_short_path_takes_the_usual_messages() -> None:
    # One message of a usual shape is read without building message objects.
    short = {0x02: iec._one_data_block, 0x01: iec._one_command, 0x06: iec._one_option_select}
    for data in SHORT_SHAPES:
        assert short.get(data[0], iec._one_slash)(data) is not None


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.builds(iec.encode, st.one_of(messages, data_messages()))
    | st.builds(lambda body: body + bytes((iec.bcc(body[1:]),)), st.sampled_from(SPACED))
    | mutated(
        SHORT_SHAPES + SPACED,
        st.binary(min_size=1, max_size=2)
        | st.sampled_from([b"(", b")", b"!", b"*", b" ", b"\t", b"\r\n", b"\x02", b"\x03"]),
    )
)
def test_short_path_gives_what_the_general_path_gives(data: bytes) -> None:
    # The same JSON, or the same error, byte for byte: the short path only skips work.
    assert outcome(data, decode) == outcome(data, iec._decode_general)


def test_short_path_lookups_stay_bounded_and_right() -> None:
    # More distinct addresses and units than the short path keeps: each decode still gives
    # what the general path gives, and the tables never hold more than their bound.
    for n in range(iec._CACHED_MAX + 50):
        body = f"1.8.{n}({n}*u{n})\r\n!\r\n".encode() + b"\x03"
        data = b"\x02" + body + bytes((iec.bcc(body),))
        assert outcome(data, decode) == outcome(data, iec._decode_general)
        assert len(iec._FACTS) <= iec._CACHED_MAX
        assert len(iec._HA_UNITS) <= iec._CACHED_MAX
