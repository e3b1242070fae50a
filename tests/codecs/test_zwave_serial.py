"""Z-Wave Serial API framing: checksum, frame errors, control bytes and the stream extractor."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modules.codecs.errors import ChecksumError, FrameError, IncompleteFrame
from modules.codecs.zwave.dispatch import ZwaveDecoder
from modules.codecs.zwave.serial import (
    MAX_PARAMS,
    BadFrame,
    ControlByte,
    DataFrame,
    FrameExtractor,
    Garbage,
    checksum,
    parse_frame,
    retransmit_delay_s,
)

SEND_DATA = bytes.fromhex("010800130401002501c5")  # zwave-js ping: NoOperation to node 4
REPORT = bytes.fromhex("0116000400020e3202214400013707012d00013707d5004d")


def test_checksum_is_ff_xor_length_to_last_parameter() -> None:
    assert checksum(SEND_DATA[1:-1]) == 0xC5
    assert checksum(REPORT[1:-1]) == 0x4D
    assert checksum(b"") == 0xFF


def test_encode_builds_the_captured_frames() -> None:
    assert DataFrame(0x00, 0x13, bytes.fromhex("0401002501")).encode() == SEND_DATA
    assert parse_frame(REPORT).encode() == REPORT


def test_parse_frame_fields() -> None:
    frame = parse_frame(SEND_DATA)
    assert (frame.type, frame.function_id, frame.params) == (0, 0x13, bytes.fromhex("0401002501"))


def test_bad_checksum_is_bad_crc_at_the_checksum_byte() -> None:
    broken = SEND_DATA[:-1] + b"\xc4"
    with pytest.raises(ChecksumError) as caught:
        parse_frame(broken)
    assert (caught.value.code, caught.value.offset) == ("bad_crc", len(SEND_DATA) - 1)


@pytest.mark.parametrize("cut", [1, 2, 5, len(SEND_DATA) - 1])
def test_short_frame_is_truncated(cut: int) -> None:
    with pytest.raises(IncompleteFrame) as caught:
        parse_frame(SEND_DATA[:cut])
    assert caught.value.code == "truncated"
    assert caught.value.offset == cut


def test_length_below_three_is_invalid_not_truncated() -> None:
    with pytest.raises(FrameError) as caught:
        parse_frame(bytes.fromhex("0102000d"))
    assert (caught.value.code, caught.value.offset) == ("bad_frame", 1)
    assert not isinstance(caught.value, IncompleteFrame)


def test_bytes_after_the_checksum_are_refused() -> None:
    with pytest.raises(FrameError) as caught:
        parse_frame(SEND_DATA + b"\x06")
    assert (caught.value.code, caught.value.offset) == ("bad_frame", len(SEND_DATA))


def test_frame_must_start_with_sof() -> None:
    with pytest.raises(FrameError) as caught:
        parse_frame(b"\x02" + SEND_DATA[1:])
    assert caught.value.code == "bad_frame"


def test_encode_limits() -> None:
    assert len(DataFrame(0, 0x13, bytes(MAX_PARAMS)).encode()) == 0xFF + 2
    with pytest.raises(ValueError):
        DataFrame(0, 0x13, bytes(MAX_PARAMS + 1)).encode()
    with pytest.raises(ValueError):
        DataFrame(0x100, 0x13).encode()


def test_retransmission_back_off() -> None:
    assert [retransmit_delay_s(n) for n in (1, 2, 3)] == pytest.approx([1.1, 2.1, 3.1])
    for attempt in (0, 4):
        with pytest.raises(ValueError):
            retransmit_delay_s(attempt)


# ------------------------------------------------------------------------------- the decoder


@pytest.mark.parametrize(("byte", "name"), [(0x06, "ACK"), (0x15, "NAK"), (0x18, "CAN")])
def test_decoder_names_control_bytes(byte: int, name: str) -> None:
    decoded = ZwaveDecoder().decode(bytes((byte,)), key=None, auth_key=None)
    assert decoded.frame == {"layer": "control", "name": name, "value": byte}


def test_decoder_errors_keep_their_codes() -> None:
    decoder = ZwaveDecoder()
    with pytest.raises(ChecksumError):
        decoder.decode(REPORT[:-1] + b"\x00", key=None, auth_key=None)
    with pytest.raises(IncompleteFrame):
        decoder.decode(REPORT[:12], key=None, auth_key=None)
    with pytest.raises(IncompleteFrame):
        decoder.decode(b"", key=None, auth_key=None)


def test_decoder_truncated_command_inside_a_good_frame_points_into_the_frame() -> None:
    # A Meter Report cut after its header, wrapped in a frame with a correct checksum.
    frame = DataFrame(0x00, 0x04, bytes.fromhex("000204") + bytes.fromhex("32022144")).encode()
    with pytest.raises(IncompleteFrame) as caught:
        ZwaveDecoder().decode(frame, key=None, auth_key=None)
    assert caught.value.offset == 4 + 3 + 4  # params start at 4, payload at +3, value at +4


# ----------------------------------------------------------------------------- the extractor


def test_extractor_sorts_a_mixed_stream() -> None:
    bad = SEND_DATA[:-1] + b"\x00"
    stream = b"\x06" + SEND_DATA + b"\x15\x18" + b"\xaa\xbb" + bad + REPORT + b"\x06"
    events = FrameExtractor().feed(stream)
    assert events[0] is ControlByte.ACK
    assert events[1] == parse_frame(SEND_DATA)
    assert events[2:4] == [ControlByte.NAK, ControlByte.CAN]
    assert events[4] == Garbage(b"\xaa\xbb")
    assert isinstance(events[5], BadFrame)
    assert events[5].error.code == "bad_crc"
    assert events[5].data == bad
    assert events[6] == parse_frame(REPORT)
    assert events[7] is ControlByte.ACK
    assert len(events) == 8


def test_extractor_keeps_incomplete_apart_from_invalid() -> None:
    extractor = FrameExtractor()
    assert extractor.feed(REPORT[:10]) == []
    assert extractor.pending == REPORT[:10]
    assert extractor.feed(REPORT[10:]) == [parse_frame(REPORT)]
    assert extractor.pending == b""


def test_extractor_expire_drops_the_unfinished_frame() -> None:
    extractor = FrameExtractor()
    extractor.feed(b"\x01\xff\x00\x13")  # a corrupted length that would swallow what follows
    assert extractor.expire() == b"\x01\xff\x00\x13"
    assert extractor.feed(SEND_DATA) == [parse_frame(SEND_DATA)]


def test_extractor_resyncs_after_an_impossible_length() -> None:
    # 01 01: the second 01 is the SOF of the real frame, so only one byte may be consumed.
    events = FrameExtractor().feed(b"\x01\x01" + SEND_DATA)
    bad = [event for event in events if isinstance(event, BadFrame)]
    assert [event.error.code for event in bad] == ["bad_frame", "bad_frame"]
    assert events[-1] == parse_frame(SEND_DATA)


def test_extractor_one_byte_at_a_time() -> None:
    stream = b"\x06" + SEND_DATA + b"\x99" + REPORT + b"\x18"
    extractor = FrameExtractor()
    events = [event for byte in stream for event in extractor.feed(bytes((byte,)))]
    assert events == FrameExtractor().feed(stream)


frames = st.builds(DataFrame, st.integers(0, 1), st.integers(0, 0xFF), st.binary(max_size=30))
noise = st.binary(min_size=1, max_size=6).map(
    lambda data: bytes(byte for byte in data if byte not in (0x01, 0x06, 0x15, 0x18)) or b"\x00"
)
items = st.one_of(frames, st.sampled_from(list(ControlByte)), noise.map(Garbage))


def _wire(item: object) -> bytes:
    if isinstance(item, DataFrame):
        return item.encode()
    if isinstance(item, Garbage):
        return item.data
    assert isinstance(item, ControlByte)
    return bytes((item,))


def _coalesce(events: list[object]) -> list[object]:
    out: list[object] = []
    for event in events:
        if isinstance(event, Garbage) and out and isinstance(out[-1], Garbage):
            out[-1] = Garbage(out[-1].data + event.data)
        else:
            out.append(event)
    return out


@settings(max_examples=150, deadline=None)
@given(
    stream=st.lists(items, max_size=12),
    cuts=st.lists(st.integers(0, 400), max_size=8),
)
def test_extractor_recovers_every_item_whatever_the_chunking(
    stream: list[object], cuts: list[int]
) -> None:
    data = b"".join(_wire(item) for item in stream)
    extractor = FrameExtractor()
    events: list[object] = []
    start = 0
    for cut in [*sorted({min(cut, len(data)) for cut in cuts}), len(data)]:
        events += extractor.feed(data[start:cut])
        start = cut
    assert _coalesce(events) == _coalesce(list(stream))
    assert extractor.pending == b""
