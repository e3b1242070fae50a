"""DLMS encoders against decoders (hypothesis), and mutated real frames against the decoder."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modules.codecs.dlms.apdu import (
    decode_aare,
    decode_action_response,
    decode_get_response,
    encode_aare,
    encode_aarq,
    encode_action_request,
    encode_data_notification,
    encode_get_request,
    encode_get_request_with_list,
    encode_get_response,
    obis_bytes,
    parse_data_notification,
)
from modules.codecs.dlms.axdr import (
    ARRAY,
    BOOLEAN,
    DOUBLE_LONG,
    DOUBLE_LONG_UNSIGNED,
    ENUM,
    FLOAT64,
    INTEGER,
    LONG,
    LONG64,
    LONG64_UNSIGNED,
    LONG_UNSIGNED,
    NULL,
    OCTET_STRING,
    STRUCTURE,
    UNSIGNED,
    UTF8_STRING,
    VISIBLE_STRING,
    CosemDateTime,
    Data,
    Reader,
    decode_data,
    encode_data,
    obis_text,
)
from modules.codecs.dlms.decode import DlmsDecoder
from modules.codecs.dlms.hdlc import (
    crc16_x25,
    decode_address,
    encode_address,
    encode_frame,
    encode_wrapper,
    parse_frame,
    parse_wrapper,
)
from modules.codecs.dlms.security import (
    cipher,
    decipher,
    encode_general_ciphering,
    parse_general_ciphering,
)
from modules.codecs.errors import FrameError
from tests.support.fuzz import mutated

_RANGES = {
    INTEGER: (-128, 127),
    LONG: (-(2**15), 2**15 - 1),
    UNSIGNED: (0, 255),
    LONG_UNSIGNED: (0, 2**16 - 1),
    DOUBLE_LONG: (-(2**31), 2**31 - 1),
    DOUBLE_LONG_UNSIGNED: (0, 2**32 - 1),
    LONG64: (-(2**63), 2**63 - 1),
    LONG64_UNSIGNED: (0, 2**64 - 1),
    ENUM: (0, 255),
}


def _tagged(tag: int, low: int, high: int) -> st.SearchStrategy[Data]:
    return st.integers(low, high).map(lambda n: Data(tag, n))


_scalars = st.one_of(
    st.just(Data(NULL, None)),
    st.booleans().map(lambda b: Data(BOOLEAN, b)),
    *(_tagged(tag, low, high) for tag, (low, high) in _RANGES.items()),
    st.floats(allow_nan=False).map(lambda f: Data(FLOAT64, f)),
    st.binary(max_size=300).map(lambda b: Data(OCTET_STRING, b)),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40).map(
        lambda t: Data(VISIBLE_STRING, t)
    ),
    st.text(max_size=20).map(lambda t: Data(UTF8_STRING, t)),
)
data_trees = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=6).map(lambda xs: Data(STRUCTURE, tuple(xs))),
        st.lists(children, max_size=6).map(lambda xs: Data(ARRAY, tuple(xs))),
    ),
    max_leaves=30,
)
keys = st.binary(min_size=16, max_size=16)
titles = st.binary(min_size=8, max_size=8)
obis_codes = st.tuples(*(st.integers(0, 255) for _ in range(6))).map(bytes)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(data_trees)
def test_axdr_round_trip(data: Data) -> None:
    raw = encode_data(data)
    reader = Reader(raw)
    assert decode_data(reader) == data
    assert reader.remaining == 0


@FAST
@given(
    st.binary(max_size=600),
    st.integers(0, 0x3FFF),
    st.integers(0, 0x0FFFFFFF),
    st.sampled_from([0x13, 0x10, 0x93, 0x73, 0x00, 0x32]),
    st.booleans(),
)
def test_hdlc_frame_round_trip(
    info: bytes, dest: int, src: int, control: int, segmented: bool
) -> None:
    raw = encode_frame(info, dest=dest, src=src, control=control, segmented=segmented)
    frame = parse_frame(raw)
    assert (frame.info, frame.dest, frame.src, frame.control) == (info, dest, src, control)
    assert frame.segmented is segmented and frame.size == len(raw)
    assert frame.fcs == crc16_x25(raw[1:-3])


@FAST
@given(st.integers(0, 0x0FFFFFFF), st.sampled_from([None, 1, 2, 4]))
def test_hdlc_address_round_trip(value: int, size: int | None) -> None:
    limit = {None: 0x0FFFFFFF, 1: 0x7F, 2: 0x3FFF, 4: 0x0FFFFFFF}[size]
    value = min(value, limit)
    raw = encode_address(value, size)
    assert decode_address(raw, 0, "test")[::2] == (value, len(raw))


@FAST
@given(st.binary(max_size=400), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))
def test_wrapper_round_trip(apdu: bytes, source: int, destination: int) -> None:
    wrapper = parse_wrapper(encode_wrapper(apdu, source=source, destination=destination))
    assert (wrapper.apdu, wrapper.source, wrapper.destination) == (apdu, source, destination)


@FAST
@given(
    data_trees,
    st.integers(0, 0x00FFFFFF),
    st.booleans(),
    st.sampled_from(["absent", "octet-string", "typed-octet-string", "date-time"]),
    st.datetimes(),
)
def test_data_notification_round_trip(
    body: Data, invoke: int, high: bool, form: str, moment: object
) -> None:
    stamp = None if form == "absent" else CosemDateTime.from_datetime(moment)  # type: ignore[arg-type]
    raw = encode_data_notification(
        body, invoke_id=invoke, priority_high=high, date_time=stamp, date_time_form=form
    )
    parsed = parse_data_notification(raw)
    assert (parsed.invoke_id, parsed.priority_high, parsed.body) == (invoke, high, body)
    assert parsed.date_time == stamp and parsed.date_time_form == form


@FAST
@given(
    st.binary(max_size=500),
    keys,
    keys,
    titles,
    st.integers(0, 2**32 - 1),
    st.sampled_from([0x10, 0x20, 0x30]),
)
def test_gcm_cipher_round_trip(
    plain: bytes, key: bytes, auth: bytes, title: bytes, counter: int, sc: int
) -> None:
    content = cipher(
        plain,
        system_title=title,
        invocation_counter=counter,
        security_control=sc,
        key=key,
        auth_key=auth,
    )
    framed = encode_general_ciphering(content, system_title=title)
    parsed, size = parse_general_ciphering(framed)
    assert (parsed.system_title, parsed.invocation_counter, size) == (title, counter, len(framed))
    assert decipher(parsed, key=key, auth_key=auth) == (plain, bool(sc & 0x10))


@FAST
@given(obis_codes, st.integers(0, 0xFFFF), st.integers(0, 255), st.integers(0, 15))
def test_get_and_action_requests(code: bytes, class_id: int, index: int, invoke: int) -> None:
    text = obis_text(code)
    assert obis_bytes(text) == code
    request = encode_get_request(class_id, text, index, invoke_id=invoke)
    assert request[:3] == bytes([0xC0, 0x01, 0xC0 | invoke])
    assert request[3:12] == class_id.to_bytes(2, "big") + code + bytes([index])
    many = encode_get_request_with_list([(class_id, text, index)] * 2, invoke_id=invoke)
    assert many[3] == 2 and many[4:13] == request[3:12]
    action = encode_action_request(class_id, text, index, Data(INTEGER, 0), invoke_id=invoke)
    assert action[:3] == bytes([0xC3, 0x01, 0xC0 | invoke]) and action[-3:] == b"\x01\x0f\x00"


@FAST
@given(st.lists(st.one_of(data_trees, st.integers(1, 250)), min_size=1, max_size=4))
def test_get_response_round_trip(results: list[Data | int]) -> None:
    response = decode_get_response(encode_get_response(results, invoke_id=5))
    assert response.invoke_id == 5 and list(response.results) == results


def test_association_and_action_response() -> None:
    aarq = encode_aarq(password=b"12345678")
    assert aarq[0] == 0x60 and b"12345678" in aarq and bytes.fromhex("60857405080201") in aarq
    association = decode_aare(encode_aare(result=0, max_pdu=0x0400))
    assert association.accepted and association.max_pdu == 0x0400
    assert not decode_aare(encode_aare(result=1, diagnostic=13)).accepted
    response = decode_action_response(bytes.fromhex("c70141" + "00" + "00"))
    assert response.success and response.invoke_id == 1


# ---------------------------------------------------------------- fuzz

_VECTORS = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "vectors" / "dlms.json").read_text("utf-8")
)
_FRAMES = [bytes.fromhex(v["input"]["hex"]) for v in _VECTORS if v["input"].get("hex")]
_KEY = bytes.fromhex("39436F513777354C4D466F4C5333674A")


@settings(max_examples=400, deadline=None)
@given(mutated(_FRAMES, st.binary(min_size=1, max_size=8)), st.booleans())
def test_mutated_frames_raise_only_frame_errors(frame: bytes, with_key: bool) -> None:
    with contextlib.suppress(FrameError):
        DlmsDecoder().decode(frame, key=_KEY if with_key else None, auth_key=None)
