"""Mutated real Z-Wave frames may only raise the codec's own FrameError, never a bare exception."""

from __future__ import annotations

import contextlib
import json
from decimal import Decimal
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from modules.codecs.errors import FrameError
from modules.codecs.records import to_json
from modules.codecs.zwave.api.node import (
    ApplicationUpdate,
    GetCapabilitiesResponse,
    GetInitDataResponse,
    GetVersionResponse,
    NodeInfo,
    SerialApiStarted,
    SetLearnModeCallback,
)
from modules.codecs.zwave.api.transport import ApplicationCommand, SendDataRequest
from modules.codecs.zwave.cc.association import (
    AssociationGroupCommandListReport,
    AssociationGroupInfoReport,
    AssociationReport,
    GroupInfo,
    ZwavePlusInfoReport,
)
from modules.codecs.zwave.cc.multichannel import MultiChannelCmdEncap
from modules.codecs.zwave.cc.version import VersionReport, VersionZWaveSoftwareReport
from modules.codecs.zwave.dispatch import ZwaveDecoder, parse_command, parse_message
from modules.codecs.zwave.meter import MeterGet, MeterReport, MeterReset, MeterSupportedReport
from modules.codecs.zwave.serial import SOF, DataFrame, FrameExtractor, checksum

VECTORS = json.loads(
    (Path(__file__).parent.parent / "fixtures" / "vectors" / "zwave.json").read_text("utf-8")
)
PAYLOADS = [
    MeterReport(1, 8, Decimal("5.5"), 2, 1, 1, 5, Decimal("5.4")).encode(),
    MeterSupportedReport(1, (0, 2, 4, 8), (1, 2), True).encode(),
    MeterReset(1, 0, 1, Decimal("0.00"), 2, 4).encode(),
    MeterGet(8, 1, True).encode(),
    VersionReport(3, 7, 18, 1, 2, 1, ((2, 0),)).encode(),
    VersionZWaveSoftwareReport(
        (7, 18, 1), (10, 18, 1), 1, (7, 18, 1), 1, (7, 18, 1), 1, (1, 0, 0), 1
    ).encode(),
    AssociationReport(1, 5, (1, 7)).encode(),
    ZwavePlusInfoReport().encode(),
    MultiChannelCmdEncap(1, 0, bytes.fromhex("3202214400013707012d00013707")).encode(),
    AssociationGroupInfoReport((GroupInfo(1),)).encode(),
    AssociationGroupCommandListReport(1, ((0x32, 0x02), (0xF101, 0x01))).encode(),
]
FRAMES = [
    ApplicationCommand(0, 1, PAYLOADS[3], -60, 0).encode(),
    SendDataRequest(1, PAYLOADS[0], callback_id=9).encode(),
    GetInitDataResponse(8, 1, (1, 12), 7, 0).encode(),
    GetCapabilitiesResponse(1, 2, 0x86, 1, 0x5A, (2, 3, 4, 0x13)).encode(),
    GetVersionResponse("Z-Wave 6.07", 6).encode(),
    SerialApiStarted(0, True, 0x80, 0x31, 1, (0x5E, 0x32), (0x20,), 0).encode(),
    SetLearnModeCallback(7, 1, 12, b"\x01\x02").encode(),
    ApplicationUpdate(0x84, 5, NodeInfo(4, 0x31, 1, (0x32, 0x86))).encode(),
]
SEEDS = [bytes.fromhex(vector["hex"]) for vector in VECTORS] + PAYLOADS + FRAMES


def refix(data: bytes) -> bytes:
    """Recompute the checksum of a frame-shaped input, so mutations reach the inner parsers."""
    if len(data) >= 5 and data[0] == SOF and data[1] + 2 == len(data):
        return data[:-1] + bytes((checksum(data[1:-1]),))
    return data


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(("flip", "truncate", "insert", "delete", "set")))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data.insert(at, draw(st.integers(0, 0xFF)))
        elif kind == "delete" and data:
            del data[at]
        elif kind == "set" and data:
            data[at] = draw(st.sampled_from((0x00, 0x07, 0x80, 0xFF)))
    wire = bytes(data)
    return refix(wire) if draw(st.booleans()) else wire


@settings(max_examples=1000, deadline=None)
@given(data=mutated())
def test_decoder_raises_only_frame_errors(data: bytes) -> None:
    try:
        decoded = ZwaveDecoder().decode(data, key=None, auth_key=None)
    except FrameError as err:
        assert err.code in {"bad_crc", "truncated", "bad_frame"}
        return
    assert json.loads(to_json(decoded))["protocol"] == "zwave"


@settings(max_examples=600, deadline=None)
@given(data=mutated())
def test_inner_parsers_raise_only_frame_errors(data: bytes) -> None:
    for event in FrameExtractor().feed(data):
        if not isinstance(event, DataFrame):
            continue
        for from_host in (True, False, None):
            try:
                message = parse_message(event, from_host=from_host)
            except FrameError:
                continue
            message.fields()
    with contextlib.suppress(FrameError):
        parse_command(data).fields()


@settings(max_examples=600, deadline=None)
@given(data=st.binary(max_size=80))
def test_random_bytes(data: bytes) -> None:
    with contextlib.suppress(FrameError):
        ZwaveDecoder().decode(refix(data), key=None, auth_key=None)
    FrameExtractor().feed(data)
