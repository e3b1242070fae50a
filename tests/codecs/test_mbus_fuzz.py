"""Mutated real M-Bus frames may only ever raise the codec's own FrameError."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modules.codecs.errors import FrameError
from modules.codecs.mbus.frames import MbusDecoder, encode_long
from modules.codecs.mbus.records import decode_compact, decode_records, record_format
from modules.codecs.records import Decoded, to_json

VECTORS = Path(__file__).parents[1] / "fixtures" / "vectors"
FRAMES = [
    bytes.fromhex(item["hex"])
    for item in json.loads((VECTORS / "mbus.json").read_text(encoding="utf-8"))
    if item["kind"] == "rsp_ud"
]
FUZZ = settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A real frame with bit flips, a cut, an insertion or a deletion."""
    frame = bytearray(draw(st.sampled_from(FRAMES)))
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["flip", "cut", "insert", "delete", "byte"]))
        index = draw(st.integers(0, max(len(frame) - 1, 0)))
        if action == "flip" and frame:
            frame[index] ^= 1 << draw(st.integers(0, 7))
        elif action == "cut":
            del frame[index:]
        elif action == "insert":
            frame[index:index] = draw(st.binary(min_size=1, max_size=4))
        elif action == "delete" and frame:
            del frame[index]
        elif action == "byte" and frame:
            frame[index] = draw(st.integers(0, 255))
    return bytes(frame)


def _decode(data: bytes) -> Decoded | None:
    try:
        result = MbusDecoder().decode(data, key=None, auth_key=None)
    except FrameError as error:
        assert isinstance(error.code, str)
        return None
    to_json(result)  # whatever decodes must also print
    return result


@given(mutated())
@FUZZ
def test_mutated_frames_raise_only_frame_errors(data: bytes) -> None:
    _decode(data)


@given(mutated(), st.sampled_from([None, 0x51, 0x52, 0x70, 0x71, 0x73, 0x76, 0x77, 0x78, 0x7A]))
@FUZZ
def test_mutated_frames_with_repaired_link_layer_reach_the_records(
    data: bytes, ci: int | None
) -> None:
    """Fix L and the checksum so that mutations get past the link layer into the records."""
    if len(data) < 9:
        return
    _decode(encode_long(data[4], data[5], data[6] if ci is None else ci, data[7:-2][:252]))


@given(st.binary(max_size=64), st.integers(0, 2), st.booleans())
@FUZZ
def test_random_record_bytes_raise_only_frame_errors(
    payload: bytes, medium: int, msb_first: bool
) -> None:
    try:
        decode_records(payload, offset=19, medium=medium, msb_first=msb_first)
        fmt = record_format(payload)
    except FrameError:
        return
    with contextlib.suppress(FrameError):
        decode_compact(fmt, payload[: len(payload) // 2], medium=medium)


@given(st.binary(max_size=40), st.binary(max_size=40))
@FUZZ
def test_random_compact_formats_raise_only_frame_errors(fmt: bytes, data: bytes) -> None:
    with contextlib.suppress(FrameError):
        decode_compact(fmt, data, offset=5)
