"""`decode dlms` on a capture, not a frame: every complete HDLC frame decodes, the rest is named."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from modules.codecs.dlms import DlmsDecoder
from modules.codecs.errors import FrameError
from modules.codecs.records import Decoded
from tests.support.processes import GATEWAY

VECTORS = Path(__file__).resolve().parents[1] / "fixtures" / "vectors" / "dlms.json"
_HDLC = [
    bytes.fromhex(v["input"]["hex"])
    for v in json.loads(VECTORS.read_text())
    if v["input"].get("hex", "").lower().startswith("7e")
]
FIRST, SECOND = _HDLC[0], _HDLC[1]


def decode(data: bytes) -> Decoded:
    return DlmsDecoder().decode(data, key=None, auth_key=None)


def values(decoded: Decoded) -> list[object]:
    return [(r.name, r.value) for r in decoded.records]


def test_the_frames_used_here_are_two_different_good_frames() -> None:
    assert FIRST != SECOND
    assert decode(FIRST).records and decode(SECOND).records


def test_trailing_bytes_after_a_good_frame_are_skipped_and_reported() -> None:
    alone = decode(FIRST)
    decoded = decode(FIRST + b"\x01\x02\x03")
    assert values(decoded) == values(alone)
    assert decoded.frame["skipped_bytes"] == 3
    assert decoded.frame["skipped"] == [{"offset": len(FIRST), "bytes": 3, "reason": "bad_frame"}]


@pytest.mark.parametrize("shared_flag", [False, True])
def test_two_frames_back_to_back_both_decode(shared_flag: bool) -> None:
    second = SECOND[1:] if shared_flag else SECOND
    decoded = decode(FIRST + second)
    assert decoded.frame["hdlc_frames"] == 2
    assert values(decoded) == values(decode(FIRST)) + values(decode(SECOND))
    assert "skipped" not in decoded.frame


def test_noise_between_frames_is_skipped_up_to_the_next_good_frame() -> None:
    noise = b"\xff\x00\x7e\x13\x7e"  # flags inside the noise must not be taken for frames
    decoded = decode(FIRST + noise + SECOND)
    assert decoded.frame["hdlc_frames"] == 2
    assert values(decoded) == values(decode(FIRST)) + values(decode(SECOND))
    assert decoded.frame["skipped_bytes"] == len(noise)


def test_a_frame_cut_short_at_the_end_is_reported_as_truncated() -> None:
    decoded = decode(FIRST + SECOND[:20])
    assert values(decoded) == values(decode(FIRST))
    assert decoded.frame["skipped"] == [{"offset": len(FIRST), "bytes": 20, "reason": "truncated"}]


def test_noise_before_the_first_frame_is_skipped_and_reported() -> None:
    decoded = decode(b"\x00\x11" + FIRST)
    assert values(decoded) == values(decode(FIRST))
    assert decoded.frame["skipped"] == [{"offset": 0, "bytes": 2, "reason": "bad_frame"}]


def test_input_without_any_good_frame_still_fails_with_the_frames_own_error() -> None:
    broken = bytearray(FIRST)
    broken[-3] ^= 0xFF  # the FCS
    with pytest.raises(FrameError) as caught:
        decode(bytes(broken))
    assert caught.value.code == "bad_crc"


def test_the_decode_command_reports_every_frame_and_what_it_skipped() -> None:
    capture = FIRST + b"\x01\x02" + SECOND + SECOND[:9]
    result = subprocess.run(
        [str(GATEWAY), "decode", "dlms", capture.hex()], capture_output=True, text=True, check=True
    )
    body = json.loads(result.stdout)
    assert body["ok"] is True
    assert body["frame"]["hdlc_frames"] == 2
    assert [s["bytes"] for s in body["frame"]["skipped"]] == [2, 9]
    assert len(body["records"]) == len(decode(FIRST).records) + len(decode(SECOND).records)
